"""Job events as Standard Webhooks (standardwebhooks.com, spec 1.0), delivered at least once.

An event (``job.queued``, ``job.started``, ``job.completed``, ``job.failed``) becomes one
outbox record per endpoint, ``outbox/<event ulid>.<endpoint id>.json``, written to the store
*before* the first attempt. The sender's threads deliver what is due: a record is claimed
with a conditional write (If-Match on its ETag, so two daemons on one bucket never attempt
it at once), POSTed with ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature``
headers, then deleted (2xx delivered, 410 gone, or given up after ``WEBHOOK_MAX_AGE_H``) as
soon as the job's status.json records how it ended, or written back with its next attempt
time. A restart, a crash (the claim runs out) or another daemon picks pending records up by
listing ``outbox/``, which holds only pending records (and, for about a second, ended ones
waiting for that status.json write: a crash then costs a repeated delivery, never a
delivered event missing from status.json).

Each retry keeps the event's ``webhook-id`` and is signed afresh with its own timestamp
(receivers refuse timestamps over 5 minutes old). The decisions (``retry_delay_s``,
``decide``) are pure functions of the record, the outcome and ``now``.

Deliveries never block a job: ``emit`` writes the records and returns; a failed write there
(a store error or any other) is logged and retried by the sender's thread, never dropped.
The delivery state of each event shows in the job's status.json under ``notifications``
(merged in with If-Match) and in /metrics. The secret is never logged; endpoints are
logged without user info and query.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from ulid import ULID

from vidwatch import __version__, metrics
from vidwatch.config import Settings
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectNotFound, ObjectStore, PreconditionFailed, StoreError
from vidwatch.times import utc_time

log = structlog.get_logger("vidwatch.webhooks")

EVENT_TYPES = ("job.queued", "job.started", "job.completed", "job.failed")
OUTBOX_PREFIX = "outbox/"
MAX_RETRY_DELAY_S = 3600.0
JITTER = 0.2
"""Each delay is drawn from [1 - JITTER, 1 + JITTER] times the doubled delay."""
CLAIM_MARGIN_S = 30.0
"""A claim lasts the request's timeout plus this: then another daemon may take the record."""
SCAN_INTERVAL_S = 30.0
"""How often ``outbox/`` is listed for records this process does not know of (left by a
restart or a crash); its own records are scheduled from memory, so one LIST every 30 s
(and one at start) is all the outbox costs while nothing is pending."""
WORKERS = 4
STATUS_WRITE_INTERVAL_S = 1.1
"""R2 takes about one write per second to one key: status.json updates are coalesced."""
STATUS_WRITE_TRIES = 5
CACHE_JOBS = 2000
STOP_WAIT_S = 2.0
FINAL_STATES = ("delivered", "gone", "expired")


# --- pure parts --------------------------------------------------------------------------------
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


# --- the sender ------------------------------------------------------------------------------
@dataclass
class _JobEntries:
    entries: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    dirty: bool = False
    written_at: float = float("-inf")
    finished: set[str] = field(default_factory=set)
    """Outbox keys of events that ended (delivered, gone, expired): deleted once a
    status.json write holding their final state succeeded."""


