"""The job scanner: new sources in the bucket, and jobs to take up again.

Every ``BUCKET_POLL_S`` seconds (and once at start-up, before the daemon says it is ready) a
poll looks at what is pending, and nothing else:

- the pending markers (``pending/<job_id>``, written with every job and deleted when it
  ends): a job ``queued`` or ``running`` whose lease is free (expired after a crash,
  released at a stop) and whose source is in the store is taken up again;
- the job folders made in the last ``BUCKET_WINDOW_S`` (job ids are ULIDs, which sort by
  creation time: a listing from ``StartAfter=jobs/<id of now - window>``): on a store others
  write into, ``jobs/<job_id>/input/source.<ext>`` without a ``status.json`` is a new job
  with ``origin: bucket``;
- the staging folder ``TEMP_MEDIA_DIR``, for sources whose job is still pending (a job
  queued when the daemon stopped, or one whose upload never finished).

A job ``completed`` or ``failed`` is remembered and never looked at again, also across
restarts: the full sweep writes the ids of ended jobs into the store (``scan/ended.json.gz``,
``vidwatch.r2.ended``), and a starting scanner reads that record once. A full sweep of all of
``jobs/`` (at start-up in the background, then every ``BUCKET_FULL_SWEEP_S``) finds what the
window and the markers miss: an upload under an id older than the window, a job whose marker
was lost; after a restart it reads only the manifests of folders the record does not name.

The runner's lease makes a job found twice (here and on another host, or by two scans) run
once. A job held by a live lease is left alone until its lease would expire.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import structlog

from vidwatch import metrics
from vidwatch.config import Settings
from vidwatch.daemon.ended_jobs import EndedJobs
from vidwatch.daemon.intake_keys import BadKeys
from vidwatch.daemon.job_sources import find_source_key, staged_job_ids, staged_source
from vidwatch.daemon.scan_report import ScanReport, record_scan
from vidwatch.errors import QueueFull
from vidwatch.jobs.manifest import TERMINAL, Manifest, failed_at_intake, read_manifest
from vidwatch.jobs.staging import JobSpec, job_spec_for_store_source
from vidwatch.r2 import calls, keys
from vidwatch.r2.leases import Verdict, decide, read_lease
from vidwatch.r2.pending import clear_pending, list_pending, mark_pending
from vidwatch.r2.store import ObjectStore, StoreError

log = structlog.get_logger("vidwatch.intake.bucket")

# --- the scanner ----------------------------------------------------------------------------
ORPHAN_MARKER_GRACE_S = 120.0
"""A marker whose job has neither a manifest nor a source is deleted once it is this old: an
upload refused after its marker was written whose delete was lost, an intake cut short, a
job folder expired. An intake writes the marker just before the manifest, so the grace
only has to outlast that one write's retries (about a minute when the store is down); a
job whose marker went early is still seen by the window and marked again by the sweep."""

WAIT_FOR_ROOM_S = 0.5
RECORD_STOP_WAIT_S = 3.0
"""How long a stop waits for the record of ended jobs to be written."""


@dataclass
class Finding:
    """What one look at a job found: a job to submit (``spec``), or why not."""

    job_id: str
    spec: JobSpec | None
    why: str
    state: str | None = None
    """The manifest's state; None without a (readable) manifest."""
    source: bool = False
    """Whether the job's source was found in the store."""

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL


