"""What a webhook sends: the event's body (Standard Webhooks' ``type`` / ``timestamp`` /
``data``), its signature, and how an endpoint is named in logs and status.json."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vidwatch.jobs.manifest import Manifest
from vidwatch.times import utc_time

EVENT_TYPES = ("job.queued", "job.started", "job.completed", "job.failed")


def endpoint_label(url: str) -> str:
    """The endpoint as shown in logs and status.json: no user info, no query, no fragment
    (either may carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def endpoint_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return utc_time(ts)


def event_data(
    type_: str,
    manifest: Manifest,
    *,
    summary: dict[str, Any] | None = None,
    people: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The event's ``data``: the job's identity and state, and what its type adds
    (``job.completed``: the summary, and the people with their library ids and names)."""
    data: dict[str, Any] = {
        "job_id": manifest.job_id,
        "state": manifest.state,
        "origin": manifest.origin,
        "filename": manifest.filename,
        "source_sha256": manifest.source_sha256,
        "source_key": manifest.source_key,
        "attempt": manifest.attempts,
        "created_at": manifest.created_at,
    }
    if type_ in ("job.completed", "job.failed"):
        data["finished_at"] = manifest.finished_at
    if type_ == "job.completed":
        data["results_key"] = manifest.current_results_key()
        data["summary"] = summary
        data["duplicate_of"] = manifest.duplicate_of
        data["people"] = people if people is not None else []
    if type_ == "job.failed":
        data["error"] = manifest.error.to_json() if manifest.error is not None else None
    return data


def event_body(type_: str, data: dict[str, Any], now: float) -> str:
    return json.dumps(
        {"type": type_, "timestamp": iso(now), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` through the
    ``standardwebhooks`` package (the reference implementation of the spec)."""
    from standardwebhooks.webhooks import Webhook

    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body)
