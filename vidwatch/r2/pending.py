"""Pending markers: ``pending/<job_id>``, one small object per job that is queued or running.

A marker is written before the job's first ``queued`` manifest (by every intake: API, inbox,
and the bucket scanner when it finds a new upload) and deleted after the manifest that ends
the job (``completed`` or ``failed``). Listing ``pending/`` is how a poll and a restart find
the work in hand without reading every finished job's manifest.

Markers are hints, never the truth: status.json and the lease are. A marker whose job ended
(its delete was lost to a crash) is deleted by the next poll that sees it; a job whose marker
was lost is found by the full sweep, which writes its marker again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore


@dataclass(frozen=True)
class Marker:
    job_id: str
    written_at: datetime


def mark_pending(store: ObjectStore, job_id: str, *, origin: str | None = None) -> None:
    """Write the job's marker (idempotent: writing it again changes nothing that matters)."""
    body = json.dumps({"job_id": job_id, "origin": origin}).encode()
    store.put_bytes(keys.pending_key(job_id), body, content_type="application/json")


def clear_pending(store: ObjectStore, job_id: str) -> None:
    """Delete the job's marker; an absent marker is not an error."""
    store.delete(keys.pending_key(job_id))


def list_pending(store: ObjectStore) -> Iterator[Marker]:
    """Every marker, in job id order: one list request per 1,000 markers."""
    for info in store.list(keys.PENDING_PREFIX):
        job_id = keys.job_id_of_pending(info.key)
        if job_id is not None:
            yield Marker(job_id, info.last_modified)
