"""Counting the requests a piece of work makes to the bucket, as the bucket bills them.

``watch(store)`` hooks botocore's ``before-call`` event on the S3 store's client: every API
call (one attempt each; the store's own retry loop calls again, and is counted again) is
added to the ``CallCounts`` active in the calling thread (``counting(counts)``). Threads of a
pool count for the work that started them when they run under ``counting`` too. Calls of
other threads (the runner's uploads, lease renewals) are not counted. The local store makes
no requests and counts nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

OPS = {
    "ListObjectsV2": "list",
    "ListObjects": "list",
    "GetObject": "get",
    "HeadObject": "head",
    "PutObject": "put",
    "DeleteObject": "delete",
    "DeleteObjects": "delete",
}


class CallCounts:
    """Requests by kind (``list``, ``get``, ``head``, ``put``, ``delete``, or the operation's
    name in lower case); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_op: dict[str, int] = {}

    def add(self, op: str, n: int = 1) -> None:
        with self._lock:
            self.by_op[op] = self.by_op.get(op, 0) + n

    def __getitem__(self, op: str) -> int:
        with self._lock:
            return self.by_op.get(op, 0)

    def total(self) -> int:
        with self._lock:
            return sum(self.by_op.values())

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.by_op.items()))

    def __repr__(self) -> str:
        return f"CallCounts({self.as_dict()})"


_active = threading.local()


def _stack() -> list[CallCounts]:
    stack = getattr(_active, "stack", None)
    if stack is None:
        stack = _active.stack = []
    return stack


def active_counts() -> list[CallCounts]:
    """The counts this thread adds to now: hand them to a pool's threads (``counting``)."""
    return list(_stack())


@contextmanager
def counting(counts: CallCounts) -> Iterator[CallCounts]:
    """Count this thread's store requests into ``counts`` (nested scopes all count)."""
    stack = _stack()
    stack.append(counts)
    try:
        yield counts
    finally:
        stack.remove(counts)


def _on_call(model: Any = None, **_: Any) -> None:
    stack = getattr(_active, "stack", None)
    if not stack or model is None:
        return
    op = OPS.get(model.name, model.name.lower())
    for counts in stack:
        counts.add(op)


def watch(store: Any) -> bool:
    """Hook the store's S3 client(s) once; False for a store without one (local)."""
    hooked = False
    for name in ("client", "transfer_client"):
        client = getattr(store, name, None)
        events = getattr(getattr(client, "meta", None), "events", None)
        if client is None or events is None:
            continue
        if getattr(client, "_vidwatch_counted", False):
            hooked = True
            continue
        events.register("before-call.s3", _on_call, unique_id="vidwatch-call-counts")
        client._vidwatch_counted = True
        hooked = True
    return hooked
