"""Sign-in attempts limited per client address: after LOGIN_FAILURES_ALLOWED wrong tokens
within LOGIN_WINDOW_S, ``POST /login`` answers 429 with ``Retry-After`` (without looking at
the token) until the oldest of them is a window old; a right token clears the address.

The decision (``login_wait_s``) is a pure function of the failures' times and ``now``; the
failures are kept in this process's memory (each daemon counts its own), for at most
MAX_ADDRESSES addresses. The address is the peer uvicorn reports, which behind a reverse
proxy on the same host is the client's (uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable

LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW_S = 60.0
MAX_ADDRESSES = 10_000


def login_wait_s(
    failures: Iterable[float],
    now: float,
    *,
    allowed: int = LOGIN_FAILURES_ALLOWED,
    window_s: float = LOGIN_WINDOW_S,
) -> float:
    """0 when another attempt may be made at ``now``; else the seconds until fewer than
    ``allowed`` of the ``failures`` (their times) lie within ``window_s`` before ``now``."""
    recent = sorted(t for t in failures if now - window_s < t <= now)
    if len(recent) < allowed:
        return 0.0
    return recent[-allowed] + window_s - now


class LoginThrottle:
    """The failed sign-ins of each address, as ``login_wait_s`` needs them."""

    def __init__(
        self,
        *,
        allowed: int = LOGIN_FAILURES_ALLOWED,
        window_s: float = LOGIN_WINDOW_S,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.allowed, self.window_s, self.max_addresses = allowed, window_s, max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, address: str, now: float) -> float:
        with self._lock:
            failures = list(self._failures.get(address, ()))
        return login_wait_s(failures, now, allowed=self.allowed, window_s=self.window_s)

    def failed(self, address: str, now: float) -> None:
        with self._lock:
            times = self._failures.pop(address, None) or deque(maxlen=self.allowed)
            times.append(now)
            self._failures[address] = times  # the most recent last
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)
