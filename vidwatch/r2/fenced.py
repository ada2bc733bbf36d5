"""A job's lease while it runs, and the store as the job sees it.

``LeaseGuard`` keeps one claimed lease (``vidwatch.r2.leases``): a keeper thread renews it
every ``LEASE_RENEW_S``, and ``check`` raises ``LeaseLost`` once it is lost or its last
confirmed term is over. ``FencedStore`` wraps the store so that every write first checks
the guard, and every call's retries end once the lease is gone (``RETRY_FENCE``): a job
that lost its lease writes nothing more, whoever took the job over. ``lease_held`` claims,
keeps and releases a lease around a block (``vidwatch analyze``'s job).

These are store concerns: the runner (``vidwatch.daemon.runner``) and the CLI use them.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from vidwatch import metrics
from vidwatch.config import Settings
from vidwatch.r2.leases import HeldLease, LeaseLost, claim, release, renew
from vidwatch.r2.retry import RETRY_FENCE
from vidwatch.r2.store import ObjectInfo, ObjectStore, PutItem, StoreError

log = structlog.get_logger("vidwatch.runner")

LEASE_STOP_WAIT_S = 2.0
"""How long a finished job waits for its lease keeper; a renewal may sit in the store's
retries for a minute, and the lease expires on its own."""


# --- the lease while a job runs --------------------------------------------------------------
class LeaseGuard:
    """The lease one job holds: renewed by a keeper thread, checked before every write."""

    def __init__(
        self,
        store: ObjectStore,
        held: HeldLease,
        *,
        ttl_s: float,
        renew_s: float,
        clock: Callable[[], float],
        on_lost: Callable[[], None],
    ) -> None:
        self.store = store
        self.held = held
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.clock = clock
        self.margin_s = min(1.0, ttl_s * 0.1)
        self.lost = threading.Event()
        self._on_lost = on_lost
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._keep, daemon=True, name=f"vidwatch-lease-{held.lease.job_id[-6:]}"
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = LEASE_STOP_WAIT_S) -> bool:
        """Stop renewing. Waits at most ``timeout_s`` for a renewal in progress; False when
        the keeper is still busy (it ends on its own and renews no more)."""
        self._done.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning(
                "lease_keeper_busy",
                waited_s=timeout_s,
                effect="a renewal is still retrying; the lease expires on its own",
            )
            return False
        return True

    def check(self) -> None:
        """Raise LeaseLost once the lease is lost or its last confirmed term is over: a
        renewal stuck in retries must not let a job write after another host took over."""
        if not self.lost.is_set() and self.clock() >= self.held.lease.expires_at - self.margin_s:
            self._lose("lease ran out before it could be renewed")
        if self.lost.is_set():
            raise LeaseLost(f"lease of job {self.held.lease.job_id} lost")

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost.set()
            metrics.LEASES_LOST.inc()
            log.error("lease_lost", job_id=self.held.lease.job_id, reason=reason)
            self._on_lost()

    def _renewal_fence(self) -> None:
        if self._done.is_set():  # the job ended: its lease is released or runs out alone
            raise LeaseLost(f"lease of job {self.held.lease.job_id} no longer kept")
        self.check()

    def _keep(self) -> None:
        # A renewal retries only within the lease's term (the store would ride out an outage
        # for a minute): renewing a lease that ran out could extend one another host took.
        RETRY_FENCE.set(self._renewal_fence)
        wait = self.renew_s
        while not self._done.wait(wait):
            try:
                self.held = renew(self.store, self.held, ttl_s=self.ttl_s, now=self.clock())
                wait = self.renew_s
            except LeaseLost:
                if not self._done.is_set():  # after stop, the lease was released: not lost
                    self._lose("taken over by another worker")
                return
            except StoreError as exc:
                if self._done.is_set():
                    return
                log.warning("lease_renew_failed", error=str(exc))
                wait = min(self.renew_s, 1.0)
                if self.clock() + wait >= self.held.lease.expires_at - self.margin_s:
                    self._lose("renewals failed until the lease ran out")
                    return


class LeaseTaken(StoreError):
    """Someone else holds the job's lease."""

    code = "lease_taken"