class JobScanner:
    """Finds jobs to run in the store and in staging and submits them to the runner.

    A poll (every ``BUCKET_POLL_S``, and at start-up) costs what is pending, not what the
    bucket holds: the pending markers (``pending/``), the job folders made in the last
    ``BUCKET_WINDOW_S`` (a listing from ``StartAfter``) that this process has not settled
    yet, and the staging folder. A full sweep (``sweep_once``: at start-up in the
    background, then every ``BUCKET_FULL_SWEEP_S``) lists all of ``jobs/`` and reads the
    manifests of the folders this process has not seen end, concurrently and at a bounded
    pace: it finds what the window and the markers miss (an upload under an old id, a marker
    lost to a crash) and writes missing markers again.

    Ended jobs are remembered (about 120 bytes each), so a later sweep reads no manifest of
    a job already seen ended; the memory is pruned at each sweep to what the bucket holds.
    Each sweep (and ``stop``) writes what it learnt into the store's record of ended jobs,
    which the first poll of the next start reads (one GET): a restart's first sweep reads
    only the manifests of folders nobody recorded ended.
    """

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        *,
        submit: Callable[[JobSpec], bool],
        is_active: Callable[[str], bool],
        has_room: Callable[[], bool],
        owner: str,
        new_sources: bool,
        clock: Callable[[], float] = time.time,
        page_size: int = 1000,
        retry_at: Callable[[str], float] | None = None,
        on_scan: Callable[[ScanReport], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.submit = submit
        self.is_active = is_active
        self.has_room = has_room
        self.owner = owner
        self.new_sources = new_sources
        self.clock = clock
        self.page_size = page_size
        self.retry_at = retry_at or (lambda job_id: 0.0)
        """When a job may be submitted again after its source found staging full (the
        runner's ``retry_at``); until then polls and sweeps leave it alone."""
        self.on_scan = on_scan
        """Told of every poll and sweep that listed without error (the catalog follows the
        listings: ``vidwatch.catalog.keeper``)."""
        self.ended_jobs = EndedJobs(store)
        self._not_before: dict[str, float] = {}
        self._settled: set[str] = set()
        """Window folders without a marker that need nothing now (looked at again by the
        next sweep): no manifest and no source, or an unreadable manifest."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sweeper: threading.Thread | None = None
        self._sweep_lock = threading.Lock()
        self.bad_keys = BadKeys(settings, store)
        self.polls = 0
        self.sweeps = 0
        self.last_error: str | None = None
        self.last_found: set[str] = set()
        """The jobs the last poll submitted."""
        self.last_poll: ScanReport | None = None
        self.last_sweep: ScanReport | None = None
        calls.watch(store)

    # --- the loops ------------------------------------------------------------------------
    def start(self, *, sweep: bool = True) -> None:
        """Poll every ``BUCKET_POLL_S``; with ``sweep``, sweep now (in the background) and
        then every ``BUCKET_FULL_SWEEP_S``."""
        self._thread = threading.Thread(target=self._loop, name="vidwatch-scanner", daemon=True)
        self._thread.start()
        if sweep:
            self._sweeper = threading.Thread(
                target=self._sweep_loop, name="vidwatch-sweeper", daemon=True
            )
            self._sweeper.start()

    def halt(self) -> None:
        """Submit nothing more (only sets a flag)."""
        self._stop.set()

    def stop(self) -> None:
        """Stop the loops, then write what this process learnt into the record of ended
        jobs (the jobs its runner ended since the last sweep)."""
        self._stop.set()
        for thread in (self._thread, self._sweeper):
            if thread is not None:
                thread.join(timeout=5)
        if self.ended_jobs.loaded and self.last_error is None:
            # Bounded: with the store gone, a write would sit in its retries for a minute,
            # and the stop has seconds; what is not written costs reads at the next start.
            saver = threading.Thread(target=self.save_record, name="vidwatch-record", daemon=True)
            saver.start()
            saver.join(RECORD_STOP_WAIT_S)
            if saver.is_alive():
                log.warning("ended_record_write_cut_off", waited_s=RECORD_STOP_WAIT_S)

    # --- the record of ended jobs ---------------------------------------------------------
    def note_ended(self, job_id: str) -> None:
        """A job this process's runner ended (its final manifest is written): remembered
        without reading its manifest again, and recorded at the next sweep or at stop."""
        self.ended_jobs.note_ended(job_id)

    def save_record(self, *, listed: set[str] | None = None, newer_than: str | None = None) -> bool:
        """Write what this process learnt into the store's record of ended jobs
        (``EndedJobs.save``); True when it wrote."""
        return self.ended_jobs.save(listed=listed, newer_than=newer_than)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.bucket_poll_s):
            self.poll_once()

    def _sweep_loop(self) -> None:
        period = self.settings.bucket_full_sweep_s
        while not self._stop.is_set():
            try:
                self.sweep_once()
            except Exception:  # the next sweep tries again
                log.exception("sweep_failed")
            if period <= 0 or self._stop.wait(period):
                return

    # --- a poll ---------------------------------------------------------------------------
    def poll_once(self, *, startup: bool = False) -> int:
        """One poll of staging, the pending markers and the recent window; the number of
        jobs submitted.

        ``startup``: staged sources without any manifest (their intake was cut short before
        it wrote one) are taken too; later polls leave those alone, since an intake may be
        between staging a source and writing its manifest."""
        report = ScanReport("poll")
        started = time.monotonic()
        self.last_found = set()
        try:
            with calls.counting(report.calls):
                self.ended_jobs.load()
                self._scan_staging(startup=startup, report=report)
                markers = self._scan_markers(report)
                self._scan_window(markers, report)
            self.last_error = None
            if self.on_scan is not None:
                self.on_scan(report)
        except QueueFull:
            log.info("scan_paused", reason="queue full or stopping")
        except StoreError as exc:
            self.last_error = str(exc)
            log.warning("scan_failed", error=str(exc))
        except Exception as exc:  # the next poll tries again
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("scan_failed")
        report.seconds = time.monotonic() - started
        record_scan(report)
        self.polls += 1
        self.last_poll = report
        return report.submitted

    def _offer(self, spec: JobSpec, why: str, *, wait: bool = False) -> int:
        while not self._stop.is_set() and not self.has_room():
            if not wait:
                raise QueueFull("runner queue full")
            self._stop.wait(WAIT_FOR_ROOM_S)
        if self._stop.is_set():
            raise QueueFull("stopping")
        if self.submit(spec):
            self.last_found.add(spec.job_id)
            log.info("job_found", job_id=spec.job_id, why=why, origin=spec.origin)
            return 1
        return 0

    def _skip(self, job_id: str, now: float) -> bool:
        return (
            job_id in self.ended_jobs
            or self.is_active(job_id)
            or now < self._not_before.get(job_id, 0.0)
            or now < self.retry_at(job_id)
        )

    def _scan_markers(self, report: ScanReport) -> set[str]:
        """The pending markers: each job not settled here is looked at (its manifest, its
        lease); a marker whose job ended, or an orphan, is deleted."""
        listed = list(list_pending(self.store))
        report.markers = len(listed)
        now = self.clock()
        # A marker is looked at even for a job seen ended: its delete was lost, or the job
        # was queued again.
        todo = [
            m
            for m in listed
            if not self.is_active(m.job_id)
            and now >= self._not_before.get(m.job_id, 0.0)
            and now >= self.retry_at(m.job_id)
        ]
        written = {m.job_id: m.written_at for m in listed}
        report.marked = set(written)
        for found in self._examine_all([m.job_id for m in todo]):
            report.inspected += 1
            if found.spec is not None:
                report.submitted += self._submit_found(found, report)
            elif found.ended or (
                found.state is None
                and not found.source
                and found.why in ("no source in the store yet", "no manifest")
                and now - written[found.job_id].timestamp() > ORPHAN_MARKER_GRACE_S
            ):
                self._drop_marker(found, report)
        return set(written)

    def _scan_window(self, markers: set[str], report: ScanReport) -> None:
        """The job folders made in the last ``BUCKET_WINDOW_S`` that are neither marked nor
        settled here: new uploads, above all. Newest first."""
        start = keys.job_id_floor(self.clock() - self.settings.bucket_window_s)
        now = self.clock()
        todo = []
        others: list[str] = []
        for job_id in self.store.list_job_ids(
            start_after=start, page_size=self.page_size, others=others
        ):
            report.folders += 1
            report.listed.add(job_id)
            if job_id in markers or job_id in self._settled or self._skip(job_id, now):
                continue
            todo.append(job_id)
        for found in self._examine_all(todo[::-1]):
            report.inspected += 1
            if found.spec is not None:
                report.submitted += self._submit_found(found, report)
            elif found.why in ("no source in the store yet", "no manifest"):
                self._settled.add(found.job_id)  # the next sweep looks again
        if self.new_sources and others:  # keys outside the layout (answered once each)
            report.submitted += self.bad_keys.folders(others, self._offer)

    def _submit_found(self, found: Finding, report: ScanReport, *, wait: bool = False) -> int:
        assert found.spec is not None
        if found.state is None:
            # A new upload gets its marker before anyone runs it: from now on a restart or
            # another host finds it by the markers, whatever its id's age.
            try:
                mark_pending(self.store, found.job_id, origin="bucket")
                report.markers_written += 1
            except StoreError as exc:
                log.warning("pending_mark_failed", job_id=found.job_id, error=str(exc))
        return self._offer(found.spec, found.why, wait=wait)

    def _drop_marker(self, found: Finding, report: ScanReport) -> None:
        try:
            clear_pending(self.store, found.job_id)
            report.markers_deleted += 1
            log.info("pending_marker_deleted", job_id=found.job_id, why=found.why)
        except StoreError as exc:
            log.warning("pending_marker_delete_failed", job_id=found.job_id, error=str(exc))

    def _examine_all(self, job_ids: list[str]) -> Iterator[Finding]:
        """Look at jobs, several at once when there are several (a restart's window)."""
        if len(job_ids) <= 1:
            yield from (self.examine(job_id) for job_id in job_ids)
            return
        look = self._examiner()
        workers = min(self.settings.bucket_sweep_concurrency, len(job_ids))
        with ThreadPoolExecutor(workers, thread_name_prefix="vidwatch-scan") as pool:
            yield from pool.map(look, job_ids)

    def _examiner(self) -> Callable[[str], Finding]:
        """``examine`` for a pool's threads, whose requests count for the calling scan."""
        counts = calls.active_counts()

        def look(job_id: str) -> Finding:
            with contextlib.ExitStack() as stack:
                for c in counts:
                    stack.enter_context(calls.counting(c))
                return self.examine(job_id)

        return look

    # --- a full sweep ---------------------------------------------------------------------
    def sweep_once(self, *, paced: bool = True) -> ScanReport:
        """List all of ``jobs/`` and look at every folder this process has not seen end and
        that no marker covers; submit what is to run, write missing markers again.

        Reads run ``BUCKET_SWEEP_CONCURRENCY`` at once, at most ``BUCKET_SWEEP_READS_PER_S``
        folders a second (``paced``), so that a sweep of a large bucket leaves the store and
        the polls their share. Only one sweep runs at a time."""
        with self._sweep_lock:
            report = ScanReport("sweep")
            started = time.monotonic()
            try:
                with calls.counting(report.calls):
                    self._sweep(report, paced=paced)
            except QueueFull:
                log.info("sweep_stopped", reason="stopping")
            except StoreError as exc:
                log.warning("sweep_failed", error=str(exc))
            report.seconds = time.monotonic() - started
            self.sweeps += 1
            self.last_sweep = report
            record_scan(report)
            return report

    def _sweep(self, report: ScanReport, *, paced: bool) -> None:  # noqa: C901 - one listing walk; its outcomes are counted in place
        self.ended_jobs.load()
        listing_from = keys.job_id_floor(self.clock() - 60.0)
        markers = {m.job_id for m in list_pending(self.store)}
        report.markers = len(markers)
        rate = self.settings.bucket_sweep_reads_per_s if paced else 0.0
        concurrency = self.settings.bucket_sweep_concurrency
        look = self._examiner()
        others: list[str] = []
        listed: set[str] = set()
        outcomes = {"known_ended": 0, "marked": 0, "busy": 0, "read": 0}
        pending: set[Future[Finding]] = set()
        next_at = time.monotonic()

        def settle(done: set[Future[Finding]]) -> None:
            for future in done:
                found = future.result()
                report.inspected += 1
                if found.spec is not None:
                    report.submitted += self._submit_found(found, report, wait=True)
                if not found.ended and found.state is not None and found.job_id not in markers:
                    # A pending job without its marker (lost to a crash): mark it again so
                    # that polls and restarts find it from now on.
                    try:
                        mark_pending(self.store, found.job_id)
                        report.markers_written += 1
                        log.warning("pending_marker_restored", job_id=found.job_id)
                    except StoreError as exc:
                        log.warning("pending_mark_failed", job_id=found.job_id, error=str(exc))

        with ThreadPoolExecutor(concurrency, thread_name_prefix="vidwatch-sweep") as pool:
            for job_id in self.store.list_job_ids(page_size=self.page_size, others=others):
                if self._stop.is_set():
                    raise QueueFull("stopping")
                listed.add(job_id)
                report.folders += 1
                if job_id in self.ended_jobs:
                    outcomes["known_ended"] += 1
                    continue
                if job_id in markers:
                    outcomes["marked"] += 1  # the polls look after it
                    continue
                if self._skip(job_id, self.clock()):
                    outcomes["busy"] += 1
                    continue
                outcomes["read"] += 1
                if rate > 0:
                    next_at = max(next_at + 1.0 / rate, time.monotonic())
                    if self._stop.wait(max(0.0, next_at - time.monotonic())):
                        raise QueueFull("stopping")
                while len(pending) >= 2 * concurrency:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    settle(done)
                pending.add(pool.submit(look, job_id))
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                settle(done)
        if self.new_sources and others:
            report.submitted += self.bad_keys.folders(
                others, lambda spec, why: self._offer(spec, why, wait=True)
            )
        # Forget what the bucket no longer holds (expired), so memory follows the bucket.
        self.ended_jobs.keep_only(listed | staged_job_ids(self.settings))
        report.listed = listed
        if self.on_scan is not None:
            self.on_scan(report)
        self._settled.clear()
        self.save_record(listed=listed, newer_than=listing_from)
        for outcome, n in outcomes.items():
            metrics.BUCKET_SWEEP_FOLDERS.labels(outcome=outcome).set(n)

    # --- one job --------------------------------------------------------------------------
    def _lease_free(self, job_id: str) -> bool:
        lease, _, exists = read_lease(self.store, job_id)
        now = self.clock()
        if exists and lease is not None and decide(lease, now, self.owner) is Verdict.WAIT:
            self._not_before[job_id] = lease.expires_at
            return False
        self._not_before.pop(job_id, None)
        return True

    def _manifest(self, job_id: str) -> tuple[Manifest | None, bool]:
        """(manifest, readable)."""
        try:
            return read_manifest(self.store, job_id), True
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("manifest_unreadable", job_id=job_id, error=str(exc))
            # Not ours to guess about (logged once), but not for ever: a fix is read at the
            # next start.
            self.ended_jobs.add(job_id, recordable=False)
            return None, False

    def inspect(self, job_id: str) -> tuple[JobSpec | None, str]:
        """Whether the job in the store is one to run now, and why."""
        found = self.examine(job_id)
        return found.spec, found.why

    def examine(self, job_id: str) -> Finding:
        """Whether the job in the store is one to run now, and what was found."""
        manifest, readable = self._manifest(job_id)
        if not readable:
            return Finding(job_id, None, "unreadable manifest")
        state = manifest.state if manifest is not None else None
        if manifest is not None and manifest.state in TERMINAL:
            if self.new_sources and failed_at_intake(manifest):
                # Refused at intake (a misnamed source): taken once the right key appears.
                key = find_source_key(self.store, job_id)
                if key is None:
                    return Finding(job_id, None, "refused at intake", state)
                spec = job_spec_for_store_source(self.settings, job_id, key, manifest=None)
                return Finding(job_id, spec, "source uploaded under the right key", None, True)
            self.ended_jobs.note_ended(job_id, recordable=not failed_at_intake(manifest))
            self._not_before.pop(job_id, None)
            return Finding(job_id, None, manifest.state, state)
        self.ended_jobs.pending_again(job_id)  # queued again: out of the record at next write
        if manifest is None and not self.new_sources:
            return Finding(job_id, None, "no manifest")
        if not self._lease_free(job_id):
            return Finding(job_id, None, "leased", state)
        if manifest is not None and manifest.source_key:
            key = manifest.source_key if self.store.head(manifest.source_key) else None
        else:
            key = find_source_key(self.store, job_id)
        if key is None:
            if manifest is None and self.new_sources and self.bad_keys.misnamed_input(job_id):
                return Finding(job_id, None, "misnamed source", state)
            return Finding(job_id, None, "no source in the store yet", state)
        why = "new source in the bucket" if manifest is None else f"resume {manifest.state}"
        spec = job_spec_for_store_source(self.settings, job_id, key, manifest=manifest)
        return Finding(job_id, spec, why, state, source=True)

    # --- staging --------------------------------------------------------------------------
    def _scan_staging(self, *, startup: bool, report: ScanReport) -> None:
        for job_id in sorted(staged_job_ids(self.settings)):
            if self._skip(job_id, self.clock()):
                continue
            source = staged_source(self.settings, job_id)
            if source is None:
                continue
            manifest, readable = self._manifest(job_id)
            if not readable:
                continue
            if manifest is not None and manifest.state in TERMINAL:
                self.ended_jobs.add(job_id, recordable=not failed_at_intake(manifest))
                continue
            if manifest is None and not startup:
                continue
            if not self._lease_free(job_id):
                continue
            if manifest is not None and manifest.origin == "bucket" and manifest.source_key:
                spec = job_spec_for_store_source(
                    self.settings, job_id, manifest.source_key, manifest=manifest
                )
            else:
                spec = JobSpec(
                    job_id=job_id,
                    staged_source=source,
                    origin=manifest.origin if manifest else "inbox",
                    filename=manifest.filename if manifest else None,
                    cleanup_override=manifest.cleanup_local_source if manifest else None,
                )
            why = "staged, " + (f"was {manifest.state}" if manifest else "no manifest")
            report.submitted += self._offer(spec, why)
