"""Test harness of the daemon: ``vidwatch run`` as a real subprocess on a temporary inbox,
staging folder and store, its JSON log lines read back, and waits with deadlines.

Every process started here is killed in teardown (the ``daemons`` fixture).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.daemon.helpers import MODELS_OFF
from tests.error_logs import record_daemon_lines
from tests.s3_servers import free_port
from vidwatch.r2 import keys

T = TypeVar("T")

READY_TIMEOUT_S = 90.0
JOB_TIMEOUT_S = 90.0

FAST_ENV = {
    "TOON_ENABLED": "false",
    "HTTP_ENABLED": "false",
    "INBOX_SETTLE_S": "0.5",
    "INBOX_RESCAN_S": "5",
    "BUCKET_POLL_S": "0.5",
    "LEASE_TTL_S": "3",
    "LEASE_RENEW_S": "1",
    "SHUTDOWN_GRACE_S": "5",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "info",
}
"""Short settle, poll and lease times so that the tests stay quick."""

_INHERITED_DROP = (
    "R2_",
    "NOTIFY_SOCKET",
    "WATCHDOG_",
    "HTTP_",
    "INBOX_",
    "LEASE_",
    "TEMP_MEDIA_DIR",
    "LOCAL_STORE_DIR",
    "SAMPLE_FPS",
    "SHUTDOWN_GRACE_S",
)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def daemon_env(root: Path, model_env: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment of a daemon on folders under ``root``: the test process's own
    (``YOLO_OFFLINE=1`` among it) without any of our settings, the test weights, fast
    times, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_DROP)}
    env.update(model_env)
    env.update(FAST_ENV)
    env.update(
        {
            "TEMP_MEDIA_DIR": str(root / "tmp_media"),
            "LOCAL_STORE_DIR": str(root / "store"),
            "INBOX_DIR": str(root / "inbox"),
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_until(
    check: Callable[[], T],
    *,
    timeout_s: float,
    what: str,
    daemon: Daemon | None = None,
    interval_s: float = 0.05,
) -> T:
    """Poll ``check`` until it returns something truthy; fail with the daemon's log tail
    when the deadline passes or the daemon died."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if daemon is not None and not daemon.alive():
            pytest.fail(
                f"daemon exited ({daemon.proc.returncode}) while waiting for {what}"
                f"\n{daemon.tail()}"
            )
        if time.monotonic() > deadline:
            tail = daemon.tail() if daemon is not None else ""
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}\n{tail}")
        time.sleep(interval_s)


class Daemon:
    """One ``vidwatch run`` subprocess; its stdout and stderr go to ``<name>.log``."""

    def __init__(
        self, root: Path, env: dict[str, str], *, args: tuple[str, ...] = (), name: str = "daemon"
    ) -> None:
        self.root = root
        self.env = env
        self.args = args
        self.name = name
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> Daemon:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vidwatch.cli", "run", *self.args],
                env=self.env,
                cwd=self.root,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.started_at = time.monotonic()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def events(self) -> list[dict[str, Any]]:
        out = []
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def find(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events()
            if e.get("event") == event and all(e.get(k) == v for k, v in match.items())
        ]

    def wait_for(
        self, event: str, *, timeout_s: float = JOB_TIMEOUT_S, **match: Any
    ) -> dict[str, Any]:
        return wait_until(
            lambda: next(iter(self.find(event, **match)), None),
            timeout_s=timeout_s,
            what=f"log event {event} {match}",
            daemon=self,
        )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        return self.wait_for("service_ready", timeout_s=timeout_s)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait_exit(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {timeout_s:g} s\n{self.tail()}")

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)


@pytest.fixture
def daemons() -> Iterator[Callable[..., Daemon]]:
    """Makes daemons (not started); kills every one still running at the end."""
    made: list[Daemon] = []

    def make(root: Path, env: dict[str, str], **kwargs: Any) -> Daemon:
        daemon = Daemon(root, env, **kwargs)
        made.append(daemon)
        return daemon

    try:
        yield make
    finally:
        for daemon in made:
            daemon.close()
        for daemon in made:  # their ERROR lines count as the test's (tests/error_logs.py)
            record_daemon_lines(f"daemon {daemon.name}", daemon.events())


def served_daemon(
    daemons: Callable[..., Daemon], root: Path, s3_env: dict[str, str], **extra: str
) -> tuple[Daemon, str]:
    """A started, ready daemon without models on the bucket ``s3_env`` names, its HTTP API on
    a free port; returns it and the API's base URL."""
    port = free_port()
    env = daemon_env(root, MODELS_OFF, **s3_env, HTTP_ENABLED="true", HTTP_PORT=str(port), **extra)
    daemon = daemons(root, env).start()
    daemon.wait_ready()
    return daemon, f"http://127.0.0.1:{port}"


# --- reading jobs back ----------------------------------------------------------------------
def read_status(store, job_id: str) -> dict[str, Any] | None:
    from vidwatch.r2.store import ObjectNotFound

    try:
        return json.loads(store.get_bytes(keys.status_key(job_id)))
    except ObjectNotFound:
        return None


def all_statuses(store) -> dict[str, dict[str, Any]]:
    out = {}
    for info in store.list(keys.JOBS_PREFIX):
        if info.key.endswith("/status.json"):
            job_id = keys.job_id_of(info.key)
            doc = read_status(store, job_id)
            if doc is not None:
                out[job_id] = doc
    return out


def job_of_file(store, filename: str) -> dict[str, Any] | None:
    """The status of the (one) job made from an inbox file of this name."""
    found = [
        d
        for d in all_statuses(store).values()
        if (d.get("source") or {}).get("filename") == filename
    ]
    assert len(found) <= 1, f"{len(found)} jobs for {filename}"
    return found[0] if found else None


def wait_job_state(
    store,
    *,
    filename: str | None = None,
    job_id: str | None = None,
    states: tuple[str, ...] = ("completed", "failed"),
    daemon: Daemon | None = None,
    timeout_s: float = JOB_TIMEOUT_S,
) -> dict[str, Any]:
    def check():
        doc = job_of_file(store, filename) if filename else read_status(store, job_id)
        return doc if doc is not None and doc["state"] in states else None

    return wait_until(
        check, timeout_s=timeout_s, daemon=daemon, what=f"job {filename or job_id} in {states}"
    )


def relative_keys(store, job_id: str) -> set[str]:
    prefix = keys.job_prefix(job_id)
    return {info.key[len(prefix) :] for info in store.list(prefix)}


def analyses_by_job(*daemons: Daemon) -> dict[str, list[str]]:
    """job_id -> the names of the daemons that began analysing it, once per analysis."""
    out: dict[str, list[str]] = {}
    for daemon in daemons:
        for event in daemon.find("job_stage", stage="analyzing"):
            out.setdefault(event["job_id"], []).append(daemon.name)
    return out