@contextlib.contextmanager
def lease_held(
    store: ObjectStore,
    job_id: str,
    *,
    owner: str,
    settings: Settings,
    clock: Callable[[], float] = time.time,
    on_lost: Callable[[], None] = lambda: None,
) -> Iterator[LeaseGuard]:
    """The job's lease, claimed and renewed by a keeper while the block runs, released
    after it: what ``vidwatch analyze`` holds for its job, so that a daemon's scans on the
    same folders (staging, markers, the window) see a live lease and leave the job alone,
    as they do for another daemon's. LeaseTaken when someone else holds it."""
    held = claim(store, job_id, owner, ttl_s=settings.lease_ttl_s, now=clock())
    if held is None:
        raise LeaseTaken(f"job {job_id} is leased by another worker")
    guard = LeaseGuard(
        store,
        held,
        ttl_s=settings.lease_ttl_s,
        renew_s=settings.lease_renew_s,
        clock=clock,
        on_lost=on_lost,
    )
    guard.start()
    try:
        yield guard
    finally:
        if guard.stop() and not guard.lost.is_set():
            try:
                release(store, guard.held, now=clock())
            except StoreError as exc:  # it expires on its own
                log.warning("lease_release_failed", job_id=job_id, error=str(exc))


class FencedStore:
    """The store as one job sees it: every write first checks that the job's lease holds,
    and every call's retries end once it does not (``RETRY_FENCE``)."""

    def __init__(self, store: ObjectStore, guard: LeaseGuard) -> None:
        self._store = store
        self._guard = guard
        self.name = store.name
        self.expires_jobs = store.expires_jobs
        self.shared = store.shared
        self.local_files = store.local_files

    def put_bytes(self, key: str, data: bytes, **kwargs: Any) -> ObjectInfo:
        self._guard.check()
        with self._fence():
            return self._store.put_bytes(key, data, **kwargs)

    def put_file(self, key: str, path: Path, **kwargs: Any) -> ObjectInfo:
        self._guard.check()
        with self._fence():
            return self._store.put_file(key, path, **kwargs)

    @contextlib.contextmanager
    def _fence(self) -> Iterator[None]:
        """Retries inside the call end once the lease is lost or its term is over."""
        token = RETRY_FENCE.set(self._guard.check)
        try:
            yield
        finally:
            RETRY_FENCE.reset(token)

    def put_many(self, items: Iterable[PutItem]) -> list[ObjectInfo]:
        """Concurrent puts, each fenced on its own: once the lease is lost, no item still
        waiting for a thread reaches the store (a check per batch let items queued behind
        the pool be written long after the loss). Raises the first error after all ended."""
        items = list(items)
        if not items:
            return []
        self._guard.check()
        size = getattr(self._store, "workers", None) or getattr(self._store, "_workers", None)
        workers = max(1, min(len(items), int(size or 8)))
        with ThreadPoolExecutor(workers, thread_name_prefix="vidwatch-fenced-put") as pool:
            futures = [
                pool.submit(
                    contextvars.copy_context().run,
                    self.put_bytes,
                    i.key,
                    i.data,
                    content_type=i.content_type,
                )
                for i in items
            ]
        errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            lost = [e for e in errors if isinstance(e, LeaseLost)]
            raise lost[0] if lost else errors[0]
        return [f.result() for f in futures]

    def delete(self, key: str) -> None:
        self._guard.check()
        with self._fence():
            self._store.delete(key)

    def delete_many(self, keys_: Iterable[str]) -> None:
        self._guard.check()
        with self._fence():
            self._store.delete_many(keys_)

    def get_bytes(self, key: str) -> bytes:
        with self._fence():
            return self._store.get_bytes(key)

    def download_file(self, key: str, path: Path) -> None:
        with self._fence():
            self._store.download_file(key, path)

    def head(self, key: str) -> ObjectInfo | None:
        with self._fence():
            return self._store.head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self._store.list(prefix)

    def list_job_ids(
        self,
        *,
        start_after: str | None = None,
        limit: int | None = None,
        page_size: int = 1000,
        others: builtins.list[str] | None = None,
    ) -> Iterator[str]:
        return self._store.list_job_ids(
            start_after=start_after, limit=limit, page_size=page_size, others=others
        )

    def signed_url(self, key: str, ttl_s: int) -> str:
        return self._store.signed_url(key, ttl_s)

    def local_path(self, key: str) -> Path | None:
        return self._store.local_path(key)

    def location(self, prefix: str) -> str:
        return self._store.location(prefix)

    def check(self) -> None:
        self._store.check()

    def close(self) -> None:
        """The shared store stays open: the runner owns it, not the job."""
