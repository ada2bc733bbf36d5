"""The job scanner: new sources in the bucket, and jobs to take up again.

Every ``BUCKET_POLL_S`` seconds (and once at start-up, before the daemon says it is ready):

- the store is listed one ``jobs/<job_id>/`` folder at a time (``list_job_ids``); a job
  ``completed`` or ``failed`` is remembered and never looked at again; a job ``queued`` or
  ``running`` whose lease is free (expired after a crash, released at a stop) and whose source
  is in the store is taken up again; on a shared store (R2/S3: ``store.shared``),
  ``jobs/<job_id>/input/source.<ext>`` without a ``status.json`` is a new job with
  ``origin: bucket``;
- the staging folder ``TEMP_MEDIA_DIR`` is scanned for sources whose job is still pending
  (a job queued when the daemon stopped, or one whose upload never finished).

The runner's lease makes a job found twice (here and on another host, or by two scans) run
once. A job held by a live lease is left alone until its lease would expire.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from vidwatch.config import Settings
from vidwatch.daemon.intake_keys import BadKeys, failed_at_intake
from vidwatch.daemon.runner import TERMINAL, job_spec_for_store_source
from vidwatch.errors import QueueFull
from vidwatch.jobs.manifest import Manifest, read_manifest
from vidwatch.jobs.staging import JobSpec
from vidwatch.r2 import keys
from vidwatch.r2.leases import Verdict, decide, read_lease
from vidwatch.r2.store import ObjectStore, StoreError

log = structlog.get_logger("vidwatch.intake.bucket")

_STAGED_SOURCE = re.compile(r"^source\.[a-z0-9]{1,8}$")


# --- listing jobs ---------------------------------------------------------------------------
def _scandir(folder: Path):
    import os

    with os.scandir(folder) as entries:
        return list(entries)


def find_source_key(store: ObjectStore, job_id: str) -> str | None:
    """The job's ``input/source.<ext>`` in the store, or None."""
    found = [
        info.key
        for info in store.list(keys.input_prefix(job_id))
        if keys.parse_source_key(info.key) is not None
    ]
    if len(found) > 1:
        log.warning("bucket_several_sources", job_id=job_id, keys=found, used=found[0])
    return found[0] if found else None


def staged_source(settings: Settings, job_id: str) -> Path | None:
    """The complete staged source of a job (``source.<ext>``; never a partial file)."""
    folder = Path(settings.temp_media_dir) / job_id / "input"
    try:
        names = sorted(
            entry.name
            for entry in _scandir(folder)
            if entry.is_file() and _STAGED_SOURCE.match(entry.name)
        )
    except (FileNotFoundError, NotADirectoryError):
        return None
    return folder / names[0] if names else None


# --- the scanner ----------------------------------------------------------------------------
class JobScanner:
    """Finds jobs to run in the store and in staging and submits them to the runner."""

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
        self._terminal: set[str] = set()
        self._not_before: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bad_keys = BadKeys(settings, store)
        self.polls = 0
        self.last_error: str | None = None
        self.last_found: set[str] = set()
        """The jobs the last poll submitted."""

    # --- the loop -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="vidwatch-scanner", daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """Submit nothing more (only sets a flag)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.bucket_poll_s):
            self.poll_once()

    def poll_once(self, *, startup: bool = False) -> int:
        """One scan of staging and of the store; the number of jobs submitted.

        ``startup``: staged sources without any manifest (their intake was cut short before
        it wrote one) are taken too; later scans leave those alone, since an intake may be
        between staging a source and writing its manifest."""
        submitted = 0
        self.last_found = set()
        try:
            submitted += self._scan_staging(startup=startup)
            submitted += self._scan_store()
            self.last_error = None
        except QueueFull:
            log.info("scan_paused", reason="queue full or stopping")
        except StoreError as exc:
            self.last_error = str(exc)
            log.warning("scan_failed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - the next poll tries again
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("scan_failed")
        self.polls += 1
        return submitted

    def _offer(self, spec: JobSpec, why: str) -> int:
        if self._stop.is_set() or not self.has_room():
            raise QueueFull("runner queue full")
        if self.submit(spec):
            self.last_found.add(spec.job_id)
            log.info("job_found", job_id=spec.job_id, why=why, origin=spec.origin)
            return 1
        return 0

    def _skip(self, job_id: str, now: float) -> bool:
        return (
            job_id in self._terminal
            or self.is_active(job_id)
            or now < self._not_before.get(job_id, 0.0)
        )

    # --- the store ------------------------------------------------------------------------
    def _scan_store(self) -> int:
        submitted = 0
        listed: set[str] = set()
        others: list[str] = []
        for job_id in self.store.list_job_ids(page_size=self.page_size, others=others):
            listed.add(job_id)
            if self._skip(job_id, self.clock()):
                continue
            spec, why = self.inspect(job_id)
            if spec is not None:
                submitted += self._offer(spec, why)
        if self.new_sources and others:
            submitted += self.bad_keys.folders(others, self._offer)
        # Forget jobs that are gone (expired), so memory stays bounded by the bucket.
        self._terminal &= listed | self._staged_ids()
        return submitted

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
            self._terminal.add(job_id)  # not ours to guess about; logged once
            return None, False

    def inspect(self, job_id: str) -> tuple[JobSpec | None, str]:
        """Whether the job in the store is one to run now, and why."""
        manifest, readable = self._manifest(job_id)
        if not readable:
            return None, "unreadable manifest"
        if manifest is not None and manifest.state in TERMINAL:
            if self.new_sources and failed_at_intake(manifest):
                # Refused at intake (a misnamed source): taken once the right key appears.
                key = find_source_key(self.store, job_id)
                if key is None:
                    return None, "refused at intake"
                return job_spec_for_store_source(self.settings, job_id, key, manifest=None), (
                    "source uploaded under the right key"
                )
            self._terminal.add(job_id)
            return None, manifest.state
        if manifest is None and not self.new_sources:
            return None, "no manifest"
        if not self._lease_free(job_id):
            return None, "leased"
        if manifest is not None and manifest.source_key:
            key = manifest.source_key if self.store.head(manifest.source_key) else None
        else:
            key = find_source_key(self.store, job_id)
        if key is None:
            if manifest is None and self.bad_keys.misnamed_input(job_id):
                return None, "misnamed source"
            return None, "no source in the store yet"
        why = "new source in the bucket" if manifest is None else f"resume {manifest.state}"
        return job_spec_for_store_source(self.settings, job_id, key, manifest=manifest), why

    # --- staging --------------------------------------------------------------------------
    def _staged_ids(self) -> set[str]:
        root = Path(self.settings.temp_media_dir)
        try:
            return {e.name for e in _scandir(root) if e.is_dir() and keys.is_job_id(e.name)}
        except FileNotFoundError:
            return set()

    def _scan_staging(self, *, startup: bool) -> int:
        submitted = 0
        for job_id in sorted(self._staged_ids()):
            if self._skip(job_id, self.clock()):
                continue
            source = staged_source(self.settings, job_id)
            if source is None:
                continue
            manifest, readable = self._manifest(job_id)
            if not readable:
                continue
            if manifest is not None and manifest.state in TERMINAL:
                self._terminal.add(job_id)
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
            submitted += self._offer(spec, why)
        return submitted
