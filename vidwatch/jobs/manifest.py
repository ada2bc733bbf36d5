"""status.json: the manifest beside every job's artifacts. Its field names are a contract.

Every write replaces the manifest whole.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore

SCHEMA_VERSION = 1
STATES = ("queued", "running", "completed", "failed")
STAGES = (
    "queued",
    "staging",
    "waiting",
    "uploading_source",
    "scenes",
    "analyzing",
    "writing",
    "done",
)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Manifest:
    job_id: str
    state: str = "queued"
    stage: str = "queued"
    origin: str = "api"
    filename: str | None = None
    source_key: str | None = None
    source_bytes: int | None = None
    source_sha256: str | None = None
    frames_done: int = 0
    frames_total: int | None = None
    created_at: str = field(default_factory=utc_now)
    started_at: str | None = None
    updated_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    error: dict[str, str] | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)
    cleanup_local_source: bool | None = None
    local_source_deleted: bool | None = None
    attempts: int = 0
    duplicate_of: str | None = None
    """The earlier job whose results this one answers (same content key), if any."""
    content_key: str | None = None
    """sha256 over the source's sha256 and the result-changing settings (see jobs.dedupe)."""
    reanalyze: bool = False
    """Asked to be analysed afresh even when a job of the same content exists."""
    notifications: list[dict[str, Any]] = field(default_factory=list)
    """Webhook delivery state, one entry per event and endpoint (kept by jobs.webhooks)."""
    attempt_history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per attempt: ``{attempt, worker, started_at, ended_at, outcome}``; outcome
    ``completed``, ``failed``, ``interrupted`` (a stop sent it back to the queue),
    ``abandoned`` (its daemon died or lost the lease; seen by the next attempt), or None
    while it runs."""
    extra: dict[str, Any] = field(default_factory=dict)
    results_summary: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """results.json's ``summary`` of the run that just ended (not written: for events)."""

    def percent(self) -> float:
        if self.state == "completed":
            return 100.0
        if not self.frames_total:
            return 0.0
        return round(min(99.9, 100.0 * self.frames_done / self.frames_total), 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "job_id": self.job_id,
            "state": self.state,
            "stage": self.stage,
            "progress": {
                "frames_done": self.frames_done,
                "frames_total": self.frames_total,
                "percent": self.percent(),
            },
            "source": {
                "key": self.source_key,
                "origin": self.origin,
                "filename": self.filename,
                "bytes": self.source_bytes,
                "sha256": self.source_sha256,
            },
            "created_at": self.created_at,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "worker": {"host": socket.gethostname(), "pid": os.getpid()},
            "error": self.error,
            "warnings": self.warnings,
            "cleanup": {
                "local_source_policy": self.cleanup_local_source,
                "local_source_deleted": self.local_source_deleted,
            },
            "attempts": self.attempts,
            "attempt_history": self.attempt_history,
            "results_key": self.results_key(),
            "duplicate_of": self.duplicate_of,
            "content_key": self.content_key,
            "reanalyze": self.reanalyze,
            "notifications": self.notifications,
            **self.extra,
        }

    def results_key(self) -> str | None:
        """Where the results are: this job's own, or the earlier job's for a duplicate."""
        if self.state != "completed":
            return None
        return keys.results_key(self.duplicate_of or self.job_id)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Manifest:
        source = doc.get("source") or {}
        progress = doc.get("progress") or {}
        cleanup = doc.get("cleanup") or {}
        return cls(
            job_id=doc["job_id"],
            state=doc.get("state", "queued"),
            stage=doc.get("stage", "queued"),
            origin=source.get("origin", "api"),
            filename=source.get("filename"),
            source_key=source.get("key"),
            source_bytes=source.get("bytes"),
            source_sha256=source.get("sha256"),
            frames_done=progress.get("frames_done", 0),
            frames_total=progress.get("frames_total"),
            created_at=doc.get("created_at") or utc_now(),
            started_at=doc.get("started_at"),
            updated_at=doc.get("updated_at") or utc_now(),
            finished_at=doc.get("finished_at"),
            error=doc.get("error"),
            warnings=list(doc.get("warnings") or []),
            cleanup_local_source=cleanup.get("local_source_policy"),
            local_source_deleted=cleanup.get("local_source_deleted"),
            attempts=int(doc.get("attempts") or 0),
            duplicate_of=doc.get("duplicate_of"),
            content_key=doc.get("content_key"),
            reanalyze=bool(doc.get("reanalyze")),
            notifications=list(doc.get("notifications") or []),
            extra={"summary": doc["summary"]} if doc.get("summary") else {},
            attempt_history=list(doc.get("attempt_history") or []),
        )


def worker_id() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def write_manifest(store: ObjectStore, manifest: Manifest) -> None:
    manifest.updated_at = utc_now()
    body = json.dumps(manifest.to_json(), indent=2).encode()
    store.put_bytes(keys.status_key(manifest.job_id), body, content_type="application/json")


def read_manifest(store: ObjectStore, job_id: str) -> Manifest | None:
    from vidwatch.r2.store import ObjectNotFound

    try:
        return Manifest.from_json(json.loads(store.get_bytes(keys.status_key(job_id))))
    except ObjectNotFound:
        return None
