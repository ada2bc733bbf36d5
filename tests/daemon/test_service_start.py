"""Issue 25: the first start as a new user sees it. Offline, one line names every setting
to set (the README quotes it word for word); a busy port stops the start before the models
load, exit 2, naming HTTP_PORT; the ready line names the pages' URL; nothing of
Ultralytics' (banners, settings notices) comes between our log lines."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon.service_harness import MODELS_OFF, daemon_env
from tests.s3_servers import free_port
from vidwatch.daemon.service import pages_url

REPO = Path(__file__).resolve().parents[2]


def _lines(daemon) -> list[str]:
    return [x for x in daemon.log_path.read_text().splitlines() if x.strip()]


def _readme_quote() -> str:
    """The missing-weights line the README's quick start quotes."""
    text = (REPO / "README.md").read_text()
    return next(x for x in text.splitlines() if x.startswith("DETECT_MODEL='yolo11n-seg.pt'"))


@pytest.mark.expect_error_logs("start_failed")
def test_offline_first_start_names_every_setting_in_one_last_line(tmp_path, daemons):
    env = daemon_env(tmp_path, {}, HTTP_ENABLED="true", HTTP_PORT=str(free_port()))
    for name in ("DETECT_MODEL", "SEGMENT_MODEL", "ALLOW_MODEL_DOWNLOAD", "YOLO_CONFIG_DIR"):
        env.pop(name, None)  # the defaults, and Ultralytics' first-run settings file
    env["YOLO_OFFLINE"] = "1"  # no network, as on the offline host
    daemon = daemons(tmp_path, env).start()
    assert daemon.wait_exit(60) == 2
    lines = _lines(daemon)
    for line in lines:  # no banner, no notice: every line is one of ours
        assert line.startswith("{"), line
    last = json.loads(lines[-1])
    assert last["event"] == "start_failed" and last["exit_code"] == 2
    assert last["setting"] == "DETECT_MODEL, SEGMENT_MODEL"
    pattern = ".*".join(re.escape(part) for part in _readme_quote().split("..."))
    assert re.fullmatch(pattern, last["error"]), (last["error"], _readme_quote())


@pytest.mark.models
@pytest.mark.expect_error_logs("start_failed")
def test_a_busy_port_stops_the_start_before_the_models_load(tmp_path, daemons, model_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = daemon_env(tmp_path, model_env, HTTP_ENABLED="true", HTTP_PORT=str(port))
        started = time.monotonic()
        daemon = daemons(tmp_path, env).start()
        assert daemon.wait_exit(60) == 2
        took_s = time.monotonic() - started
    assert not daemon.find("models_loaded") and not daemon.find("model_export")
    last = json.loads(_lines(daemon)[-1])
    assert last["event"] == "start_failed" and last["setting"] == "HTTP_PORT"
    assert f"HTTP_PORT={port}" in last["error"], last
    assert took_s < 20, took_s


@pytest.mark.models
def test_a_first_start_with_models_logs_only_our_lines(tmp_path, daemons, model_env):
    """Issue 25 (3): the first start exports the models to OpenVINO (an empty
    MODEL_CACHE_DIR); Ultralytics' export banner ("Predict: yolo predict ...", "Visualize:
    https://netron.app"), its "Loading ... for OpenVINO inference" and torch.jit's
    FutureWarnings came between our lines."""
    env = daemon_env(
        tmp_path,
        model_env,
        MODEL_CACHE_DIR=str(tmp_path / "model_cache"),
        MODEL_BACKEND="openvino",
        HTTP_ENABLED="true",
        HTTP_PORT="0",
    )
    env.pop("YOLO_CONFIG_DIR", None)
    daemon = daemons(tmp_path, env).start()
    ready = daemon.wait_ready(timeout_s=240)
    assert daemon.find("model_export"), "the start did export (the case under test)"
    assert ready["url"].startswith("http://127.0.0.1:") and ready["url"].endswith("/jobs")
    for line in _lines(daemon):
        assert line.startswith("{"), line


def test_the_ready_line_names_the_pages_url(tmp_path, daemons):
    port = free_port()
    env = daemon_env(tmp_path, MODELS_OFF, HTTP_ENABLED="true", HTTP_PORT=str(port))
    daemon = daemons(tmp_path, env).start()
    ready = daemon.wait_ready()
    assert ready["url"] == f"http://127.0.0.1:{port}/jobs"
    for line in _lines(daemon):
        assert line.startswith("{"), line


def test_pages_url_shows_a_reachable_address():
    assert pages_url(None, "127.0.0.1", 8000) == "http://127.0.0.1:8000/jobs"
    assert pages_url(None, "0.0.0.0", 8000) == "http://127.0.0.1:8000/jobs"
    assert pages_url(None, "::", 8080) == "http://[::1]:8080/jobs"
    assert pages_url(None, "vidwatch.lan", 80) == "http://vidwatch.lan:80/jobs"
    assert pages_url("https://v.example/", "0.0.0.0", 8000) == "https://v.example/jobs"


def test_run_help_names_the_port_settings():
    proc = subprocess.run(
        [sys.executable, "-m", "vidwatch.cli", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HTTP_PORT" in proc.stdout and "HTTP_HOST" in proc.stdout
