"""What a search or a job list asks, checked: pure functions from the request's parameters
to a query, raising ``QueryError`` (which parameter, why) for anything else. The API turns
it into its 422."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from vidwatch.catalog.rows import MAX_MS, parse_time_ms
from vidwatch.errors import VidwatchError
from vidwatch.r2 import keys
from vidwatch.times import utc_time

LIMIT_DEFAULT, LIMIT_MAX = 50, 500
MAX_WORDS = 16
MAX_TEXT = 500
STATES = ("queued", "running", "completed", "failed")
ORIGINS = ("api", "inbox", "bucket", "cli")

_WORD = re.compile(r"\w", re.UNICODE)
_PERSON = re.compile(r"^[A-Za-z0-9_-]{1,64}(:[0-9]{1,6})?$")


class QueryError(VidwatchError, ValueError):
    """A parameter that cannot be searched by: ``param`` names it."""

    code = "invalid_request"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(frozen=True)
class SearchQuery:
    words: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    job: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    limit: int = LIMIT_DEFAULT
    cursor: int | None = None


@dataclass(frozen=True)
class JobsQuery:
    state: str | None = None
    origin: str | None = None
    words: tuple[str, ...] = field(default=())
    limit: int = LIMIT_DEFAULT
    cursor: int | None = None


def words(param: str, text: str | None) -> tuple[str, ...]:
    """The words of a text query (whitespace-separated; each must hold a letter or digit)."""
    if text is None or not text.strip():
        return ()
    if len(text) > MAX_TEXT:
        raise QueryError(param, f"at most {MAX_TEXT} characters")
    found = tuple(w for w in text.split() if _WORD.search(w))
    if not found:
        raise QueryError(param, "give at least one word of letters or digits")
    if len(found) > MAX_WORDS:
        raise QueryError(param, f"at most {MAX_WORDS} words")
    return found


def fts_match(query_words: Sequence[str]) -> str:
    """An FTS5 query: every word a quoted prefix (``"dog"*``), all of them required. Quoting
    makes FTS5's own syntax (AND, NEAR, ``-``, ``:``) plain text."""
    return " ".join('"' + w.replace('"', '""') + '"*' for w in query_words)


def limit(value: str | None) -> int:
    if value is None or value == "":
        return LIMIT_DEFAULT
    try:
        number = int(value)
    except ValueError:
        raise QueryError("limit", f"not a whole number: {value[:20]!r}") from None
    if not 1 <= number <= LIMIT_MAX:
        raise QueryError("limit", f"must be 1 to {LIMIT_MAX}")
    return number


def cursor(value: str | None) -> int | None:
    """A ``next`` value given back (a positive integer)."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 19:
        raise QueryError("cursor", "not a cursor this API gave (use the answer's next)")
    return int(value)


def time_ms(param: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    ms = parse_time_ms(value)
    if ms is None:
        raise QueryError(param, f"not an ISO 8601 time: {value[:40]!r} (e.g. 2026-11-23T23:59:01Z)")
    return max(0, min(ms, MAX_MS))


def person_id(value: str) -> str:
    """A library id, or a per-job person ``<job_id>:<person>`` (its job id in any case)."""
    value = value.strip()
    if not _PERSON.match(value):
        raise QueryError("person", f"not a person id: {value[:70]!r}")
    if ":" in value:
        job, _, number = value.partition(":")
        job_id = keys.normalize_job_id(job)
        if job_id is None:
            raise QueryError("person", f"not a job id before ':': {job[:40]!r}")
        return f"{job_id}:{int(number)}"
    return value


def parse_search(
    *,
    q: str | None = None,
    label: Sequence[str] = (),
    person: Sequence[str] = (),
    job: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    limit_: str | None = None,
    cursor_: str | None = None,
) -> SearchQuery:
    labels = tuple(v.strip() for v in label if v.strip())
    for value in labels:
        if len(value) > 100:
            raise QueryError("label", "at most 100 characters")
    if len(labels) + len(person) > MAX_WORDS:
        raise QueryError("label", f"at most {MAX_WORDS} labels and people together")
    job_id = None
    if job is not None and job.strip():
        job_id = keys.normalize_job_id(job)
        if job_id is None:
            raise QueryError("job", f"{job[:40]!r} is not a job id (a 26-character ULID)")
    from_ms, to_ms = time_ms("from", from_), time_ms("to", to)
    if from_ms is not None and to_ms is not None and from_ms > to_ms:
        raise QueryError("from", "is after to")
    return SearchQuery(
        words=words("q", q),
        labels=labels,
        people=tuple(dict.fromkeys(person_id(p) for p in person if p.strip())),
        job=job_id,
        from_ms=from_ms,
        to_ms=to_ms,
        limit=limit(limit_),
        cursor=cursor(cursor_),
    )


def parse_jobs(
    *,
    state: str | None = None,
    origin: str | None = None,
    text: str | None = None,
    limit_: str | None = None,
    cursor_: str | None = None,
) -> JobsQuery:
    if state is not None and state.strip() and state.strip() not in STATES:
        raise QueryError("state", f"one of {', '.join(STATES)}")
    if origin is not None and origin.strip() and origin.strip() not in ORIGINS:
        raise QueryError("origin", f"one of {', '.join(ORIGINS)}")
    return JobsQuery(
        state=(state or "").strip() or None,
        origin=(origin or "").strip() or None,
        words=words("text", text),
        limit=limit(limit_),
        cursor=cursor(cursor_),
    )


def iso(ms: int) -> str:
    return utc_time(ms / 1000)
