"""The delivery state of a job's events in its status.json (``notifications``): merged
entry by entry with If-Match, so that neither the job's own writes nor the sender's lose
the other's."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import structlog

from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.webhooks.outbox import FINAL_STATES
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectNotFound, ObjectStore, PreconditionFailed

log = structlog.get_logger("vidwatch.webhooks")

STATUS_WRITE_TRIES = 5


def merge_notifications(
    stored: list[dict[str, Any]], mine: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per (event, endpoint): the one with more attempts, a final state winning."""

    def rank(e: dict[str, Any]) -> tuple[int, int]:
        return (1 if e.get("state") in FINAL_STATES else 0, int(e.get("attempts") or 0))

    out: dict[tuple[Any, Any], dict[str, Any]] = {}
    for entry in [*stored, *mine]:
        ident = (entry.get("event_id"), entry.get("endpoint"))
        if ident not in out or rank(entry) >= rank(out[ident]):
            out[ident] = entry
    return sorted(out.values(), key=lambda e: (str(e.get("event_id")), str(e.get("endpoint"))))


def stored_notifications(store: ObjectStore, job_id: str) -> list[dict[str, Any]]:
    try:
        return list(json.loads(store.get_bytes(keys.status_key(job_id))).get("notifications") or [])
    except (ObjectNotFound, ValueError, AttributeError):
        return []


def write_keeping_notifications(
    store: ObjectStore, manifest: Manifest, etag: str | None
) -> str | None:
    """Write a running job's manifest without losing what the webhook sender merged into
    status.json since the job's own last write (``etag``): the write is conditional on that
    ETag; when someone else wrote meanwhile, the stored ``notifications`` are merged in and
    the write is tried again. Returns the ETag written, for the next call.

    Without it a job's progress writes replaced the sender's delivery states, and a job that
    died (kill -9) took its acknowledged events with it: the next attempt read a manifest
    without them."""
    key = keys.status_key(manifest.job_id)
    for _ in range(STATUS_WRITE_TRIES):
        if etag is not None:
            try:
                return write_manifest(store, manifest, if_match=etag).etag
            except PreconditionFailed:
                pass
        info = store.head(key)
        if info is None:
            break
        manifest.notifications = merge_notifications(
            stored_notifications(store, manifest.job_id), manifest.notifications
        )
        etag = info.etag
    return write_manifest(store, manifest).etag


def write_notifications(
    store: ObjectStore,
    job_id: str,
    entries: list[dict[str, Any]],
    rand: Callable[[], float],
) -> None:
    """Merge the sender's ``entries`` into the job's status.json, conditional on its ETag
    (tried again, after a random pause, when the job wrote meanwhile); nothing when the
    job is gone."""
    key = keys.status_key(job_id)
    for _ in range(STATUS_WRITE_TRIES):
        info = store.head(key)
        if info is None:
            return  # the job is gone (retention)
        try:
            doc = json.loads(store.get_bytes(key))
        except ObjectNotFound:
            return
        doc["notifications"] = merge_notifications(doc.get("notifications") or [], entries)
        try:
            store.put_bytes(
                key,
                json.dumps(doc, indent=2).encode(),
                content_type="application/json",
                if_match=info.etag,
            )
            return
        except PreconditionFailed:
            time.sleep(0.05 + 0.2 * rand())
    log.warning("webhook_status_write_conflict", job_id=job_id, tries=STATUS_WRITE_TRIES)
