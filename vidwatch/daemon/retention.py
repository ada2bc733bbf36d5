"""Scheduled clean-up inside the daemon (APScheduler, every ``RETENTION_INTERVAL_S``).

- Staging (``TEMP_MEDIA_DIR/<job_id>/``): files older than ``STAGING_STALE_HOURS`` go,
  except a job's source, which goes only when its job has ended, the effective policy is
  cleanup-on and the store holds the source (same size). With cleanup off the source is kept
  for good and only stale non-source files (partial downloads, leftovers) are removed. A
  pending job's source (queued, running, or no manifest yet) is never touched.
- A store that does not expire jobs itself (the local folder; ``store.expires_jobs``): a job
  whose newest object is older than ``R2_RETENTION_DAYS`` and whose lease is not live is
  removed whole. Only folders whose id (a ULID: its creation time) is older than that are
  looked at. On R2 the bucket's lifecycle rules do this, and retention lists nothing in the
  bucket.

The keep-or-delete decisions are pure functions of the facts and of ``now``; every deletion
is logged.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from vidwatch.config import Settings
from vidwatch.daemon.job_sources import staged_source
from vidwatch.jobs.manifest import TERMINAL, read_manifest
from vidwatch.jobs.staging import ARRIVING
from vidwatch.r2 import keys
from vidwatch.r2.leases import read_lease
from vidwatch.r2.store import ObjectStore, StoreError
from vidwatch.times import utc_time

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = structlog.get_logger("vidwatch.retention")


# --- pure decisions -------------------------------------------------------------------------
@dataclass(frozen=True)
class StagedFile:
    path: Path
    is_source: bool
    mtime: float
    """Epoch seconds of the file's last change."""


@dataclass(frozen=True)
class StagingFacts:
    job_id: str
    files: tuple[StagedFile, ...]
    state: str | None
    """The job's manifest state, None when it has no manifest."""
    cleanup_policy: bool | None
    """The job's effective local cleanup policy as recorded, None when not recorded."""
    source_in_store: bool
    active: bool
    """Queued or running in this process."""


ORPHAN_GRACE_S = 600.0
"""A non-source staged file (``upload.partial``, a ``.download`` or ``.partial`` copy) of a
job no writer of this process holds goes once it is this old, or at once when its job has
ended: such files are only ever written by a live upload, copy or download."""


def plan_staging(
    facts: StagingFacts,
    *,
    now: float,
    stale_after_s: float,
    default_cleanup: bool,
    orphan_grace_s: float = ORPHAN_GRACE_S,
) -> list[Path]:
    """The staged files to delete now. Judged by the job's manifest and by whether a writer
    of this process holds the folder (``facts.active``), not by age alone:

    - nothing of an active job (queued or running here, or an upload still arriving);
    - the source of a job that has ended (here or on another host) once the store holds it
      and the cleanup policy is on, whatever its age; never the only copy, never with
      cleanup off, never of a pending job;
    - other files (partial uploads, copies, downloads) when their job has ended, or once
      older than ``min(stale_after_s, orphan_grace_s)``: no live writer has them."""
    if facts.active:
        return []
    ended = facts.state in TERMINAL
    policy = default_cleanup if facts.cleanup_policy is None else facts.cleanup_policy
    doomed = []
    for staged in facts.files:
        if staged.is_source:
            if ended and policy and facts.source_in_store:
                doomed.append(staged.path)
        elif ended or now - staged.mtime >= min(stale_after_s, orphan_grace_s):
            doomed.append(staged.path)
    return doomed


PENDING_STATES = ("queued", "running")
LIBRARY_PRUNE_S = 24 * 3600.0
"""How often the people library forgets appearances in jobs that are gone."""


def store_job_expired(
    *,
    newest: datetime,
    now: datetime,
    retention_days: int,
    leased: bool,
    state: str | None = None,
) -> bool:
    """Whether a local-store job is past retention: its newest object is older than
    ``retention_days``, nobody holds a live lease on it, and its manifest does not say it
    is still to run (``queued`` or ``running``: a job waiting in a full queue, or one whose
    daemon died, is kept whatever its age). ``state`` None: no manifest."""
    if leased or state in PENDING_STATES:
        return False
    return now - newest > timedelta(days=retention_days)


# --- the sweep ------------------------------------------------------------------------------
@dataclass
class RetentionReport:
    staging_deleted: list[Path] = field(default_factory=list)
    jobs_expired: list[str] = field(default_factory=list)


