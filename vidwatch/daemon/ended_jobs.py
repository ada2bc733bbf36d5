"""What the job scanner knows has ended, and the store's record of it (``vidwatch.r2.ended``).

A job seen ``completed`` or ``failed`` (or ended by this process's runner) is remembered
and never looked at again by a sweep; the first look of a process reads the record once,
and a sweep (or a stop) writes back what this process learnt, merged with what the store
holds. Unreadable manifests and uploads refused at intake are remembered here but never
recorded: a fix, or the upload under its right key, makes them jobs again at the next start.
"""

from __future__ import annotations

import threading

import structlog

from vidwatch.r2.ended import merge, read_ended, write_ended
from vidwatch.r2.store import ObjectStore, StoreError

log = structlog.get_logger("vidwatch.intake.bucket")


class EndedJobs:
    """The ended jobs of one scanner. ``job_id in ended`` asks whether one is known ended."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._terminal: set[str] = set()
        self._recorded: frozenset[str] = frozenset()
        """The ended jobs the store's record holds, as far as this process knows."""
        self.loaded = False
        """Whether the store's record was read (once per process)."""
        self._not_recordable: set[str] = set()
        """Jobs remembered here but never written into the record: unreadable manifests
        and uploads refused at intake (a fix or a corrected upload makes them jobs again)."""
        self._not_ended: set[str] = set()
        """Recorded jobs seen pending again since the record was last written."""
        self._lock = threading.Lock()

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._terminal

    # --- what this process learns ---------------------------------------------------------
    def add(self, job_id: str, *, recordable: bool = True) -> None:
        """A job seen ended (``recordable``: worth writing into the record)."""
        self._terminal.add(job_id)
        if not recordable:
            self._not_recordable.add(job_id)

    def note_ended(self, job_id: str, *, recordable: bool = True) -> None:
        """A job whose final manifest was read or written here: ended, also if the record
        had it pending again."""
        self.add(job_id, recordable=recordable)
        self._not_ended.discard(job_id)

    def pending_again(self, job_id: str) -> None:
        """A job seen not ended: forgotten here, and out of the record at its next write."""
        self._terminal.discard(job_id)
        if job_id in self._recorded:
            self._not_ended.add(job_id)

    def keep_only(self, job_ids: set[str]) -> None:
        """Forget the jobs not in ``job_ids`` (the bucket no longer holds them)."""
        self._terminal &= job_ids
        self._not_recordable &= self._terminal

    # --- the record -----------------------------------------------------------------------
    def load(self) -> None:
        """Once per process, before its first look: the store's record of ended jobs."""
        if self.loaded:
            return
        try:
            recorded = read_ended(self.store)
        except StoreError as exc:
            log.warning("ended_record_read_failed", error=str(exc), effect="tried next poll")
            return
        self.loaded = True
        with self._lock:
            self._recorded = recorded
        self._terminal |= recorded
        if recorded:
            log.info("ended_record_read", jobs=len(recorded))

    def save(self, *, listed: set[str] | None = None, newer_than: str | None = None) -> bool:
        """Write the jobs seen ended here into the store's record, merged with what it
        holds; with ``listed`` (a sweep's listing), drop ids the bucket no longer holds.
        Nothing is read or written when this process learnt nothing new. True when it
        wrote."""
        learnt = set(self._terminal) - self._not_recordable
        with self._lock:
            recorded = self._recorded
            gone = listed is not None and any(
                i not in listed and not (newer_than is not None and i > newer_than)
                for i in recorded
            )
            if learnt <= recorded and not (self._not_ended & recorded) and not gone:
                return False
            try:
                stored = read_ended(self.store)
                merged = merge(
                    stored,
                    learnt,
                    not_ended=self._not_ended,
                    listed=listed,
                    newer_than=newer_than,
                )
                wrote = merged != stored
                if wrote:
                    size = write_ended(self.store, merged)
                    log.info(
                        "ended_record_written",
                        jobs=len(merged),
                        bytes=size,
                        added=len(merged - stored),
                        dropped=len(stored - merged),
                    )
            except StoreError as exc:
                log.warning("ended_record_write_failed", error=str(exc), effect="next sweep")
                return False
            self._recorded = merged
            self._not_ended.clear()
            return wrote
