"""The daemon speaks systemd's notify protocol: a test socket stands in for systemd."""

from __future__ import annotations

import itertools
import signal
import socket
import threading
import time
import uuid

import pytest

from .service_harness import (
    daemon_env,
    wait_until,
)

pytestmark = pytest.mark.models


class FakeSystemd:
    """An abstract-namespace datagram socket recording each message with the daemon's log
    as it stood when the message arrived."""

    def __init__(self) -> None:
        self.name = f"vidwatch-notify-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str], list[str]]] = []
        self.daemon = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            seen = [e["event"] for e in self.daemon.events()] if self.daemon else []
            self.messages.append((time.monotonic(), fields, seen))

    def with_key(self, key: str) -> list[tuple[float, dict[str, str], list[str]]]:
        return [m for m in self.messages if key in m[1]]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_ready_after_models_then_watchdog_then_stopping(daemons, tmp_path, model_env):
    systemd = FakeSystemd()
    try:
        env = daemon_env(
            tmp_path,
            model_env,
            NOTIFY_SOCKET="@" + systemd.name,
            WATCHDOG_USEC="1000000",
            HTTP_ENABLED="true",
            HTTP_PORT="0",
        )
        daemon = daemons(tmp_path, env)
        systemd.daemon = daemon
        daemon.start()
        wait_until(lambda: systemd.with_key("READY"), timeout_s=90, what="READY=1", daemon=daemon)
        _, ready, log_at_ready = systemd.with_key("READY")[0]
        assert ready["READY"] == "1"
        # The models were loaded (and the HTTP server listening) before READY was sent.
        assert "models_loaded" in log_at_ready and "http_listening" in log_at_ready
        statuses = [m[1]["STATUS"] for m in systemd.messages if "STATUS" in m[1]]
        assert statuses.index("loading models") < statuses.index(ready["STATUS"])
        # WATCHDOG_USEC=1 s: pings every half second while the runner lives.
        wait_until(
            lambda: len(systemd.with_key("WATCHDOG")) >= 3,
            timeout_s=10,
            what="three WATCHDOG=1",
            daemon=daemon,
        )
        pings = [t for t, _, _ in systemd.with_key("WATCHDOG")]
        assert all(b - a < 1.0 for a, b in itertools.pairwise(pings))
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(30) == 0
        assert systemd.with_key("STOPPING")
    finally:
        systemd.close()
