"""The thread pool behind a store's ``put_many``: one per store, started on first use and
shared by every caller (the pipeline's writer threads call ``put_many`` for each frame at
once), so no frame pays for starting threads of its own."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import structlog

T = TypeVar("T")
R = TypeVar("R")

log = structlog.get_logger("vidwatch.r2")

PUT_POOL_PER_WORKER = 4
"""Threads per WRITE_WORKERS: each writer thread puts about six objects per frame at once."""


class PutPool:
    def __init__(self, workers: int, *, name: str) -> None:
        self.workers = max(1, workers)
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self._name)
            return self._pool

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``fn`` over ``items`` concurrently, each call with the caller's log context
        (job_id, stage); raises the first error once every call has ended."""
        if not items:
            return []
        pool = self._executor()
        futures: list[Future[R]] = [
            pool.submit(contextvars.copy_context().run, fn, item) for item in items
        ]
        errors = [exc for f in futures if (exc := f.exception()) is not None]
        if errors:
            if len(errors) > 1:
                log.error(f"{self._name}_many_failed", failed=len(errors), total=len(items))
            raise errors[0]
        return [f.result() for f in futures]

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
