"""Crash and stop: ``kill -9`` in the middle of a job, then a restart; SIGTERM in the
middle of a job, then ``--once``. Real daemons, real analyses, a local store."""

from __future__ import annotations

import json
import shutil
import signal
import time

import pytest

from vidwatch.r2 import keys
from vidwatch.r2.leases import read_lease
from vidwatch.r2.local import LocalStore

from .service_harness import (
    daemon_env,
    job_of_file,
    read_status,
    relative_keys,
    sha256_of,
    wait_job_state,
    wait_until,
)

pytestmark = pytest.mark.models


def _without_job_id(doc, job_id: str):
    return json.loads(json.dumps(doc).replace(job_id, "<job>"))


def test_kill_9_mid_job_then_restart_completes_with_the_same_artifacts(
    daemons, tmp_path, model_env, media
):
    # One sampled frame per model call: frame images appear early in the job.
    env = daemon_env(tmp_path, model_env, SAMPLE_FPS="2", MODEL_BATCH_SIZE="1")
    store = LocalStore(tmp_path / "store")
    first = daemons(tmp_path, env, name="first").start()
    first.wait_ready()
    shutil.copyfile(media / "cuts_h264.mp4", tmp_path / "inbox" / "long.mp4")

    def mid_analysis():
        doc = job_of_file(store, "long.mp4")
        if (
            doc
            and doc["stage"] == "analyzing"
            and any(store.list(keys.job_prefix(doc["job_id"]) + "frames/original/"))
        ):
            return doc
        return None

    job_id = wait_until(mid_analysis, timeout_s=60, what="frames written", daemon=first)["job_id"]
    first.kill9()
    at_kill = read_status(store, job_id)
    assert at_kill["state"] == "running", "the job ended before the kill"
    assert "analysis/results.json" not in relative_keys(store, job_id)
    assert store.head(keys.pending_key(job_id)) is not None  # what the restart finds

    second = daemons(tmp_path, env, name="second").start()
    done = wait_job_state(store, job_id=job_id, daemon=second)
    assert done["state"] == "completed", done["error"]
    assert done["attempts"] == 2
    assert done["source"]["sha256"] == sha256_of(media / "cuts_h264.mp4")
    assert second.find("job_found", job_id=job_id)
    # The marker goes right after the final manifest.
    wait_until(
        lambda: store.head(keys.pending_key(job_id)) is None, timeout_s=10, what="marker gone"
    )

    # The same video, uninterrupted, on the same daemon: the same artifacts, key for key.
    shutil.copyfile(media / "cuts_h264.mp4", tmp_path / "inbox" / "reference.reanalyze.mp4")
    reference = wait_job_state(store, filename="reference.reanalyze.mp4", daemon=second)
    assert reference["state"] == "completed"
    assert relative_keys(store, job_id) == relative_keys(store, reference["job_id"])
    resumed = json.loads(store.get_bytes(keys.results_key(job_id)))
    clean = json.loads(store.get_bytes(keys.results_key(reference["job_id"])))
    for part in ("video", "scenes", "frames", "summary"):
        assert _without_job_id(resumed[part], job_id) == _without_job_id(
            clean[part], reference["job_id"]
        ), part


def test_sigterm_mid_job_exits_within_the_bound_and_loses_nothing(
    daemons, tmp_path, model_env, media
):
    grace_s = 1.0
    # Every frame to the models, one at a time: a job far longer than the grace period,
    # which stops within one frame's inference once told to.
    env = daemon_env(
        tmp_path, model_env, SAMPLE_FPS="25", MODEL_BATCH_SIZE="1", SHUTDOWN_GRACE_S=str(grace_s)
    )
    store = LocalStore(tmp_path / "store")
    serving = daemons(tmp_path, env, name="serving").start()
    serving.wait_ready()
    shutil.copyfile(media / "cuts_h264.mp4", tmp_path / "inbox" / "long.mp4")
    doc = wait_until(
        lambda: (lambda d: d if d and d["stage"] == "analyzing" else None)(
            job_of_file(store, "long.mp4")
        ),
        timeout_s=60,
        what="analysis",
        daemon=serving,
    )
    job_id = doc["job_id"]

    sent = time.monotonic()
    serving.signal(signal.SIGTERM)
    code = serving.wait_exit(60)
    took = time.monotonic() - sent
    assert code == 0
    assert took < grace_s + 10, took
    print(f"SIGTERM to exit: {took:.2f} s (grace {grace_s:g} s)")
    assert serving.find("job_interrupt_requested", job_id=job_id)
    assert serving.find("job_requeued", job_id=job_id)
    stopped = read_status(store, job_id)
    assert stopped["state"] == "queued" and stopped["attempts"] == 1
    lease, _, _ = read_lease(store, job_id)
    assert lease.released
    # The verified source is in the store (and the staged copy is kept).
    assert store.get_bytes(keys.source_key(job_id, "mp4")) == (media / "cuts_h264.mp4").read_bytes()

    # `--once` takes the interrupted job up at once (its lease was released), at the
    # ordinary sample rate, and exits when nothing is left.
    once = daemons(tmp_path, {**env, "SAMPLE_FPS": "1"}, args=("--once",), name="once").start()
    assert once.wait_exit(120) == 0, once.tail()
    done = read_status(store, job_id)
    assert done["state"] == "completed", done["error"]
    assert done["attempts"] == 2 and done["source"]["filename"] == "long.mp4"
    assert done["source"]["sha256"] == sha256_of(media / "cuts_h264.mp4")
    assert once.find("once_done")
