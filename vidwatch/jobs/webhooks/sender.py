"""The webhook sender: the threads that deliver what is due in the outbox (a record claimed
with If-Match, POSTed, then deleted or written back with its next attempt), ``emit`` for a
job's events, and the coalesced writes of their delivery state to status.json."""

from __future__ import annotations

import contextlib
import heapq
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from ulid import ULID

from vidwatch import __version__, metrics
from vidwatch.config import Settings
from vidwatch.jobs.manifest import Manifest
from vidwatch.jobs.webhooks.events import endpoint_label, event_body, event_data, sign
from vidwatch.jobs.webhooks.notifications import write_notifications
from vidwatch.jobs.webhooks.outbox import (
    FINAL_STATES,
    OUTBOX_PREFIX,
    Decision,
    Delivery,
    Outcome,
    decide,
)
from vidwatch.r2.store import ObjectNotFound, ObjectStore, PreconditionFailed, StoreError

log = structlog.get_logger("vidwatch.webhooks")

CLAIM_MARGIN_S = 30.0
"""A claim lasts the request's timeout plus this: then another daemon may take the record."""
SCAN_INTERVAL_S = 30.0
"""How often ``outbox/`` is listed for records this process does not know of (left by a
restart or a crash); its own records are scheduled from memory, so one LIST every 30 s
(and one at start) is all the outbox costs while nothing is pending."""
WORKERS = 4
STATUS_WRITE_INTERVAL_S = 1.1
"""R2 takes about one write per second to one key: status.json updates are coalesced."""
CACHE_JOBS = 2000
STOP_WAIT_S = 2.0


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
                write_notifications(self.store, job_id, entries, self.rand)
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
