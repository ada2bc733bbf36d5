"""``vidwatch analyze`` as a user runs it: a real subprocess on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.models


def _vidwatch(args, env, cwd, timeout=300):
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("R2_", "DETECT_", "SEGMENT_"))
    }
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "vidwatch.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_analyze_prints_where_results_are_and_a_summary(media, model_env, tmp_path):
    proc = _vidwatch(["analyze", str(media / "single_shot.mp4"), "--no-toon"], model_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "completed: 48 frames, 1 scene, " in proc.stdout  # issue 25 (14): not "1 scenes"
    line = next(x for x in proc.stdout.splitlines() if "results:" in x)
    results = Path(line.split("results:", 1)[1].strip())
    assert results.is_file() and results.is_relative_to(tmp_path / "store" / "jobs")
    doc = json.loads(results.read_text())
    assert len(doc["scenes"]) == 1 and doc["video"]["frames"] == 48
    assert "analysing" in proc.stderr  # the progress bar


def test_json_prints_one_json_document_on_stdout_and_nothing_else(media, model_env, tmp_path):
    """Issue 25 (13): with the models on (OpenVINO on a CPU, as by default), Ultralytics'
    "Loading ... for OpenVINO inference" went to stdout before the document."""
    proc = _vidwatch(
        ["analyze", str(media / "single_shot.mp4"), "--no-toon", "--json"], model_env, tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["state"] == "completed" and doc["job_id"]
    assert doc["summary"]["scenes"] == 1


def test_counts_read_as_words():
    from vidwatch.cli.analyze import counted

    assert counted(1, "scene") == "1 scene"
    assert counted(0, "scene") == "0 scenes"
    assert counted(2, "frame") == "2 frames"
    assert counted(1, "person", "people") == "1 person"
    assert counted(3, "person", "people") == "3 people"


def test_bad_input_exits_nonzero_with_one_clear_message(media, model_env, tmp_path):
    proc = _vidwatch(
        ["analyze", str(media / "bad" / "not_a_video.mp4"), "--no-toon"], model_env, tmp_path
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "failed: not_a_video: not a video" in proc.stderr


def test_missing_weights_offline_fails_at_once_naming_the_setting(media, tmp_path):
    env = {"DETECT_MODEL": "yolo11n.pt", "ALLOW_MODEL_DOWNLOAD": "false"}
    proc = _vidwatch(["analyze", str(media / "single_shot.mp4")], env, tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "DETECT_MODEL='yolo11n.pt'" in proc.stderr
    assert "set DETECT_MODEL to the path of a .pt file" in proc.stderr
    assert not (tmp_path / "store" / "jobs").exists()


def test_invalid_setting_stops_with_one_line(media, tmp_path):
    proc = _vidwatch(
        ["analyze", str(media / "single_shot.mp4")], {"SAMPLE_FPS": "fast"}, tmp_path, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "SAMPLE_FPS" in proc.stderr


def test_missing_file(tmp_path, model_env):
    proc = _vidwatch(["analyze", str(tmp_path / "nope.mp4")], model_env, tmp_path, timeout=60)
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_quiet_mode_prints_no_progress_bar(media, model_env, tmp_path):
    proc = _vidwatch(
        ["analyze", "-q", str(media / "single_shot.mp4"), "--no-toon"], model_env, tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "analysing" not in proc.stderr and "completed: 48 frames" in proc.stdout
