"""The runner: a bounded queue of jobs and ``JOB_CONCURRENCY`` worker threads.

Each job is claimed with a lease first (``vidwatch.r2.leases``); its status.json is read
again after the claim, and a job already ``completed`` or ``failed`` is not run again: the
lease and that second look together make every job run once, however many daemons share the
bucket. While the job runs, a keeper thread renews the lease every ``LEASE_RENEW_S``; the
job writes through a fenced view of the store that refuses every write once the lease is
lost or has run out, and losing it also sets the job's stop flag.

A job whose source is already in the store (a bucket job, or one resumed after a crash) is
downloaded into staging after the claim. A job that fails is recorded as failed by
``run_job`` and the runner goes on; an interrupted one goes back to ``queued``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from vidwatch import metrics
from vidwatch.config import Settings
from vidwatch.errors import JobInterrupted, QueueFull
from vidwatch.jobs.attempt import unrecorded_attempt
from vidwatch.jobs.manifest import (
    TERMINAL,
    ErrorInfo,
    Manifest,
    SourceInfo,
    failed_at_intake,
    read_manifest,
    utc_now,
    write_manifest,
)
from vidwatch.jobs.run import run_job
from vidwatch.jobs.staging import JobSpec, doubling_wait_s
from vidwatch.r2.fenced import FencedStore, LeaseGuard
from vidwatch.r2.leases import claim, new_owner_id, release
from vidwatch.r2.local import DISK_FULL_ERRNOS
from vidwatch.r2.store import (
    ObjectNotFound,
    ObjectStore,
    StorageFull,
    StoreError,
)
from vidwatch.times import utc_time

log = structlog.get_logger("vidwatch.runner")

INTERRUPT_WAIT_S = 15.0
"""After the grace period, how long an interrupted job may take to write itself back."""

STAGING_FULL_WARNING = "staging_full"
"""The code of the status.json warning of a job waiting for room in TEMP_MEDIA_DIR."""


def _disk_full(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) is a full disk (ENOSPC, a quota)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, StorageFull) or (
            isinstance(cur, OSError) and cur.errno in DISK_FULL_ERRNOS
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


@dataclass
class _RoomWait:
    """A job whose source found TEMP_MEDIA_DIR full: its failed tries and the next one."""

    failures: int
    first_at: float
    retry_at: float


JobFn = Callable[..., Manifest]
Notify = Callable[..., None]
"""``notify(type, manifest, summary=None)``: record a job event (jobs.webhooks.emit)."""


def _no_events(type_: str, manifest: Manifest, *, summary: dict[str, Any] | None = None) -> None:
    return None


# --- the runner -----------------------------------------------------------------------------
@dataclass
class _Running:
    spec: JobSpec
    stop: threading.Event
    started: float = field(default_factory=time.monotonic)


class Runner:
    """Runs submitted jobs, at most ``JOB_CONCURRENCY`` at once, ``QUEUE_MAX`` waiting."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: ObjectStore,
        models: Any,
        toon: Any,
        owner: str | None = None,
        job_fn: JobFn | None = None,
        clock: Callable[[], float] = time.time,
        notify: Notify | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.models = models
        self.toon = toon
        self.owner = owner or new_owner_id()
        self.clock = clock
        self._job_fn: JobFn = job_fn or functools.partial(run_job, dedupe=True)
        self.notify: Notify = notify or _no_events
        self.on_ended: Callable[[str], None] | None = None
        """Told the id of each job this runner ended (its final manifest written): the
        scanner remembers it, and records it, without reading its manifest again."""
        self._queue: queue.Queue[JobSpec] = queue.Queue(maxsize=settings.queue_max)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._active: set[str] = set()
        self._running: dict[str, _Running] = {}
        self._room_waits: dict[str, _RoomWait] = {}
        self._closed = threading.Event()
        self._halt = threading.Event()
        self._workers: list[threading.Thread] = []

    # --- intake side ----------------------------------------------------------------------
    def start(self) -> None:
        for n in range(self.settings.job_concurrency):
            worker = threading.Thread(target=self._work, name=f"vidwatch-runner-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)
        log.info(
            "runner_started",
            workers=len(self._workers),
            queue_max=self.settings.queue_max,
            owner=self.owner,
        )

    def submit(self, spec: JobSpec) -> bool:
        """Queue a job. False when it is already queued or running here; QueueFull when the
        queue is full or the daemon is stopping (the caller retries later)."""
        if self._closed.is_set():
            raise QueueFull("the daemon is stopping")
        with self._lock:
            if spec.job_id in self._active:
                return False
            try:
                self._queue.put_nowait(spec)
            except queue.Full:
                raise QueueFull(f"the queue holds {self.settings.queue_max} jobs") from None
            self._active.add(spec.job_id)
            metrics.QUEUE_DEPTH.set(self._queue.qsize())
        log.info(
            "job_queued",
            job_id=spec.job_id,
            origin=spec.origin,
            source_in_store=spec.source_in_store,
        )
        return True

    def has_room(self) -> bool:
        return not self._closed.is_set() and not self._queue.full()

    def queued(self) -> list[JobSpec]:
        """The jobs waiting for a worker, oldest first (a snapshot)."""
        with self._queue.mutex:
            return list(self._queue.queue)

    def is_active(self, job_id: str) -> bool:
        """Queued or running in this process."""
        with self._lock:
            return job_id in self._active

    def retry_at(self, job_id: str) -> float:
        """When a job waiting for room in TEMP_MEDIA_DIR may be tried again (its clock);
        0.0 for a job that does not wait."""
        with self._lock:
            wait = self._room_waits.get(job_id)
        return wait.retry_at if wait is not None else 0.0

    # --- state ----------------------------------------------------------------------------
    def alive(self) -> bool:
        return bool(self._workers) and (
            self._halt.is_set() or all(w.is_alive() for w in self._workers)
        )

    def idle(self) -> bool:
        with self._lock:
            return not self._active

    def wait_idle(
        self, timeout_s: float | None = None, stop: threading.Event | None = None
    ) -> bool:
        """Wait until nothing is queued or running; False on timeout or ``stop``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._changed:
            while self._active:
                if stop is not None and stop.is_set():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(0.2 if left is None else min(0.2, left))
        return True

    def health(self) -> dict[str, Any]:
        with self._lock:
            running = len(self._running)
        return {
            "runner_alive": self.alive(),
            "queue_depth": self._queue.qsize(),
            "jobs_running": running,
            "stopping": self._closed.is_set(),
        }

    # --- stopping -------------------------------------------------------------------------
    def close(self) -> None:
        """Take no more jobs (intake stops first; a late submit gets QueueFull)."""
        self._closed.set()

    def shutdown(
        self,
        grace_s: float,
        *,
        hurry: threading.Event | None = None,
        interrupt_wait_s: float = INTERRUPT_WAIT_S,
    ) -> bool:
        """Stop taking jobs, give running jobs ``grace_s`` seconds to finish, then interrupt
        them (they go back to ``queued``, their lease released) and wait for that.

        Jobs still queued are dropped: each is recoverable where it came from (a staged
        source with a queued manifest, or a source in the bucket). ``hurry`` (a second
        signal) cuts the grace period short. Returns within ``grace_s + interrupt_wait_s``
        (plus a tenth of a second); False when a job's thread is still alive then."""
        self._closed.set()
        self._halt.set()
        left_queued = []
        with self._lock:
            while True:
                try:
                    spec = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._active.discard(spec.job_id)
                left_queued.append(spec.job_id)
            self._changed.notify_all()
        metrics.QUEUE_DEPTH.set(0)
        if left_queued:
            log.info("jobs_left_queued", count=len(left_queued), job_ids=left_queued)
        deadline = time.monotonic() + grace_s
        while self._any_worker_alive() and time.monotonic() < deadline:
            if hurry is not None and hurry.is_set():
                break
            self._join_all(min(0.1, max(0.0, deadline - time.monotonic())))
        if self._any_worker_alive():
            with self._lock:
                running = list(self._running.items())
            for job_id, job in running:
                log.warning(
                    "job_interrupt_requested",
                    job_id=job_id,
                    after_s=round(time.monotonic() - job.started, 1),
                )
                job.stop.set()
            end = time.monotonic() + interrupt_wait_s
            while self._any_worker_alive() and time.monotonic() < end:
                self._join_all(min(0.1, max(0.0, end - time.monotonic())))
        if self._any_worker_alive():
            log.error("runner_stop_timeout", waited_s=interrupt_wait_s)
            return False
        log.info("runner_stopped")
        return True

    def _any_worker_alive(self) -> bool:
        return any(w.is_alive() for w in self._workers)

    def _join_all(self, timeout_s: float) -> None:
        for worker in self._workers:
            if worker.is_alive():
                worker.join(timeout_s)
                return

    # --- workers --------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._halt.is_set():
            try:
                spec = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            metrics.QUEUE_DEPTH.set(self._queue.qsize())
            try:
                if self._halt.is_set():  # taken just as the daemon began to stop
                    continue
                self._process(spec)
            except Exception:  # one job's bug must not stop the runner
                log.exception("runner_error", job_id=spec.job_id)
            finally:
                with self._lock:
                    self._active.discard(spec.job_id)
                    self._running.pop(spec.job_id, None)
                    self._changed.notify_all()
                structlog.contextvars.clear_contextvars()

    def _process(self, spec: JobSpec) -> None:
        structlog.contextvars.bind_contextvars(job_id=spec.job_id, stage="claim")
        try:
            held = claim(
                self.store,
                spec.job_id,
                self.owner,
                ttl_s=self.settings.lease_ttl_s,
                now=self.clock(),
            )
        except StoreError as exc:
            log.warning("job_claim_failed", error=str(exc))
            return
        if held is None:
            log.info("job_skipped", reason="leased by another worker")
            return
        spec.lapsed_lease = held.lapsed
        stop = threading.Event()
        guard = LeaseGuard(
            self.store,
            held,
            ttl_s=self.settings.lease_ttl_s,
            renew_s=self.settings.lease_renew_s,
            clock=self.clock,
            on_lost=stop.set,
        )
        guard.start()
        try:
            self._run_claimed(spec, guard, stop)
        finally:
            if guard.stop() and not guard.lost.is_set():
                try:
                    release(self.store, guard.held, now=self.clock())
                except StoreError as exc:  # it expires on its own
                    log.warning("lease_release_failed", error=str(exc))

    def _run_claimed(self, spec: JobSpec, guard: LeaseGuard, stop: threading.Event) -> None:
        try:
            manifest = read_manifest(self.store, spec.job_id)
        except (StoreError, ValueError) as exc:
            log.warning("job_manifest_unreadable", error=str(exc))
            return
        # An ended job is not run twice; one refused at intake is, once its upload is fixed.
        retake = manifest is not None and failed_at_intake(manifest) and spec.source_key
        if manifest is not None and manifest.state in TERMINAL and not retake:
            log.info("job_skipped", reason=f"already {manifest.state}")
            return
        store = FencedStore(self.store, guard)
        with self._lock:
            self._running[spec.job_id] = _Running(spec, stop)
        if manifest is not None and spec.cleanup_override is None:
            spec.cleanup_override = manifest.cleanup_local_source
        if manifest is None:  # a new source in the bucket: queued from now on
            self.notify(
                "job.queued",
                Manifest(
                    job_id=spec.job_id,
                    source=SourceInfo(
                        origin=spec.origin, filename=spec.filename, key=spec.source_key
                    ),
                ),
            )
        if spec.source_in_store and not self._fetch_source(spec, manifest, store):
            return
        attempt = (manifest.attempts if manifest else 0) + 1
        attempt += unrecorded_attempt(manifest, spec.lapsed_lease)
        log.info("job_started", origin=spec.origin, attempt=attempt)
        self.notify("job.started", _started(spec, manifest, attempt))
        metrics.JOBS_RUNNING.inc()
        tracker = _ProgressMetrics()
        try:
            try:
                final = self._job_fn(
                    spec,
                    store=store,
                    settings=self.settings,
                    models=self.models,
                    toon=self.toon,
                    on_progress=tracker,
                    stop=stop,
                )
            finally:
                metrics.JOBS_RUNNING.dec()
                tracker.close()
                # run_job unbinds its context at its end; the runner's last lines keep it.
                structlog.contextvars.bind_contextvars(job_id=spec.job_id, stage="done")
        except JobInterrupted:
            if guard.lost.is_set():
                log.warning("job_abandoned", reason="lease lost; another worker has it")
            else:
                log.info("job_requeued", reason="daemon stopping")
            return
        if guard.lost.is_set():
            log.warning("job_abandoned", reason="lease lost; another worker has it")
            return
        metrics.JOBS.labels(state=final.state, origin=spec.origin).inc()
        if final.state in TERMINAL and self.on_ended is not None:
            self.on_ended(spec.job_id)
        if final.state == "completed":
            self.notify("job.completed", final, summary=final.results_summary)
        elif final.state == "failed":
            self.notify("job.failed", final)
        if final.duplicate_of:
            metrics.JOBS_DUPLICATE.inc()
        elif final.summary is not None:
            metrics.FRAMES_ANALYZED.inc(final.summary.frames_analyzed)

    def _fetch_source(self, spec: JobSpec, manifest: Manifest | None, store: FencedStore) -> bool:
        """Download a source that is in the store into staging (whole, or not at all)."""
        key = spec.source_key or (manifest.source_key if manifest else None)
        if key is None:
            log.warning("job_source_unknown")
            return False
        spec.source_key = key
        structlog.contextvars.bind_contextvars(stage="download")
        dest = spec.staged_source
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".download")
        try:
            self.store.download_file(key, partial)
            os.replace(partial, dest)
        except ObjectNotFound:
            partial.unlink(missing_ok=True)
            log.warning("job_failed", code="source_missing", key=key)
            failed = manifest or Manifest(
                job_id=spec.job_id,
                source=SourceInfo(origin=spec.origin, filename=spec.filename, key=key),
            )
            failed.state, failed.stage, failed.finished_at = "failed", "done", utc_now()
            failed.error = ErrorInfo(
                code="source_missing", message=f"the source {key} is no longer in the store"
            )
            with contextlib.suppress(StoreError):
                write_manifest(store, failed)
            metrics.JOBS.labels(state="failed", origin=spec.origin).inc()
            self.notify("job.failed", failed)
            return False
        except (StoreError, OSError) as exc:
            partial.unlink(missing_ok=True)
            if _disk_full(exc):
                self._wait_for_room(spec, manifest, store, key, exc)
                return False
            log.warning(
                "job_source_download_failed",
                key=key,
                error=str(exc),
                effect="retried on a later poll",
            )
            return False
        with self._lock:
            waited = self._room_waits.pop(spec.job_id, None)
        metrics.STAGING_FULL_WAITING.set(len(self._room_waits))
        if waited is not None:
            log.info(
                "job_staging_room_back",
                job_id=spec.job_id,
                failed_tries=waited.failures,
                waited_s=round(self.clock() - waited.first_at, 1),
            )
        log.info("job_source_downloaded", key=key, bytes=dest.stat().st_size)
        return True

    def _wait_for_room(
        self,
        spec: JobSpec,
        manifest: Manifest | None,
        store: FencedStore,
        key: str,
        exc: BaseException,
    ) -> None:
        """The source did not fit in TEMP_MEDIA_DIR: the job stays queued (its source stays
        in the store) and is tried again after a wait that doubles with each full-disk try,
        from BUCKET_POLL_S up to STAGING_FULL_RETRY_MAX_S. One log line, one count and the
        job's status.json (a ``staging_full`` warning) say so."""
        now = self.clock()
        with self._lock:
            wait = self._room_waits.get(spec.job_id) or _RoomWait(0, now, now)
            wait.failures += 1
            wait_s = doubling_wait_s(
                wait.failures, self.settings.bucket_poll_s, self.settings.staging_full_retry_max_s
            )
            wait.retry_at = now + wait_s
            self._room_waits[spec.job_id] = wait
            waiting = len(self._room_waits)
        metrics.STAGING_FULL_WAITS.inc()
        metrics.STAGING_FULL_WAITING.set(waiting)
        try:
            free = shutil.disk_usage(self.settings.temp_media_dir).free
        except OSError:
            free = None
        try:
            size = self.store.head(key)
            needed = size.size if size is not None else None
        except StoreError:
            needed = None
        next_at = _iso(wait.retry_at)
        log.warning(
            "job_staging_full",
            job_id=spec.job_id,
            key=key,
            failed_tries=wait.failures,
            free_bytes=free,
            source_bytes=needed,
            retry_in_s=wait_s,
            next_retry_at=next_at,
            error=str(exc),
            effect="job stays queued, its source in the store; tried again later",
        )
        waiting_manifest = manifest or Manifest(
            job_id=spec.job_id,
            source=SourceInfo(origin=spec.origin, filename=spec.filename, key=key),
        )
        waiting_manifest.source_key = waiting_manifest.source_key or key
        attempt = waiting_manifest.attempts + 1
        warning: dict[str, Any] = {
            "attempt": attempt,
            "code": STAGING_FULL_WARNING,
            "failed_tries": wait.failures,
            "first_at": _iso(wait.first_at),
            "last_at": _iso(now),
            "next_retry_at": next_at,
            "free_bytes": free,
            "source_bytes": needed,
            "message": (
                f"the staging disk (TEMP_MEDIA_DIR) had no room for the source ({needed} "
                f"bytes, {free} free): {wait.failures} download tries found it full since "
                f"{_iso(wait.first_at)}; the source stays in the store at {key} and the job "
                "waits, trying again after a doubling wait (from BUCKET_POLL_S up to "
                "STAGING_FULL_RETRY_MAX_S)"
            ),
        }
        kept = [
            w
            for w in waiting_manifest.warnings
            if not (w.get("code") == STAGING_FULL_WARNING and w.get("attempt") == attempt)
        ]
        waiting_manifest.warnings = [*kept, warning]
        try:
            write_manifest(store, waiting_manifest)
        except StoreError as err:  # the log line and the metric still say it
            log.warning("manifest_write_failed", job_id=spec.job_id, error=str(err))


