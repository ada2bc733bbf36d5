"""Webhooks from the real daemon: a real receiver on 127.0.0.1 gets signed events of real
jobs; bad endpoints slow nothing down; an event waits out an endpoint that is down across a
daemon restart."""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.request

import pytest

from vidwatch.jobs.webhooks import OUTBOX_PREFIX
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

from ..jobs.webhook_receiver import BlackHole, Receiver, free_port, new_secret, spec_verify
from .service_harness import daemon_env, job_of_file, read_status, wait_job_state, wait_until

pytestmark = pytest.mark.models

SECRET = new_secret()


def _events(receiver: Receiver, path: str, job_id: str) -> list[dict]:
    docs = [spec_verify(SECRET, h.headers, h.body) for h in receiver.at(path)]
    return [d for d in docs if d["data"]["job_id"] == job_id]


def test_real_jobs_send_signed_events_and_bad_endpoints_block_nothing(
    daemons, tmp_path, model_env, media
):
    receiver = Receiver({"/slow": ["slow"], "/redirect": ["redirect"]}).start()
    hole = BlackHole()
    try:
        urls = [
            receiver.url("/hook"),
            f"http://127.0.0.1:{free_port()}/refused",
            hole.url("/down"),
            receiver.url("/slow"),
            receiver.url("/redirect"),
        ]
        env = daemon_env(
            tmp_path,
            model_env,
            HTTP_ENABLED="true",
            HTTP_PORT="0",
            WEBHOOK_URLS=",".join(urls),
            WEBHOOK_SECRET=SECRET,
            WEBHOOK_TIMEOUT_S="1",
            WEBHOOK_RETRY_BASE_S="1",
        )
        store = LocalStore(tmp_path / "store")
        daemon = daemons(tmp_path, env).start()
        daemon.wait_ready()
        port = daemon.wait_for("http_listening")["port"]
        shutil.copyfile(media / "single_shot.mp4", tmp_path / "inbox" / "good.mp4")
        shutil.copyfile(media / "bad" / "not_a_video.mp4", tmp_path / "inbox" / "bad.mp4")
        good = wait_job_state(store, filename="good.mp4", daemon=daemon)
        bad = wait_job_state(store, filename="bad.mp4", daemon=daemon)
        assert good["state"] == "completed" and bad["state"] == "failed"

        wait_until(
            lambda: (
                len(_events(receiver, "/hook", good["job_id"])) >= 3
                and _events(receiver, "/hook", bad["job_id"])
            ),
            timeout_s=30,
            what="events at the good endpoint",
            daemon=daemon,
        )
        by_type = {e["type"]: e for e in _events(receiver, "/hook", good["job_id"])}
        assert set(by_type) == {"job.queued", "job.started", "job.completed"}
        done = by_type["job.completed"]["data"]
        results = json.loads(store.get_bytes(keys.results_key(good["job_id"])))
        assert done["summary"] == results["summary"]
        assert done["results_key"] == keys.results_key(good["job_id"])
        assert done["source_sha256"] == good["source"]["sha256"] and done["origin"] == "inbox"
        assert done["duplicate_of"] is None
        failed = [e for e in _events(receiver, "/hook", bad["job_id"]) if e["type"] == "job.failed"]
        assert failed and failed[0]["data"]["error"]["code"] == "not_a_video"

        # The service stays up and healthy while four endpoints keep failing.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            health = json.loads(resp.read())
        assert resp.status == 200 and health["ok"] and health["webhooks"] is True

        def recorded():
            doc = json.loads(store.get_bytes(keys.status_key(good["job_id"])))
            entries = doc.get("notifications") or []
            delivered = {e["type"] for e in entries if e["state"] == "delivered"}
            failing = [e for e in entries if e["state"] == "pending" and e["last_error"]]
            return (entries, failing) if len(delivered) == 3 and len(failing) >= 4 else None

        _entries, failing = wait_until(
            recorded, timeout_s=30, what="delivery states in status.json", daemon=daemon
        )
        assert {e["endpoint"] for e in failing} >= {urls[1], urls[2], urls[3], urls[4]}
        assert any(e.key.startswith(OUTBOX_PREFIX) for e in store.list(OUTBOX_PREFIX))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'vidwatch_webhook_attempts_total{result="ok"}' in text
        assert 'vidwatch_webhook_attempts_total{result="failed"}' in text

        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(30) == 0
        log_text = daemon.log_path.read_text()
        assert SECRET not in log_text and SECRET.removeprefix("whsec_") not in log_text
    finally:
        receiver.close()
        hole.close()


