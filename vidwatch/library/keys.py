"""Where the people library lives in the store (every daemon on the bucket shares it):

```
library/index.json            every person's descriptors (the one object membership
                              changes are written to, conditionally)
library/people/<id>.json      a person: name, thumbnail key, appearances in jobs
library/people/<id>.jpg       a person's thumbnail (a face crop)
```

A library person id is ``P`` and a ULID (``P01JD3...``): it sorts by creation time and can
never be taken for a job id.
"""

from __future__ import annotations

import re

from ulid import ULID

LIBRARY_PREFIX = "library/"
INDEX_KEY = "library/index.json"
PEOPLE_PREFIX = "library/people/"
_PERSON_ID = re.compile(r"^P[0-9A-HJKMNP-TV-Z]{26}$")


def new_person_id() -> str:
    return f"P{ULID()}"


def is_person_id(value: object) -> bool:
    return isinstance(value, str) and _PERSON_ID.match(value) is not None


def normalize_person_id(value: str) -> str | None:
    """The id upper-cased (Crockford base32 is case-insensitive), or None when malformed."""
    candidate = value.strip().upper()
    return candidate if is_person_id(candidate) else None


def _check(person_id: str) -> str:
    if not is_person_id(person_id):
        raise ValueError(f"not a library person id: {person_id!r}")
    return person_id


def person_key(person_id: str) -> str:
    return f"{PEOPLE_PREFIX}{_check(person_id)}.json"


def thumbnail_key(person_id: str) -> str:
    return f"{PEOPLE_PREFIX}{_check(person_id)}.jpg"


def person_id_of(key: str) -> str | None:
    """The id of a ``library/people/<id>.json`` key, else None."""
    if not key.startswith(PEOPLE_PREFIX) or not key.endswith(".json"):
        return None
    candidate = key[len(PEOPLE_PREFIX) : -len(".json")]
    return candidate if is_person_id(candidate) else None
