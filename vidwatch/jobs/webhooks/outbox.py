"""One outbox record (``outbox/<event ulid>.<endpoint id>.json``: one event for one
endpoint) and what becomes of it after an attempt: delivered, gone, expired, or pending
with its next attempt time. The decisions are pure functions of the record, the outcome
and ``now``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from vidwatch.jobs.webhooks.events import endpoint_id, endpoint_label, iso

OUTBOX_PREFIX = "outbox/"
MAX_RETRY_DELAY_S = 3600.0
JITTER = 0.2
"""Each delay is drawn from [1 - JITTER, 1 + JITTER] times the doubled delay."""
FINAL_STATES = ("delivered", "gone", "expired")


def retry_delay_s(attempts: int, base_s: float, rand: float) -> float:
    """The wait after the ``attempts``-th failed attempt: ``base_s`` after the first,
    doubling after each, times a jitter factor from ``rand`` in [0, 1), at most an hour."""
    doubled = base_s * 2.0 ** min(max(attempts - 1, 0), 30)
    return min(MAX_RETRY_DELAY_S, doubled * (1.0 - JITTER + 2 * JITTER * rand))


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or an error before any answer."""

    status: int | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        if 300 <= self.status < 400:
            return f"HTTP {self.status} (redirects are not followed)"
        return f"HTTP {self.status}"


@dataclass(frozen=True)
class Decision:
    state: str  # delivered | gone | expired | pending
    next_attempt_at: float | None = None


def decide(
    *,
    created_at: float,
    attempts: int,
    outcome: Outcome,
    now: float,
    base_s: float,
    max_age_s: float,
    rand: float,
) -> Decision:
    """After an attempt: 2xx delivered, 410 gone (this endpoint wants no more of it),
    anything else retried, with a last try at the age limit and none after it."""
    if outcome.status is not None and 200 <= outcome.status < 300:
        return Decision("delivered")
    if outcome.status == 410:
        return Decision("gone")
    deadline = created_at + max_age_s
    if now >= deadline:
        return Decision("expired")
    return Decision("pending", min(now + retry_delay_s(attempts, base_s, rand), deadline))


@dataclass
class Delivery:
    """One outbox record: one event for one endpoint."""

    event_id: str
    job_id: str
    type: str
    endpoint: str
    body: str
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    last_error: str | None = None
    claimed_by: str | None = None
    claim_until: float = 0.0
    schema_version: int = 1

    @property
    def key(self) -> str:
        return outbox_key(self.event_id, self.endpoint)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Delivery:
        doc = json.loads(data)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in known})

    def entry(self, state: str, *, now: float) -> dict[str, Any]:
        """The record as one ``notifications`` entry of status.json."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "endpoint": endpoint_label(self.endpoint),
            "state": state,
            "attempts": self.attempts,
            "delivered_at": iso(now) if state == "delivered" else None,
            "last_error": self.last_error,
            "next_attempt_at": iso(self.next_attempt_at) if state == "pending" else None,
        }


def outbox_key(event_id: str, endpoint: str) -> str:
    return f"{OUTBOX_PREFIX}{event_id.removeprefix('msg_')}.{endpoint_id(endpoint)}.json"