def test_an_event_for_an_endpoint_down_arrives_after_a_daemon_restart(
    daemons, tmp_path, model_env, media
):
    port = free_port()
    env = daemon_env(
        tmp_path,
        model_env,
        WEBHOOK_URLS=f"http://127.0.0.1:{port}/hook",
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_RETRY_BASE_S="1",
    )
    store = LocalStore(tmp_path / "store")
    first = daemons(tmp_path, env, name="first").start()
    first.wait_ready()
    shutil.copyfile(media / "single_shot.mp4", tmp_path / "inbox" / "clip.mp4")
    doc = wait_job_state(store, filename="clip.mp4", daemon=first)
    assert doc["state"] == "completed"

    def completed_record():
        for info in store.list(OUTBOX_PREFIX):
            record = json.loads(store.get_bytes(info.key))
            if record["type"] == "job.completed" and record["attempts"] >= 1:
                return record
        return None

    record = wait_until(completed_record, timeout_s=30, what="a failed attempt", daemon=first)
    first.signal(signal.SIGTERM)
    assert first.wait_exit(30) == 0
    assert any(True for _ in store.list(OUTBOX_PREFIX)), "the pending events survive"

    receiver = Receiver(port=port).start()
    try:
        second = daemons(tmp_path, env, name="second").start()
        second.wait_ready()
        wait_until(
            lambda: [h for h in receiver.at("/hook") if h.json["type"] == "job.completed"],
            timeout_s=60,
            what="job.completed after the restart",
            daemon=second,
        )
        hits = [h for h in receiver.at("/hook") if h.json["type"] == "job.completed"]
        assert hits[0].headers["webhook-id"] == record["event_id"]
        spec_verify(SECRET, hits[0].headers, hits[0].body)
        assert hits[0].json["data"]["job_id"] == doc["job_id"]
        wait_until(
            lambda: not any(True for _ in store.list(OUTBOX_PREFIX)),
            timeout_s=30,
            what="the outbox emptied",
            daemon=second,
        )
        assert {h.json["type"] for h in receiver.at("/hook")} == {
            "job.queued",
            "job.started",
            "job.completed",
        }
        time.sleep(0.5)
    finally:
        receiver.close()


def test_notifications_keep_the_first_attempts_events_after_kill_9_and_a_takeover(
    daemons, tmp_path, model_env, media
):
    """Issue 21, point 4: the events the receiver acknowledged during an attempt that died
    (kill -9) stay in status.json's ``notifications`` after another daemon takes the job
    over and completes it; every delivered event of every attempt is listed."""
    receiver = Receiver().start()
    try:
        env = daemon_env(
            tmp_path,
            model_env,
            WEBHOOK_URLS=receiver.url("/hook"),
            WEBHOOK_SECRET=SECRET,
            WEBHOOK_RETRY_BASE_S="1",
            # Every frame to the models, one at a time: a job far longer than the wait.
            SAMPLE_FPS="25",
            MODEL_BATCH_SIZE="1",
        )
        store = LocalStore(tmp_path / "store")
        first = daemons(tmp_path, env, name="first").start()
        first.wait_ready()
        shutil.copyfile(media / "cuts_h264.mp4", tmp_path / "inbox" / "long.mp4")

        def first_events_acknowledged():
            doc = job_of_file(store, "long.mp4")
            if doc is None or doc["stage"] != "analyzing":
                return None
            seen = {e["type"] for e in _events(receiver, "/hook", doc["job_id"])}
            return doc if {"job.queued", "job.started"} <= seen else None

        job_id = wait_until(
            first_events_acknowledged, timeout_s=60, what="queued and started", daemon=first
        )["job_id"]
        # The sender records deliveries in status.json within about a second, and the
        # job's own progress writes go on meanwhile.
        time.sleep(3)
        first.kill9()
        assert read_status(store, job_id)["state"] == "running", "the job ended before the kill"
        acknowledged = {h.headers["webhook-id"]: h.json["type"] for h in receiver.at("/hook")}

        # The second daemon samples less, to finish soon.
        second = daemons(tmp_path, {**env, "SAMPLE_FPS": "2"}, name="second").start()
        done = wait_job_state(store, job_id=job_id, daemon=second)
        assert done["state"] == "completed" and done["attempts"] == 2

        def all_recorded():
            delivered = {
                e["event_id"]: e["type"]
                for e in read_status(store, job_id).get("notifications") or []
                if e["state"] == "delivered"
            }
            sent = {h.headers["webhook-id"]: h.json["type"] for h in receiver.at("/hook")}
            complete = "job.completed" in delivered.values() and sent == delivered
            return delivered if complete else None

        delivered = wait_until(
            all_recorded, timeout_s=30, what="every delivery in status.json", daemon=second
        )
        assert set(acknowledged) <= set(delivered), (acknowledged, delivered)
        assert sorted(delivered.values()).count("job.started") == 2, delivered
    finally:
        receiver.close()
