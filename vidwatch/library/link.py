"""A job's end: its people linked to the library, their ids written into results.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vidwatch.library.index import DIMENSIONS
from vidwatch.library.people import JobPerson, PeopleLibrary


def link_results(
    library: PeopleLibrary,
    job_id: str,
    doc: dict[str, Any],
    descriptors: Mapping[int, np.ndarray],
    *,
    file_name: str | None = None,
) -> list[str | None]:
    """Set ``library_id`` on each of ``doc["people"]`` (results.json as data) from the
    descriptors the job's identities kept per person (``descriptors[person]``)."""
    entries = [p for p in doc.get("people") or [] if isinstance(p, dict)]
    empty = np.zeros((0, DIMENSIONS), np.float32)
    people = [JobPerson(p, descriptors.get(int(p["person"]), empty)) for p in entries]
    ids = library.link_job(job_id, people, file_name=file_name)
    for entry, library_id in zip(entries, ids, strict=True):
        entry["library_id"] = library_id
    return ids
