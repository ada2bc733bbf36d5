"""Retries of store calls: exponential backoff with full jitter, bounded in seconds.

botocore's own retries give up on a refused connection within seconds and share one retry
allowance between all threads of a client, so many concurrent uploads lose data in a short
outage. The S3 store therefore makes each call once through botocore and retries here.

``next_delay`` is the whole decision and is pure: the attempt number, the clock readings and
the random draw are arguments, so it is tested with fixed values. ``call_with_retry`` is
the loop around it.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from vidwatch.times import utc_time

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    base_delay_s: float = 0.2
    """The backoff ceiling after the first failure; it doubles with each further failure."""
    max_delay_s: float = 5.0
    """The ceiling never grows past this."""
    deadline_s: float = 60.0
    """No retry starts later than this many seconds after the first attempt started."""
    max_attempts: int = 0
    """A bound on attempts as well (0: the deadline alone bounds the retries)."""

    def __post_init__(self) -> None:
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.deadline_s < 0:
            raise ValueError("retry delays and deadline must not be negative")
        if self.max_attempts < 0:
            raise ValueError("max_attempts must not be negative")


NO_RETRY = RetryPolicy(deadline_s=0.0, max_attempts=1)


def next_delay(
    policy: RetryPolicy, attempt: int, *, started: float, now: float, rng: Callable[[], float]
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up.

    ``attempt``: attempts made so far (1 after the first failure). ``started`` and ``now``:
    readings of one monotonic clock at the first attempt's start and now. ``rng``: a draw
    from [0, 1). Full jitter: the wait is uniform between 0 and the ceiling
    ``min(max_delay_s, base_delay_s * 2 ** (attempt - 1))``, and never runs past the
    deadline, so a call ends at most one attempt's duration after ``deadline_s``.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if policy.max_attempts and attempt >= policy.max_attempts:
        return None
    remaining = policy.deadline_s - (now - started)
    if remaining <= 0:
        return None
    # 2 ** 64 is far past any ceiling; capping the exponent keeps the float finite.
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** min(attempt - 1, 64))
    return min(ceiling * rng(), remaining)


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    is_retryable: Callable[[BaseException], bool],
    on_retry: Callable[[int, float, BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
) -> T:
    """Call ``fn`` until it returns, raises an error that is not retryable, or the policy
    gives up; then the last error propagates. ``on_retry(attempt, delay, error)`` is called
    before each wait (for logs)."""
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            delay = next_delay(policy, attempt, started=started, now=clock(), rng=rng)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            sleep(delay)


class RetryTally:
    """The store retries of one job, collected from every thread that works for it (the
    job's context travels into its pools). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.retries = 0
        self.by_op: Counter[str] = Counter()
        self.first: str | None = None
        self.last: str | None = None
        self.last_error: str | None = None

    def note(self, op: str, error: BaseException) -> None:
        now = utc_time(micros=False)
        with self._lock:
            self.retries += 1
            self.by_op[op] += 1
            self.first = self.first or now
            self.last = now
            self.last_error = str(error)[:300]

    def warning(self) -> dict[str, object] | None:
        """The status.json warning that sums the retries up, or None when there were none."""
        with self._lock:
            if not self.retries:
                return None
            ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.by_op.items()))
            return {
                "code": "store_retries",
                "message": f"the store failed {self.retries} times between {self.first} and "
                f"{self.last} and each call was retried until it went through ({ops}); "
                f"last error: {self.last_error}",
                "retries": self.retries,
            }


RETRY_TALLY: contextvars.ContextVar[RetryTally | None] = contextvars.ContextVar(
    "vidwatch_retry_tally", default=None
)
"""The tally of the job the current thread works for, if any (set by run_job)."""


RETRY_FENCE: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "vidwatch_retry_fence", default=None
)
"""Called before every retry of a store call made in this context; what it raises ends the
retries. A job's writes and its lease keeper set it to the lease's check, so neither rides
out an outage past the lease's term: a write retried after another host took the job over
would land on that host's results, and a renewal retried past the term would extend a
lease that may already be someone else's."""


def note_retry(op: str, error: BaseException) -> None:
    tally = RETRY_TALLY.get()
    if tally is not None:
        tally.note(op, error)
