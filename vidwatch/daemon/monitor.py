"""The service's monitor: systemd's watchdog pings while the service lives, its ``STATUS=``
line kept current, and the store probed in a thread of its own for ``/healthz``."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from vidwatch.daemon.sdnotify import Notifier
from vidwatch.r2.store import ObjectStore, StoreError

log = structlog.get_logger("vidwatch.service")

STORE_PROBE_INTERVAL_S = 2.0
"""How often the monitor probes the store (a HEAD of the bucket, bounded by
STORE_PROBE_TIMEOUT_S): /healthz turns unhealthy within about the sum of the two."""
WATCHDOG_TICK_S = 5.0


def watchdog_tick_s(watchdog_s: float | None) -> float:
    """How often WATCHDOG=1 is sent: every 5 s, or half of WatchdogSec where that is less."""
    return min(WATCHDOG_TICK_S, watchdog_s / 2) if watchdog_s else WATCHDOG_TICK_S


class Monitor:
    """Pings systemd's watchdog while ``alive()`` (at half of ``WATCHDOG_USEC``), keeps
    ``STATUS=`` at ``status()``, and probes the store in a thread of its own so that a slow
    store never delays a ping."""

    def __init__(
        self,
        notifier: Notifier,
        *,
        alive: Callable[[], bool],
        status: Callable[[], str],
        store: ObjectStore,
        probe_timeout_s: float,
    ) -> None:
        self.notifier = notifier
        self.alive = alive
        self.status = status
        self.store = store
        self.probe_timeout_s = probe_timeout_s
        self.tick_s = watchdog_tick_s(notifier.watchdog_s)
        self._stop = threading.Event()
        self._store_ok: bool | None = True  # the service's start checked it just before
        self._store_error: str | None = None
        self._threads = [
            threading.Thread(target=self._watch, name="vidwatch-watchdog", daemon=True),
            threading.Thread(target=self._probe, name="vidwatch-store-probe", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)

    def store_state(self) -> tuple[bool | None, str | None]:
        return self._store_ok, self._store_error

    def _watch(self) -> None:
        last_status = None
        while True:
            if self.alive():
                self.notifier.watchdog()
            status = self.status()
            if status != last_status:
                self.notifier.status(status)
                last_status = status
            if self._stop.wait(self.tick_s):
                return

    def _probe(self) -> None:
        from vidwatch.r2 import quick_view

        store = self.store
        probe = quick_view(store, self.probe_timeout_s)
        while True:
            try:
                probe.check()
                self._store_ok, self._store_error = True, None
            except StoreError as exc:
                if self._store_ok is not False:
                    log.warning("store_unhealthy", error=str(exc))
                self._store_ok, self._store_error = False, str(exc)
            if self._stop.wait(STORE_PROBE_INTERVAL_S):
                if probe is not store:
                    probe.close()
                return