class Retention:
    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        *,
        is_active: Callable[[str], bool] = lambda job_id: False,
        clock: Callable[[], float] = time.time,
        logger: Any = None,
        catalog: Any = None,
        library: Any = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.is_active = is_active
        self.clock = clock
        self.log = logger or log
        self.catalog = catalog
        """The catalog's keeper (``remove_job``, ``prune_expired``): a job removed here, or
        expired by the bucket's own rules, leaves the catalog too."""
        self.library = library
        """The people library (``prune``, once a day); None: FACE_LIBRARY decides, on a
        library of its own."""
        self._library_pruned_at = float("-inf")

    def run(self, now: float | None = None) -> RetentionReport:
        """One pass; errors are logged, never raised (the next pass tries again)."""
        now = self.clock() if now is None else now
        report = RetentionReport()
        started = time.monotonic()
        steps = (
            self.sweep_staging,
            self.expire_store,
            self.expire_index,
            self.expire_catalog,
            self.prune_library,
        )
        for step in steps:
            try:
                step(now, report)
            except Exception:  # a scheduled job must not die
                self.log.exception("retention_failed", step=step.__name__)
        self.log.info(
            "retention_done",
            staging_deleted=len(report.staging_deleted),
            jobs_expired=len(report.jobs_expired),
            took_s=round(time.monotonic() - started, 3),
        )
        return report

    # --- staging --------------------------------------------------------------------------
    def sweep_staging(self, now: float, report: RetentionReport) -> None:
        root = Path(self.settings.temp_media_dir)
        if not root.is_dir():
            return
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if not (entry.is_dir(follow_symlinks=False) and keys.is_job_id(entry.name)):
                continue  # not ours: e.g. settings kept in TEMP_MEDIA_DIR
            try:
                self._sweep_job(Path(entry.path), entry.name, now, report)
            except (OSError, StoreError) as exc:  # a job that moved on meanwhile
                self.log.warning("retention_skipped", job_id=entry.name, error=str(exc))

    def staging_facts(self, folder: Path, job_id: str) -> StagingFacts:
        source = staged_source(self.settings, job_id)
        files = []
        for dirpath, _dirs, names in os.walk(folder):
            for name in names:
                path = Path(dirpath) / name
                try:
                    mtime = path.lstat().st_mtime
                except FileNotFoundError:
                    continue
                files.append(StagedFile(path, path == source, mtime))
        state = policy = None
        in_store = False
        try:
            manifest = read_manifest(self.store, job_id)
        except (StoreError, ValueError, KeyError, TypeError) as exc:
            self.log.warning("retention_manifest_unreadable", job_id=job_id, error=str(exc))
            manifest = None
        if manifest is not None:
            state, policy = manifest.state, manifest.cleanup_local_source
            if source is not None and manifest.source_key:
                info = self.store.head(manifest.source_key)
                in_store = info is not None and info.size == source.stat().st_size
        active = self.is_active(job_id) or job_id in ARRIVING
        return StagingFacts(job_id, tuple(files), state, policy, in_store, active)

    def _sweep_job(self, folder: Path, job_id: str, now: float, report: RetentionReport) -> None:
        if self.is_active(job_id) or job_id in ARRIVING:
            return  # in hand here: not even its manifest needs reading
        facts = self.staging_facts(folder, job_id)
        if facts.active:
            return
        stale_after_s = self.settings.staging_stale_hours * 3600
        doomed = plan_staging(
            facts,
            now=now,
            stale_after_s=stale_after_s,
            default_cleanup=self.settings.cleanup_local_video_after_upload_default,
        )
        for path in doomed:
            path.unlink(missing_ok=True)
            report.staging_deleted.append(path)
            self.log.info(
                "retention_deleted",
                kind="staging_file",
                job_id=job_id,
                path=str(path),
                source=path.name.startswith("source."),
                state=facts.state,
            )
        emptied = bool(doomed) and len(doomed) == len(facts.files)
        try:
            folder_stale = now - folder.stat().st_mtime >= min(stale_after_s, ORPHAN_GRACE_S)
        except FileNotFoundError:
            return
        if (emptied or (not facts.files and folder_stale)) and not any(
            p.is_file() for p in folder.rglob("*")
        ):
            shutil.rmtree(folder, ignore_errors=True)
            self.log.info(
                "retention_deleted", kind="staging_folder", job_id=job_id, path=str(folder)
            )

    # --- the local store ------------------------------------------------------------------
    def expire_store(self, now: float, report: RetentionReport) -> None:
        if self.store.expires_jobs:
            return  # R2/S3: the bucket's lifecycle rules expire jobs/
        when = datetime.fromtimestamp(now, UTC)
        cutoff = now - self.settings.r2_retention_days * 24 * 3600
        for job_id in self.store.list_job_ids():
            if keys.job_id_time(job_id) > cutoff:
                # Ids sort by creation time and a job's objects are all newer than its id:
                # from here on no job can be past retention.
                break
            if self.is_active(job_id):
                continue
            objects = list(self.store.list(keys.job_prefix(job_id)))
            if not objects:
                continue
            newest = max(info.last_modified for info in objects)
            lease, _, exists = read_lease(self.store, job_id)
            leased = exists and lease is not None and not lease.released and now < lease.expires_at
            try:
                manifest = read_manifest(self.store, job_id)
            except (StoreError, ValueError, KeyError, TypeError) as exc:
                self.log.warning("retention_manifest_unreadable", job_id=job_id, error=str(exc))
                continue  # what cannot be judged is kept
            state = manifest.state if manifest is not None else None
            if not store_job_expired(
                newest=newest,
                now=when,
                retention_days=self.settings.r2_retention_days,
                leased=leased,
                state=state,
            ):
                if state in PENDING_STATES and now - newest.timestamp() > 86400 * (
                    self.settings.r2_retention_days
                ):
                    self.log.info("retention_kept", kind="store_job", job_id=job_id, state=state)
                continue
            self.store.delete_many(info.key for info in objects)
            self.store.delete(keys.pending_key(job_id))  # a marker left by a job never ended
            report.jobs_expired.append(job_id)
            if self.catalog is not None:
                self.catalog.remove_job(job_id)
            self.log.info(
                "retention_deleted",
                kind="store_job",
                job_id=job_id,
                state=state,
                objects=len(objects),
                newest=utc_time(newest.timestamp()),
                retention_days=self.settings.r2_retention_days,
            )

    def expire_index(self, now: float, report: RetentionReport) -> None:
        """On a store that does not expire jobs itself (the local folder), what the bucket's
        ``index/`` lifecycle rule does on R2: content-index and Idempotency-Key records older
        than R2_RETENTION_DAYS go (the jobs they name are expired by then; a later arrival
        just analyses again)."""
        if self.store.expires_jobs:
            return  # R2/S3: the bucket's lifecycle rules expire index/
        limit = timedelta(days=self.settings.r2_retention_days)
        when = datetime.fromtimestamp(now, UTC)
        old = [i.key for i in self.store.list("index/") if when - i.last_modified > limit]
        if old:
            self.store.delete_many(old)
            self.log.info(
                "retention_deleted",
                kind="index",
                objects=len(old),
                retention_days=self.settings.r2_retention_days,
            )

    def expire_catalog(self, now: float, report: RetentionReport) -> None:
        """Jobs the bucket's lifecycle rules expired (R2) leave the catalog: only those old
        enough are checked, one HEAD each."""
        if self.catalog is not None:
            self.catalog.prune_expired(now, self.settings.r2_retention_days)

    def prune_library(self, now: float, report: RetentionReport) -> None:
        """Once a day: the people library drops appearances in jobs that are gone, and
        forgets strangers seen only there (``PeopleLibrary.prune``)."""
        if not self.settings.face_library or now - self._library_pruned_at < LIBRARY_PRUNE_S:
            return
        from vidwatch.library import PeopleLibrary

        self._library_pruned_at = now
        library = self.library or PeopleLibrary(
            self.store, threshold=self.settings.face_match_threshold
        )
        library.prune()

    # --- the schedule ---------------------------------------------------------------------
    def schedule(self, *, first_run_s: float | None = None) -> BackgroundScheduler:
        """A started APScheduler BackgroundScheduler running ``run`` every
        ``RETENTION_INTERVAL_S`` (the first pass after ``first_run_s``, default one minute
        or the interval, whichever is shorter). Stop it with ``shutdown(wait=False)``."""
        from apscheduler.schedulers.background import BackgroundScheduler

        interval_s = self.settings.retention_interval_s
        first = min(60.0, interval_s) if first_run_s is None else first_run_s
        scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(interval_s) + 1,
            },
        )
        scheduler.add_job(
            self.run,
            "interval",
            seconds=interval_s,
            id="retention",
            name="retention",
            next_run_time=datetime.now(UTC) + timedelta(seconds=first),
        )
        scheduler.start()
        self.log.info(
            "retention_scheduled",
            interval_s=interval_s,
            first_in_s=first,
            staging_stale_hours=self.settings.staging_stale_hours,
            store_expiry_days=None if self.store.expires_jobs else self.settings.r2_retention_days,
        )
        return scheduler