class WebhookSender:
    """Delivers job events to ``WEBHOOK_URLS``; ``emit`` is all a job's code calls."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        scan_interval_s: float = SCAN_INTERVAL_S,
        workers: int = WORKERS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.owner = owner
        self.clock = clock
        self.rand = rand
        self.endpoints = settings.webhook_endpoints()
        secret = settings.webhook_secret
        self._secret = secret.get_secret_value() if secret is not None else ""
        self.scan_interval_s = scan_interval_s
        self.workers = workers
        self._lock = threading.Condition()
        self._due: list[tuple[float, str]] = []
        self._known: dict[str, float] = {}
        self._in_flight: set[str] = set()
        self._settling: set[str] = set()
        """Ended records left in the outbox until status.json says how they ended."""
        self._unwritten: list[Delivery] = []
        self._jobs: OrderedDict[str, _JobEntries] = OrderedDict()
        self._work: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client: Any = None
        self.delivered = 0
        self.last_scan_error: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)

    # --- life -----------------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled:
            return
        import httpx

        timeout = self.settings.webhook_timeout_s
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": f"vidwatch/{__version__}"},
        )
        self._threads.append(
            threading.Thread(target=self._dispatch, name="vidwatch-webhooks", daemon=True)
        )
        for n in range(self.workers):
            self._threads.append(
                threading.Thread(
                    target=self._deliver_loop, name=f"vidwatch-webhook-{n}", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()
        log.info(
            "webhooks_started",
            endpoints=[endpoint_label(u) for u in self.endpoints],
            timeout_s=timeout,
            retry_base_s=self.settings.webhook_retry_base_s,
            max_age_h=self.settings.webhook_max_age_h,
        )

    def stop(self) -> None:
        """Stop at once: an attempt in flight may finish within ``STOP_WAIT_S``; its claim
        runs out otherwise and the record is attempted again later (at least once)."""
        if not self._threads:
            return
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        for _ in range(self.workers):
            self._work.put(None)
        deadline = time.monotonic() + STOP_WAIT_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._flush_status(force=True)
        self._threads = []
        log.info("webhooks_stopped", pending=len(self._known))

    def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is due now or in flight (``--once`` before it exits); the
        rest stays in the outbox for the next run. False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while time.monotonic() < deadline:
                now = self.clock()
                due = any(d <= now for d in self._known.values())
                if not due and not self._in_flight and not self._unwritten:
                    return True
                self._lock.wait(0.05)
        return False

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "webhooks": self.enabled,
                "webhooks_pending": len(self._known) + len(self._unwritten),
                "webhooks_in_flight": len(self._in_flight),
                "webhooks_delivered": self.delivered,
            }

    # --- emitting -------------------------------------------------------------------------
    def emit(
        self, type_: str, manifest: Manifest, *, summary: dict[str, Any] | None = None
    ) -> None:
        """Record an event for every endpoint (before any attempt) and return. Never raises:
        a failed write leaves the record in memory, written again by the sender's thread."""
        if not self.enabled:
            return
        try:
            now = self.clock()
            event_id = f"msg_{ULID()}"
            people = self._people(manifest) if type_ == "job.completed" else None
            data = event_data(type_, manifest, summary=summary, people=people)
            body = event_body(type_, data, now)
            for url in self.endpoints:
                record = Delivery(
                    event_id=event_id,
                    job_id=manifest.job_id,
                    type=type_,
                    endpoint=url,
                    body=body,
                    created_at=now,
                    next_attempt_at=now,
                )
                self._write_new(record)
            metrics.WEBHOOK_EVENTS.labels(type=type_).inc()
            log.info("webhook_event", job_id=manifest.job_id, type=type_, event_id=event_id)
        except Exception:  # an event must never fail the job
            log.exception("webhook_emit_failed", job_id=manifest.job_id, type=type_)

    def _people(self, manifest: Manifest) -> list[dict[str, Any]] | None:
        """The job's people with their library ids and names now; None (an empty list in
        the event) when its results cannot be read."""
        from vidwatch.library import PeopleLibrary
        from vidwatch.library.jobs import job_people
        from vidwatch.library.people import names_of

        key = manifest.current_results_key()
        if key is None:
            return None
        library = PeopleLibrary(self.store) if self.settings.face_library else None
        try:
            return job_people(self.store, key, names_of(library))
        except Exception as exc:  # noqa: BLE001 - the event goes out without them
            log.warning("webhook_people_unread", job_id=manifest.job_id, error=str(exc))
            return None

    def _write_new(self, record: Delivery) -> bool:
        try:
            self.store.put_bytes(
                record.key, record.to_bytes(), content_type="application/json", if_none_match=True
            )
        except PreconditionFailed:
            pass  # written before (a retried write whose answer was lost)
        except Exception as exc:  # noqa: BLE001 - any failed write keeps the event (not only
            # StoreError: an OSError the store let through once lost an event here)
            log.warning(
                "webhook_outbox_write_failed",
                job_id=record.job_id,
                error=f"{type(exc).__name__}: {exc}",
                effect="kept in memory and written again",
            )
            with self._lock:
                self._unwritten.append(record)
                self._lock.notify_all()
            return False
        self._schedule(record.key, record.next_attempt_at)
        return True

    # --- scheduling -----------------------------------------------------------------------
    def _schedule(self, key: str, due: float) -> None:
        with self._lock:
            self._known[key] = due
            heapq.heappush(self._due, (due, key))
            metrics.WEBHOOK_PENDING.set(len(self._known))
            self._lock.notify_all()

    def _forget(self, key: str) -> None:
        with self._lock:
            self._known.pop(key, None)
            metrics.WEBHOOK_PENDING.set(len(self._known))

    def scan(self) -> None:
        """Pick up pending records this process does not know of: left by a restart or a
        crash, or emitted by another daemon on the bucket. One LIST, one GET per new key."""
        listed = set()
        for info in self.store.list(OUTBOX_PREFIX):
            listed.add(info.key)
            with self._lock:
                if (
                    info.key in self._known
                    or info.key in self._in_flight
                    or info.key in self._settling
                ):
                    continue
            try:
                record = Delivery.from_bytes(self.store.get_bytes(info.key))
            except ObjectNotFound:
                continue
            except (ValueError, TypeError) as exc:
                log.warning("webhook_record_unreadable", key=info.key, error=str(exc))
                continue
            due = record.next_attempt_at
            if record.claimed_by not in (None, self.owner):
                due = max(due, record.claim_until)
            self._schedule(info.key, due)
        with self._lock:
            for key in [k for k in self._known if k not in listed and k not in self._in_flight]:
                self._known.pop(key)  # done by another daemon
            metrics.WEBHOOK_PENDING.set(len(self._known))

    def _dispatch(self) -> None:
        next_scan = 0.0
        while not self._stop.is_set():
            now = self.clock()
            if now >= next_scan:
                next_scan = now + self.scan_interval_s
                try:
                    self.scan()
                    self.last_scan_error = None
                except StoreError as exc:
                    self.last_scan_error = str(exc)
                    log.warning("webhook_scan_failed", error=str(exc))
                except Exception:  # the next scan tries again
                    log.exception("webhook_scan_failed")
            self._retry_unwritten()
            self._flush_status()
            with self._lock:
                now = self.clock()
                while self._due and self._due[0][0] <= now:
                    due, key = heapq.heappop(self._due)
                    if self._known.get(key) != due or key in self._in_flight:
                        continue  # a stale heap entry, or being attempted
                    self._in_flight.add(key)
                    self._work.put(key)
                wake = next_scan
                if self._due:
                    wake = min(wake, self._due[0][0])
                if any(j.dirty for j in self._jobs.values()):
                    wake = min(wake, now + STATUS_WRITE_INTERVAL_S)
                if self._unwritten:
                    wake = min(wake, now + self.settings.webhook_retry_base_s)
                self._lock.wait(max(0.01, min(wake - now, 1.0)))

    def _retry_unwritten(self) -> None:
        with self._lock:
            records, self._unwritten = self._unwritten, []
        for record in records:
            if self._stop.is_set():
                with self._lock:
                    self._unwritten.append(record)
                continue
            self._write_new(record)

    # --- attempts -------------------------------------------------------------------------
    def _deliver_loop(self) -> None:
        while True:
            key = self._work.get()
            if key is None or self._stop.is_set():
                return
            try:
                self.attempt(key)
            except StoreError as exc:
                log.warning("webhook_store_failed", key=key, error=str(exc))
                self._schedule(key, self.clock() + self.settings.webhook_retry_base_s)
            except Exception:  # one record's bug must not stop the sender
                log.exception("webhook_attempt_crashed", key=key)
                self._schedule(key, self.clock() + self.settings.webhook_retry_base_s)
            finally:
                with self._lock:
                    self._in_flight.discard(key)
                    self._lock.notify_all()

    def attempt(self, key: str) -> str | None:
        """Claim the record, POST it, record the outcome. Returns the new state, or None
        when the record was not ours to attempt now (absent, not due, claimed elsewhere)."""
        with self._lock:
            if key in self._settling:  # ended: it only waits for its status.json write
                self._forget(key)
                return None
        info = self.store.head(key)
        if info is None:
            self._forget(key)
            return None
        try:
            record = Delivery.from_bytes(self.store.get_bytes(key))
        except ObjectNotFound:
            self._forget(key)
            return None
        now = self.clock()
        if record.claimed_by not in (None, self.owner) and record.claim_until > now:
            self._schedule(key, record.claim_until)
            return None
        if record.next_attempt_at > now + 0.001:
            self._schedule(key, record.next_attempt_at)
            return None
        bound = log.bind(
            job_id=record.job_id,
            type=record.type,
            event_id=record.event_id,
            endpoint=endpoint_label(record.endpoint),
        )
        if now >= record.created_at + self.settings.webhook_max_age_h * 3600:
            return self._finish(record, Decision("expired"), now, bound)
        record.attempts += 1
        record.claimed_by = self.owner
        record.claim_until = now + self.settings.webhook_timeout_s + CLAIM_MARGIN_S
        try:
            claimed = self.store.put_bytes(
                key, record.to_bytes(), content_type="application/json", if_match=info.etag
            )
        except PreconditionFailed:  # another daemon took it, or it changed: look again
            self._schedule(key, now + 1.0)
            return None
        except ObjectNotFound:
            self._forget(key)
            return None
        outcome, took_s = self._post(record)
        now = self.clock()
        decision = decide(
            created_at=record.created_at,
            attempts=record.attempts,
            outcome=outcome,
            now=now,
            base_s=self.settings.webhook_retry_base_s,
            max_age_s=self.settings.webhook_max_age_h * 3600,
            rand=self.rand(),
        )
        metrics.WEBHOOK_ATTEMPTS.labels(
            result="ok"
            if decision.state == "delivered"
            else ("gone" if decision.state == "gone" else "failed")
        ).inc()
        metrics.WEBHOOK_ATTEMPT_SECONDS.observe(took_s)
        record.last_error = None if decision.state == "delivered" else outcome.describe()
        if decision.state != "pending":
            return self._finish(record, decision, now, bound)
        assert decision.next_attempt_at is not None
        record.next_attempt_at = decision.next_attempt_at
        record.claimed_by, record.claim_until = None, 0.0
        with contextlib.suppress(PreconditionFailed):  # taken over after our claim ran out
            self.store.put_bytes(
                key, record.to_bytes(), content_type="application/json", if_match=claimed.etag
            )
        bound.warning(
            "webhook_attempt_failed",
            attempt=record.attempts,
            error=record.last_error,
            retry_in_s=round(record.next_attempt_at - now, 1),
        )
        self._note(record, "pending", now)
        self._schedule(key, record.next_attempt_at)
        return "pending"

    def _finish(self, record: Delivery, decision: Decision, now: float, bound: Any) -> str:
        """The event ended. Its record stays in the outbox (still claimed by us) until
        status.json holds its final state (``_flush_status`` deletes it then): a crash in
        between leaves the record to be attempted again (at least once), never an event
        delivered that status.json does not list."""
        self._forget(record.key)
        metrics.WEBHOOK_DELIVERIES.labels(outcome=decision.state).inc()
        if decision.state == "delivered":
            with self._lock:
                self.delivered += 1
            bound.info("webhook_delivered", attempts=record.attempts)
        elif decision.state == "gone":
            bound.warning("webhook_gone", attempts=record.attempts, effect="410: not sent again")
        else:
            bound.error(
                "webhook_expired",
                attempts=record.attempts,
                last_error=record.last_error,
                max_age_h=self.settings.webhook_max_age_h,
            )
        self._note(record, decision.state, now, finished=True)
        return decision.state

    def _post(self, record: Delivery) -> tuple[Outcome, float]:
        import httpx

        timestamp = int(self.clock())
        headers = {
            "content-type": "application/json",
            "webhook-id": record.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._secret, record.event_id, timestamp, record.body),
        }
        started = time.monotonic()
        try:
            with self._client.stream(
                "POST", record.endpoint, content=record.body.encode(), headers=headers
            ) as response:
                return Outcome(status=response.status_code), time.monotonic() - started
        except httpx.TimeoutException:
            error = f"no answer within WEBHOOK_TIMEOUT_S={self.settings.webhook_timeout_s:g} s"
        except httpx.ConnectError as exc:
            error = f"cannot connect: {_reason(exc)}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {_reason(exc)}"
        return Outcome(error=error), time.monotonic() - started

    # --- status.json ------------------------------------------------------------------------
    def _note(self, record: Delivery, state: str, now: float, *, finished: bool = False) -> None:
        entry = record.entry(state, now=now)
        evicted: set[str] = set()
        with self._lock:
            job = self._jobs.get(record.job_id) or _JobEntries()
            self._jobs[record.job_id] = job
            self._jobs.move_to_end(record.job_id)
            job.entries[(entry["event_id"], entry["endpoint"])] = entry
            job.dirty = True
            if finished:
                job.finished.add(record.key)
                self._settling.add(record.key)
            while len(self._jobs) > CACHE_JOBS:
                evicted |= self._jobs.popitem(last=False)[1].finished
            self._lock.notify_all()
        self._delete_finished(evicted)  # no status write will come for these

    def _delete_finished(self, finished: set[str]) -> set[str]:
        """Delete ended records from the outbox; returns those whose delete failed."""
        failed = set()
        for key in sorted(finished):
            try:
                self.store.delete(key)
            except StoreError as exc:
                log.warning("webhook_record_delete_failed", key=key, error=str(exc))
                failed.add(key)
        with self._lock:
            self._settling -= finished - failed
        return failed

    def _flush_status(self, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            todo = [
                (job_id, list(job.entries.values()), set(job.finished))
                for job_id, job in self._jobs.items()
                if job.dirty and (force or now - job.written_at >= STATUS_WRITE_INTERVAL_S)
            ]
            for job_id, _, _ in todo:
                self._jobs[job_id].dirty = False
                self._jobs[job_id].written_at = now
        for job_id, entries, finished in todo:
            try:
                self._write_status(job_id, entries)
            except StoreError as exc:
                log.warning("webhook_status_write_failed", job_id=job_id, error=str(exc))
                with self._lock:
                    if job_id in self._jobs:
                        self._jobs[job_id].dirty = True
            else:
                # status.json now says how these ended: their records can go.
                failed = self._delete_finished(finished)
                with self._lock:
                    job = self._jobs.get(job_id)
                    if job is not None:
                        job.finished -= finished - failed
                        job.dirty = job.dirty or bool(failed)
            with self._lock:
                job = self._jobs.get(job_id)
                if job is not None and not job.dirty and _settled(job):
                    self._jobs.pop(job_id)

    def _write_status(self, job_id: str, entries: list[dict[str, Any]]) -> None:
        key = keys.status_key(job_id)
        for _ in range(STATUS_WRITE_TRIES):
            info = self.store.head(key)
            if info is None:
                return  # the job is gone (retention)
            try:
                doc = json.loads(self.store.get_bytes(key))
            except ObjectNotFound:
                return
            doc["notifications"] = merge_notifications(doc.get("notifications") or [], entries)
            try:
                self.store.put_bytes(
                    key,
                    json.dumps(doc, indent=2).encode(),
                    content_type="application/json",
                    if_match=info.etag,
                )
                return
            except PreconditionFailed:
                time.sleep(0.05 + 0.2 * self.rand())
        log.warning("webhook_status_write_conflict", job_id=job_id, tries=STATUS_WRITE_TRIES)


def _settled(job: _JobEntries) -> bool:
    """Every entry final, and the job's last event among them: nothing more will come."""
    entries = list(job.entries.values())
    return (
        not job.finished
        and all(e["state"] in FINAL_STATES for e in entries)
        and any(e["type"] in ("job.completed", "job.failed") for e in entries)
    )


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
