"""The record of ended jobs: ``scan/ended.json.gz``, the ids of the jobs seen ``completed``
or ``failed``, so that a restarted daemon need not read every finished job's manifest again.

The full sweep reads the manifest of every job folder it does not know ended; without a
record, every start of every daemon knows nothing, and a bucket of 100,000 finished folders
cost 100,000 reads after each restart. The sweep writes what it learnt into one small object
(26 bytes an id before gzip, about 16 after: 1.6 MB for 100,000 jobs), a starting daemon
reads it once, and its first sweep then only lists.

The record is a hint, like the pending markers: status.json is the truth. An id in it is
never looked at by a sweep again; a job queued again after it ended has its marker written
first, and markers are looked at whatever the record says. Several daemons write it: each
merges what the store holds with what it learnt (``merge``: a plain last-writer-wins, so a
daemon's additions lost to a concurrent write cost reads at a later restart, never a job)
and drops ids whose folder a sweep no longer lists (expired).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Set

import structlog

from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectNotFound, ObjectStore

log = structlog.get_logger("vidwatch.r2.ended")

SCHEMA_VERSION = 1


def encode(ids: Iterable[str]) -> bytes:
    """The record's bytes: gzip of ``{"schema_version", "count", "ids": [sorted ids]}``."""
    ordered = sorted(ids)
    doc = {"schema_version": SCHEMA_VERSION, "count": len(ordered), "ids": ordered}
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0)


def decode(data: bytes) -> frozenset[str]:
    """The ids in a record; ValueError when it is not one (then it is rewritten whole)."""
    try:
        doc = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not an ended-jobs record: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError("not an ended-jobs record of schema 1")
    ids = doc.get("ids")
    if not isinstance(ids, list):
        raise ValueError("an ended-jobs record without ids")
    return frozenset(i for i in ids if isinstance(i, str) and keys.is_job_id(i))


def read_ended(store: ObjectStore) -> frozenset[str]:
    """The ids the store's record holds (one GET); empty when there is none or it is not
    readable (the next sweep reads the manifests and writes it again)."""
    try:
        data = store.get_bytes(keys.ENDED_RECORD_KEY)
    except ObjectNotFound:
        return frozenset()
    try:
        return decode(data)
    except ValueError as exc:
        log.warning("ended_record_unreadable", key=keys.ENDED_RECORD_KEY, error=str(exc))
        return frozenset()


def write_ended(store: ObjectStore, ids: Iterable[str]) -> int:
    """Replace the record with ``ids``; the number of bytes written."""
    body = encode(ids)
    store.put_bytes(keys.ENDED_RECORD_KEY, body, content_type="application/gzip")
    return len(body)


def merge(
    stored: Set[str],
    learnt: Set[str],
    *,
    not_ended: Set[str] = frozenset(),
    listed: Set[str] | None = None,
    newer_than: str | None = None,
) -> frozenset[str]:
    """What the record should hold: what the store holds and what this process learnt,
    without the jobs it saw pending again (``not_ended``). With ``listed`` (the job ids a
    sweep just listed), ids the bucket no longer holds are dropped, except those above
    ``newer_than`` (made after the listing began: another daemon's, not listed yet)."""
    merged = (stored | learnt) - not_ended
    if listed is not None:
        merged = {i for i in merged if i in listed or (newer_than is not None and i > newer_than)}
    return frozenset(merged)