def _iso(ts: float) -> str:
    return utc_time(ts, micros=False)


def _started(spec: JobSpec, manifest: Manifest | None, attempt: int) -> Manifest:
    """The manifest as job.started reports it (run_job writes the same state)."""
    base = manifest or Manifest(
        job_id=spec.job_id, source=SourceInfo(origin=spec.origin, filename=spec.filename)
    )
    started = base.model_copy(deep=True)
    started.state, started.attempts, started.notifications = "running", attempt, []
    started.origin = spec.origin
    started.filename = spec.filename or base.filename
    started.source_key = spec.source_key or base.source_key
    return started


class _ProgressMetrics:
    """Turns a job's progress callbacks into stage timings and frame counts."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.since = time.monotonic()
        self.frames = 0

    def __call__(self, manifest: Manifest) -> None:
        if manifest.stage != self.stage:
            self.close()
            self.stage, self.since = manifest.stage, time.monotonic()
        if manifest.frames_done > self.frames:
            metrics.FRAMES_DECODED.inc(manifest.frames_done - self.frames)
            self.frames = manifest.frames_done

    def close(self) -> None:
        if self.stage is not None and self.stage != "done":
            metrics.STAGE_SECONDS.labels(stage=self.stage).observe(time.monotonic() - self.since)
        self.stage = None
