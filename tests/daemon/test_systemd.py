"""The unit file, the example settings, and the notify protocol spoken to a real socket."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from vidwatch.config import Settings, load_settings
from vidwatch.daemon.sdnotify import Notifier

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "vidwatch.service"
ENV_EXAMPLE = REPO / "config" / "vidwatch.env.example"


def _verify(unit_text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on a copy whose ExecStart names this environment's
    ``vidwatch`` (verify fails on a binary that does not exist)."""
    vidwatch = Path(sys.executable).with_name("vidwatch")
    assert vidwatch.is_file(), "the vidwatch entry point is not installed in this venv"
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={vidwatch}", unit_text, flags=re.M)
    path = folder / "vidwatch.service"
    path.write_text(text)
    return subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed here")
    return found


def test_unit_verifies_without_a_word(systemd_analyze, tmp_path):
    result = _verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", (
        result.stdout + result.stderr
    )


def test_the_verify_check_does_catch_a_bad_key(systemd_analyze, tmp_path):
    """systemd-analyze exits 0 on unknown keys; the check above must still see them."""
    broken = UNIT.read_text().replace("[Service]\n", "[Service]\nWatchdogSecs=60\n")
    result = _verify(broken, tmp_path)
    assert "WatchdogSecs" in result.stdout + result.stderr


def test_unit_essentials():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
        "EnvironmentFile=/etc/vidwatch/vidwatch.env",
        "RestartPreventExitStatus=2",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    watchdog = int(re.search(r"^WatchdogSec=(\d+)$", text, re.M)[1])
    stop_timeout = int(re.search(r"^TimeoutStopSec=(\d+)$", text, re.M)[1])
    assert watchdog > 0
    # The stop budget the daemon enforces must fit in the stop timeout with margin, or
    # systemd kills the drain.
    from vidwatch.daemon.service import stop_budget_s

    assert stop_budget_s(load_settings({})) + 20 <= stop_timeout
    assert re.search(r"^ReadWritePaths=.*/var/lib/vidwatch", text, re.M)


def test_env_example_names_only_real_settings_and_loads():
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?([A-Z0-9_]+)=(.*)$", line)
        if match:
            values[match[1]] = match[2]
    assert len(values) > 30
    unknown = set(values) - {name.upper() for name in Settings.model_fields}
    assert not unknown, unknown
    missing = {name.upper() for name in Settings.model_fields} - set(values)
    assert not missing, f"settings the env example does not name: {missing}"
    settings = load_settings({k: v for k, v in values.items() if v})
    assert settings.inbox_dir == Path("/var/lib/vidwatch/inbox")
    # The commented defaults are the real defaults.
    for key, value in values.items():
        paths = ("INBOX_DIR", "TEMP_MEDIA_DIR", "LOCAL_STORE_DIR", "MODEL_CACHE_DIR")
        if value and key not in (*paths, "LOG_FORMAT"):
            assert str(getattr(load_settings({key: value}), key.lower())) == str(
                Settings.model_fields[key.lower()].default
            ), key


def test_notifier_speaks_the_protocol_on_an_abstract_socket():
    name = f"vidwatch-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(5)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000"})
        assert notifier.enabled and notifier.watchdog_s == 4.0
        assert notifier.ready("up")
        assert notifier.watchdog()
        assert notifier.stopping()
        got = [server.recv(4096).decode() for _ in range(3)]
        notifier.close()
    assert got == ["READY=1\nSTATUS=up", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopping"]


def test_notifier_is_silent_without_systemd():
    notifier = Notifier.from_env({})
    assert not notifier.enabled and not notifier.ready("x") and notifier.watchdog_s is None
    # A watchdog meant for another process (WATCHDOG_PID) is not ours to feed.
    assert (
        Notifier.from_env(
            {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
        ).watchdog_s
        is None
    )


def test_the_start_limit_trips_for_a_daemon_that_crashes_at_start():
    """systemd counts starts within StartLimitIntervalSec; restarts come RestartSec apart,
    so the limit trips only where StartLimitBurst restarts fit in the interval with room for
    the start itself (the default 10 s / 5 never trips with RestartSec=5)."""
    text = UNIT.read_text()
    unit = text.split("[Service]")[0]
    interval = int(re.search(r"^StartLimitIntervalSec=(\d+)$", unit, re.M)[1])
    burst = int(re.search(r"^StartLimitBurst=(\d+)$", unit, re.M)[1])
    restart = int(re.search(r"^RestartSec=(\d+)$", text, re.M)[1])
    assert 2 <= burst <= 10
    # Each failed start: its own time (say 60 s to load models and fail) plus RestartSec.
    assert burst * (restart + 60) <= interval


def test_readme_and_unit_state_the_watchdog_interval_the_code_keeps():
    from vidwatch.daemon.monitor import watchdog_tick_s

    text = UNIT.read_text()
    watchdog = int(re.search(r"^WatchdogSec=(\d+)$", text, re.M)[1])
    tick = watchdog_tick_s(float(watchdog))
    readme = (REPO / "README.md").read_text()
    stated = re.search(r"`WATCHDOG=1` every (\d+) s \(`WatchdogSec=(\d+)`", readme)
    assert stated is not None
    assert float(stated[1]) == tick and int(stated[2]) == watchdog
    in_unit = re.search(r"WATCHDOG=1 every (\d+) s", text)
    assert in_unit is not None and float(in_unit[1]) == tick
    stop_timeout = int(re.search(r"^TimeoutStopSec=(\d+)$", text, re.M)[1])
    assert f"`TimeoutStopSec={stop_timeout}`" in readme


def test_the_unit_shows_a_credential_line_for_every_secret_setting():
    """Each secret setting has a commented ``LoadCredential=NAME:PATH`` line whose NAME is
    the setting (the file name vidwatch reads in $CREDENTIALS_DIRECTORY)."""
    from vidwatch.config.settings import SECRET_SETTINGS

    lines = re.findall(r"^#LoadCredential=([A-Z0-9_]+):(/\S+)$", UNIT.read_text(), re.M)
    assert {name for name, _ in lines} == {name.upper() for name in SECRET_SETTINGS}
    assert all(Path(path).name == name for name, path in lines)


def test_unit_with_its_credentials_uncommented_verifies(systemd_analyze, tmp_path):
    text = re.sub(r"^#(LoadCredential=)", r"\1", UNIT.read_text(), flags=re.M)
    assert text.count("\nLoadCredential=") == 4
    result = _verify(text, tmp_path)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", (
        result.stdout + result.stderr
    )
