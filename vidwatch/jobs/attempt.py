"""One attempt at a job: its manifest's transitions, and what a failure means for it.

``Attempt`` holds the manifest from ``running`` to its end (``completed``, ``failed``, or
back to ``queued``), and writes status.json; ``classify`` maps the exception that ended a
job to the error code status.json records. The stages that run in between are in
``vidwatch.jobs.run``.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog

from vidwatch import metrics
from vidwatch.config import Settings
from vidwatch.errors import JobError
from vidwatch.jobs.dedupe import Claim
from vidwatch.jobs.manifest import (
    ErrorInfo,
    Manifest,
    SourceInfo,
    Stage,
    read_manifest,
    utc_at,
    utc_now,
    worker_id,
)
from vidwatch.jobs.names import FILENAME_CHANGED
from vidwatch.jobs.staging import JobSpec, resolve_cleanup
from vidwatch.jobs.webhooks.notifications import write_keeping_notifications
from vidwatch.r2 import keys
from vidwatch.r2.leases import Lease, owner_worker
from vidwatch.r2.local import DISK_FULL_ERRNOS
from vidwatch.r2.retry import RETRY_TALLY, RetryTally
from vidwatch.r2.store import ObjectStore, StorageFull, StoreError

log = structlog.get_logger("vidwatch.jobs")

PROGRESS_WRITE_INTERVAL_S = 2.0
INTAKE_WARNINGS = (FILENAME_CHANGED,)
"""Warnings intake writes before any attempt: kept as they are by every attempt."""
MIN_MANIFEST_INTERVAL_S = 1.1  # R2 allows about one write per second to one key


@dataclass(frozen=True)
class Failure:
    """What an exception that ended a job means for it: the code and message status.json
    records, whether the job's failure page is written (not when the store is what failed,
    unreachable or full: more writes would wait out the same outage, or fill it again), how
    the failure is logged, and whether the store ran out of room (``full``: the job's
    partial writes are then freed, and the message says where the source is)."""

    code: str
    message: str
    page: bool
    level: Literal["warning", "error", "exception"]
    full: bool = False


def classify(exc: Exception) -> Failure:
    """The failure an exception makes of a job, decided by its type alone.

    ``JobError`` (the video, the models): its own code, with a page. A full store or disk
    (``StorageFull``, an ``OSError`` with ENOSPC or EDQUOT): ``storage_full``. Any other
    ``StoreError``: its code, and the setting to check when it names one. Anything else is
    a bug of ours or a library's: ``internal_error``, logged with its traceback.
    ``JobInterrupted`` is no failure: ``run_job`` handles it before asking."""
    if isinstance(exc, JobError):
        return Failure(exc.code, exc.message, page=True, level="warning")
    if isinstance(exc, StorageFull) or (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS):
        return Failure("storage_full", str(exc), page=False, level="error", full=True)
    if isinstance(exc, StoreError):
        check = f" (check {exc.setting})" if exc.setting else ""
        return Failure(exc.code, str(exc) + check, page=False, level="error")
    message = f"{type(exc).__name__}: {exc}"
    return Failure("internal_error", message, page=True, level="exception")


class Attempt:
    """One attempt at a job and the transitions of its manifest: ``running`` from
    ``begin``, then stages (``save``) and progress, and its end: ``completed`` (set by the
    stage that completes it), ``failed`` (``fail``) or back to ``queued`` (``interrupt``).
    status.json is written through ``save`` only, keeping the webhook sender's delivery
    states (``write_keeping_notifications``) and the attempt's store retries."""

    def __init__(
        self,
        spec: JobSpec,
        store: ObjectStore,
        manifest: Manifest,
        record: dict[str, Any],
        on_progress: Callable[[Manifest], None] | None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.manifest = manifest
        self.record = record
        """This attempt's entry in ``attempt_history``."""
        self.number: int = manifest.attempts
        self.on_progress = on_progress
        self.log = log.bind(job_id=spec.job_id)
        self.tally = RetryTally()
        self.verified = False
        """The source is in the store, checked: only then may staging let it go."""
        self.interrupted = False
        self.failure_page = False
        self.claimed: Claim | None = None
        """The content index's entry this job holds, settled at its end."""
        self._last_write = float("-inf")
        self._etag: str | None = None  # of the job's last status.json write
        self._tally_token: contextvars.Token[RetryTally | None] | None = None

    @classmethod
    def begin(
        cls,
        spec: JobSpec,
        store: ObjectStore,
        settings: Settings,
        on_progress: Callable[[Manifest], None] | None,
    ) -> Attempt:
        """The job's manifest, read again and set ``running`` for a new attempt: earlier
        attempts' warnings kept (an attempt cut off recorded as abandoned), intake's added
        once, the attempt in the history."""
        structlog.contextvars.bind_contextvars(job_id=spec.job_id)
        manifest = read_manifest(store, spec.job_id) or Manifest(
            job_id=spec.job_id, source=SourceInfo(origin=spec.origin, filename=spec.filename)
        )
        manifest.origin = spec.origin
        manifest.filename = spec.filename or manifest.filename
        # The source's key from the first write on: a bucket upload under a lower-case id
        # is told apart from another upload to the same job id by it (daemon.intake_keys).
        manifest.source_key = spec.source_key or manifest.source_key
        earlier = _earlier_attempts(manifest, spec.lapsed_lease)
        manifest.state, manifest.stage = "running", "staging"
        manifest.started_at, manifest.finished_at = utc_now(), None
        manifest.error, manifest.warnings = None, earlier
        for warning in spec.warnings:  # intake's (a cleaned file name), once
            if warning not in manifest.warnings:
                manifest.warnings.append(warning)
        manifest.attempts += 1
        record: dict[str, Any] = {
            "attempt": manifest.attempts,
            "worker": worker_id(),
            "started_at": manifest.started_at,
            "ended_at": None,
            "outcome": None,
        }
        manifest.attempt_history.append(record)
        attempt = cls(spec, store, manifest, record, on_progress)
        attempt._tally_token = RETRY_TALLY.set(attempt.tally)
        manifest.frames_done, manifest.frames_total = 0, None
        manifest.cleanup_local_source = resolve_cleanup(
            spec.cleanup_override, settings.cleanup_local_video_after_upload_default
        )
        return attempt

    def save(self, stage: Stage | None = None, *, force: bool = False) -> None:
        """Record a stage; the manifest is written at most once a second (R2 takes about
        one write per second to a key), except when ``force``: the final state always is."""
        _note_retries(self.manifest, self.tally, self.number)
        if stage is not None:
            self.manifest.stage = stage
            structlog.contextvars.bind_contextvars(stage=stage)
            self.log.info("job_stage", stage=stage)
        now = time.monotonic()
        if force or now - self._last_write >= MIN_MANIFEST_INTERVAL_S:
            self._last_write = now
            self._etag = write_keeping_notifications(self.store, self.manifest, self._etag)
        if self.on_progress is not None:
            self.on_progress(self.manifest)

    def progress(self, done: int, total: int | None) -> None:
        """Frames decoded so far: written with the next save at most every
        PROGRESS_WRITE_INTERVAL_S, told to ``on_progress`` every time."""
        self.manifest.frames_done, self.manifest.frames_total = done, total
        if time.monotonic() - self._last_write >= PROGRESS_WRITE_INTERVAL_S:
            self.save()
        elif self.on_progress is not None:
            self.on_progress(self.manifest)

    def interrupt(self) -> None:
        """The daemon is stopping: the job goes back to ``queued``, to be run again."""
        self.interrupted = True
        self.manifest.state, self.manifest.stage = "queued", "queued"
        self.manifest.started_at = None
        self.log.warning("job_interrupted")

    def fail(self, exc: Exception) -> None:
        """Record the job ``failed`` with the code ``classify`` gives the exception."""
        failure = classify(exc)
        self.failure_page = failure.page
        message = failure.message
        if failure.full:
            message = _storage_full_message(
                self.store, self.spec, exc, self.verified, self.manifest.source_key
            )
        _fail(self.manifest, failure.code, message)
        if failure.level == "exception":
            self.log.exception("job_failed", code=failure.code)
        else:
            getattr(self.log, failure.level)(
                "job_failed", code=failure.code, message=failure.message
            )

    def close(self) -> None:
        """The attempt's record ended, its log context and retry tally let go."""
        structlog.contextvars.unbind_contextvars("job_id", "stage")
        if self._tally_token is not None:
            RETRY_TALLY.reset(self._tally_token)
            self._tally_token = None


def unrecorded_attempt(manifest: Manifest | None, lapsed: Lease | None) -> bool:
    """Whether ``lapsed`` (the unreleased lease a claim took over once it ran out) was held
    by an attempt that status.json never heard of: it lost the lease, or its daemon died,
    before its first write landed. An attempt that wrote says ``running`` in the manifest,
    and an attempt's lease is taken before the attempt's ``started_at``."""
    if lapsed is None or lapsed.released:
        return False
    if manifest is None:
        return True
    if manifest.state == "running":
        return False
    last = manifest.attempt_history[-1] if manifest.attempt_history else None
    started = _epoch((last or {}).get("started_at"))
    return started is None or lapsed.acquired_at > started


def _epoch(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _record_unrecorded_attempt(manifest: Manifest, lapsed: Lease) -> None:
    """Put the attempt that held ``lapsed`` into the history, as ``running`` and cut off:
    ``_earlier_attempts`` then reports it as abandoned like any other."""
    manifest.attempts += 1
    manifest.attempt_history.append(
        {
            "attempt": manifest.attempts,
            "worker": owner_worker(lapsed.owner),
            "started_at": utc_at(lapsed.acquired_at),
            "ended_at": None,
            "outcome": None,
        }
    )
    manifest.state = "running"


def _earlier_attempts(manifest: Manifest, lapsed: Lease | None = None) -> list[dict[str, Any]]:
    """The warnings to keep from earlier attempts (each tagged with its attempt), plus one
    for an attempt that was cut off: the manifest still says ``running`` when its daemon
    died or lost the job's lease before it could write its end, and the lease a claim took
    over (``lapsed``) tells of an attempt that lost it before its first write."""
    kept = []
    for warning in manifest.warnings:
        if isinstance(warning, dict) and warning.get("code") in INTAKE_WARNINGS:
            kept.append(warning)  # intake's: of no attempt
        elif isinstance(warning, dict):
            kept.append({"attempt": manifest.attempts or None, **warning})
    if unrecorded_attempt(manifest, lapsed):
        assert lapsed is not None
        _record_unrecorded_attempt(manifest, lapsed)
    last = manifest.attempt_history[-1] if manifest.attempt_history else None
    if manifest.state == "running" and manifest.attempts:
        if last is not None and last.get("outcome") is None:
            last["outcome"] = "abandoned"
        worker = (last or {}).get("worker") or {}
        where = f" on {worker.get('host')}:{worker.get('pid')}" if worker else ""
        metrics.ATTEMPTS_ABANDONED.inc()
        log.warning("job_attempt_abandoned", job_id=manifest.job_id, attempt=manifest.attempts)
        kept.append(
            {
                "attempt": manifest.attempts + 1,
                "code": "attempt_abandoned",
                "message": f"attempt {manifest.attempts}{where} stopped before its end: its "
                "daemon died, or lost the job's lease (the store unreachable for longer than "
                f"LEASE_TTL_S); attempt {manifest.attempts + 1} took the job over",
            }
        )
    elif last is not None and last.get("outcome") is None:
        last["outcome"] = "interrupted"
    return kept


def _note_retries(manifest: Manifest, tally: RetryTally, attempt: int) -> None:
    """Keep the attempt's store retries in its warnings (one entry, kept current)."""
    warning = tally.warning()
    if warning is None:
        return
    warning = {"attempt": attempt, **warning}
    for i, existing in enumerate(manifest.warnings):
        if existing.get("code") == "store_retries" and existing.get("attempt") == attempt:
            manifest.warnings[i] = warning
            return
    manifest.warnings.append(warning)


def _storage_full_message(
    store: ObjectStore, spec: JobSpec, exc: BaseException, verified: bool, source_key: str | None
) -> str:
    """Free what the job wrote (its partial frames and documents are useless, and the
    failed manifest needs room) and say where the source is."""
    keep = {keys.status_key(spec.job_id), keys.lease_key(spec.job_id)}
    try:
        doomed = [
            info.key
            for info in store.list(keys.job_prefix(spec.job_id))
            if info.key not in keep and not keys.is_source_key(info.key)
        ]
        store.delete_many(doomed)
        dropped = f"its {len(doomed)} partial artifacts were removed"
    except StoreError as err:
        dropped = f"its partial artifacts could not be removed ({err})"
    if verified:
        where = f"the source is in the store at {source_key}"
    else:
        where = f"the source is kept in staging at {spec.staged_source}"
    return (
        f"out of storage space: {exc}; {dropped}; {where}. Free some space, then submit "
        "the video again"
    )


def _fail(manifest: Manifest, code: str, message: str) -> None:
    manifest.state, manifest.finished_at = "failed", utc_now()
    manifest.error = ErrorInfo(code=code, message=message)
