"""``vidwatch analyze`` beside a running daemon on the same folders (the README shows the
two commands side by side): the daemon's scans (staging, markers, the recent window) find
the CLI's staged source and its ``running`` manifest, and must leave the job alone while
the CLI holds it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest

from vidwatch.r2.local import LocalStore

from .service_harness import daemon_env, read_status

pytestmark = pytest.mark.models


def test_a_daemon_never_takes_the_job_of_a_running_analyze(daemons, tmp_path, model_env, media):
    # Every frame of the short VP9 video sampled (114): the CLI's job runs for seconds, many
    # daemon polls (0.25 s apart) and more than a lease term (3 s) long, as asserted below.
    env = daemon_env(
        tmp_path, model_env, SAMPLE_FPS="30", MODEL_BATCH_SIZE="1", BUCKET_POLL_S="0.25"
    )
    daemon = daemons(tmp_path, env).start()
    daemon.wait_ready()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidwatch.cli",
            "analyze",
            "--json",
            "--no-toon",
            "-q",
            str(media / "cuts_vp9.webm"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The manifest is the last thing printed (model libraries may print before it).
    start = proc.stdout.rfind("\n{\n") + 1 if not proc.stdout.startswith("{") else 0
    job_id = json.loads(proc.stdout[start:])["job_id"]
    assert daemon.alive(), daemon.tail()

    touched = [e for e in daemon.events() if e.get("job_id") == job_id]
    assert touched == [], touched[:5]
    store = LocalStore(tmp_path / "store")
    status = read_status(store, job_id)
    assert status is not None and status["state"] == "completed"
    assert status["attempts"] == 1, status["attempt_history"]
    assert not [w for w in status["warnings"] if "abandon" in json.dumps(w)], status["warnings"]
    # What the test proves needs the job to outlive a lease term: its lease was renewed
    # while the daemon polled, and the daemon still left the job alone.
    ran_s = (
        datetime.fromisoformat(status["finished_at"]) - datetime.fromisoformat(status["started_at"])
    ).total_seconds()
    assert ran_s > float(env["LEASE_TTL_S"]), ran_s
