"""Keeps the catalog in step with the store, without scanning the bucket for it.

- A job that ends on this daemon: the runner's job events (``job_event``), at its end.
- A job another daemon (or ``vidwatch analyze``) ended: the bucket scanner's own listings
  (``on_scan``). A poll lists the pending markers and the recent job folders anyway; a job
  whose marker went away since the last poll ended (or was removed), and a recent folder the
  catalog does not hold ended is read: its status.json, and results.json when it completed.
  A full sweep lists all of ``jobs/``: jobs the catalog lacks are read, jobs it holds that the
  bucket no longer has are forgotten (R2's lifecycle rules expire them).
- A job removed by retention: ``remove_job``; ``prune_expired`` checks the jobs old enough to
  have expired on a store that expires them itself.
- The people library: ``on_library_change`` (and the three methods it calls).
- A missing, unreadable or incomplete file: ``rebuild`` (in the background at start-up:
  new jobs are indexed meanwhile, and a newer manifest is never overwritten by an older one).

Reads of the store happen outside the catalog's write lock; reading and indexing errors
are logged and retried by the next listing, never raised into the runner or the scanner.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from vidwatch.catalog.db import ENDED, Catalog
from vidwatch.catalog.rows import Names, job_docs
from vidwatch.pipeline.views import read_results
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectNotFound, ObjectStore, StoreError

log = structlog.get_logger("vidwatch.catalog")

REBUILD_CONCURRENCY = 8
BATCH = 64


@dataclass
class RebuildReport:
    jobs: int = 0
    indexed: int = 0
    removed: int = 0
    failed: int = 0
    seconds: float = 0.0


class CatalogKeeper:
    """The catalog and the store it is derived from."""

    def __init__(self, catalog: Catalog, store: ObjectStore, *, names: Names | None = None) -> None:
        self.catalog = catalog
        self.store = store
        self.names = names
        self.rebuilding = False
        self.last_error: str | None = None
        self.last_rebuild: RebuildReport | None = None
        self._last_marked: set[str] | None = None
        self._absent: set[str] = set()
        self._todo: queue.Queue[str | None] = queue.Queue()
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- life -------------------------------------------------------------------------------
    def start(self) -> None:
        """The reader of jobs found by listings; a rebuild in the background when the
        catalog is not complete (a new or replaced file, or a rebuild cut short)."""
        worker = threading.Thread(target=self._work, name="vidwatch-catalog", daemon=True)
        worker.start()
        self._threads.append(worker)
        if not self.catalog.complete:
            self.rebuilding = True
            rebuild = threading.Thread(
                target=self._rebuild_quietly, name="vidwatch-catalog-rebuild", daemon=True
            )
            rebuild.start()
            self._threads.append(rebuild)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._todo.put(None)
        for thread in self._threads:
            thread.join(timeout=timeout_s)

    def close(self) -> None:
        """Stop, then close the file (the daemon's stop)."""
        self.stop()
        self.catalog.close()

    def health(self) -> dict[str, Any]:
        """For /healthz: whether every job of the store is in the catalog."""
        try:
            complete = self.catalog.complete and not self.rebuilding
            counts = self.catalog.counts()
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return {"catalog_complete": False, "catalog_error": f"{type(exc).__name__}: {exc}"}
        return {
            "catalog_complete": complete,
            "catalog_rebuilding": self.rebuilding,
            "catalog_jobs": counts["jobs"],
            "catalog_error": self.last_error,
        }

    # --- one job ------------------------------------------------------------------------------
    def read_job(self, job_id: str) -> bool:
        """Read one job from the store into the catalog (or out of it, when the store no
        longer has it). False when it could not be read (logged), or the keeper stops."""
        if self._stop.is_set():
            return False
        try:
            status = self._json(keys.status_key(job_id))
            if status is None:
                if self.store.head(keys.status_key(job_id)) is None and not self._has_objects(
                    job_id
                ):
                    self.catalog.remove([job_id])
                    self._absent.add(job_id)
                return True
            if status.get("job_id") != job_id:
                status["job_id"] = job_id
            results = None
            if status.get("state") == "completed" and not status.get("duplicate_of"):
                doc = self._json(keys.results_key(job_id))
                results = read_results(doc) if doc is not None else None
            self.catalog.put(job_docs(status, results, self.names))
            self._absent.discard(job_id)
            return True
        except (StoreError, ValueError, KeyError, TypeError, sqlite3.Error) as exc:
            self.last_error = f"job {job_id}: {exc}"
            log.warning("catalog_read_failed", job_id=job_id, error=str(exc))
            return False

    def _has_objects(self, job_id: str) -> bool:
        return next(iter(self.store.list(keys.job_prefix(job_id))), None) is not None

    def _json(self, key: str) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.store.get_bytes(key))
        except ObjectNotFound:
            return None
        if not isinstance(doc, dict):
            raise ValueError(f"{key} is not a JSON object")
        return doc

    def job_event(self, type_: str, manifest: Any, **_: Any) -> None:
        """The runner's (and intake's) job events: a queued or started job is listed from its
        manifest; an ended one is read whole (its results) before the runner moves on."""
        try:
            if type_ in ("job.completed", "job.failed"):
                self.read_job(manifest.job_id)
            elif type_ in ("job.queued", "job.started"):
                status = manifest.model_dump(mode="json")
                self.catalog.put(job_docs(status, None, self.names))
        except Exception as exc:  # noqa: BLE001 - the catalog never fails a job
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("catalog_event_failed", job_id=getattr(manifest, "job_id", None))

    def remove_job(self, job_id: str) -> None:
        """Retention removed the job from the store."""
        try:
            self.catalog.remove([job_id])
        except Exception as exc:  # noqa: BLE001 - logged; the next sweep forgets it
            log.warning("catalog_remove_failed", job_id=job_id, error=str(exc))

    # --- the scanner's listings ---------------------------------------------------------------
    def on_scan(self, report: Any) -> None:
        """A finished poll or sweep of the bucket scanner (``ScanReport``: ``kind``,
        ``marked`` job ids with a pending marker, ``listed`` job folders)."""
        try:
            if report.kind == "sweep":
                self._after_sweep(set(report.listed))
            else:
                self._after_poll(set(report.marked), set(report.listed))
        except Exception as exc:  # noqa: BLE001 - the scanner goes on
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("catalog_scan_failed", error=str(exc))

    def _after_poll(self, marked: set[str], window: set[str]) -> None:
        held = self.catalog.job_ids()
        todo = set(self._last_marked - marked) if self._last_marked is not None else set()
        todo |= {j for j in marked if j not in held}
        for job_id in window - marked:
            if job_id in self._absent:
                continue
            if job_id not in held or self.catalog.job_state(job_id) not in ENDED:
                todo.add(job_id)
        self._last_marked = marked
        self.enqueue(todo)

    def _after_sweep(self, listed: set[str]) -> None:
        if not listed:
            return
        held = self.catalog.job_ids()
        newest = max(listed)
        gone = [j for j in held if j not in listed and j < newest]
        if gone:
            removed = self.catalog.remove(gone)
            log.info("catalog_jobs_removed", jobs=removed, why="no longer in the store")
        self._absent &= listed
        self.enqueue(j for j in listed - held if j not in self._absent)

    def enqueue(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            for job_id in sorted(job_ids, reverse=True):
                if job_id not in self._queued:
                    self._queued.add(job_id)
                    self._todo.put(job_id)

    def _work(self) -> None:
        while True:
            job_id = self._todo.get()
            if job_id is None or self._stop.is_set():
                return
            with self._lock:
                self._queued.discard(job_id)
            self.read_job(job_id)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until the listings' jobs are read (tests, ``--once``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._queued and self._todo.empty():
                    return True
            time.sleep(0.02)
        return False

    # --- rebuild ------------------------------------------------------------------------------
    def _rebuild_quietly(self) -> None:
        try:
            self.rebuild()
        except Exception as exc:  # retried at the next start or by hand
            self.last_error = f"rebuild: {type(exc).__name__}: {exc}"
            log.exception("catalog_rebuild_failed")
        finally:
            self.rebuilding = False

    def rebuild(self, concurrency: int = REBUILD_CONCURRENCY) -> RebuildReport:
        """Read every job of the store into the catalog, and forget the jobs it no longer
        has; the catalog is complete at the end (unless a job could not be read)."""
        self.rebuilding = True
        started = time.monotonic()
        report = RebuildReport()
        try:
            self.catalog.set_complete(False)
            listed = list(self.store.list_job_ids())
            report.jobs = len(listed)
            with ThreadPoolExecutor(concurrency, thread_name_prefix="vidwatch-catalog") as pool:
                for ok in pool.map(self.read_job, listed[::-1]):
                    if self._stop.is_set():
                        break
                    report.indexed += int(ok)
                    report.failed += int(not ok)
            if self._stop.is_set():
                return report
            present = set(listed)
            newest = max(listed) if listed else ""
            report.removed = self.catalog.remove(
                j for j in self.catalog.job_ids() if j not in present and j < newest
            )
            if not report.failed:
                self.catalog.set_complete(True)
        finally:
            self.rebuilding = False
            report.seconds = time.monotonic() - started
            self.last_rebuild = report
        log.info(
            "catalog_rebuilt",
            jobs=report.jobs,
            indexed=report.indexed,
            removed=report.removed,
            failed=report.failed,
            took_s=round(report.seconds, 2),
        )
        return report

    # --- expiry on stores that expire jobs themselves -----------------------------------------
    def prune_expired(self, now: float, retention_days: float) -> int:
        """Forget the jobs old enough to have been expired (R2's lifecycle rules) that the
        store no longer has: one HEAD per such job, only for jobs past the age."""
        cutoff_ms = int((now - retention_days * 86400) * 1000)
        gone = [
            job_id
            for job_id in self.catalog.jobs_created_before(cutoff_ms)
            if self.store.head(keys.status_key(job_id)) is None
        ]
        return self.catalog.remove(gone) if gone else 0

    # --- the people library -------------------------------------------------------------------
    def on_library_change(self, change: Any) -> None:
        """A ``LibraryChange`` (``kind``: renamed, merged, forgotten, linked; ``library_id``,
        ``name``, ``other_id``, ``job_id``): the catalog follows at once."""
        kind = getattr(change, "kind", None)
        try:
            if kind == "renamed":
                self.catalog.person_renamed(change.library_id, change.name)
            elif kind == "merged":
                self.catalog.people_merged(change.library_id, change.other_id)
            elif kind == "forgotten":
                self.catalog.person_forgotten(change.library_id)
            elif kind == "linked" and getattr(change, "job_id", None):
                self.read_job(change.job_id)
        except Exception as exc:  # noqa: BLE001 - the library's change stands regardless
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("catalog_library_change_failed", kind=kind, error=str(exc))
