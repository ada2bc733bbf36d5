"""Running a stage of the pipeline in a thread of its own, a bounded number of items ahead.

The stage's errors are raised again in the consumer, after the items it produced; closing
the consumer (or leaving its loop) cancels the stage.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


class _End:
    """The stage's last item: it produced everything."""


_END = _End()


def threaded(produce: Callable[[], Iterator[T]], *, maxsize: int, name: str) -> Iterator[T]:
    items: queue.Queue[T | BaseException | _End] = queue.Queue(maxsize=maxsize)
    cancel = threading.Event()

    def put(item: T | BaseException | _End) -> bool:
        while not cancel.is_set():
            try:
                items.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the owner, never swallowed
            put(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if isinstance(item, _End):
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()
        thread.join(timeout=10)
