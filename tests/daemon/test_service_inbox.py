"""The real daemon (``vidwatch run`` in a subprocess) on a temporary inbox and local store:
a file there at start-up, a dropped video, a slow copy, the bad videos and the HTTP API."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

from .service_harness import (
    Daemon,
    daemon_env,
    job_of_file,
    relative_keys,
    sha256_of,
    wait_job_state,
    wait_until,
)

pytestmark = pytest.mark.models

BAD_CODES = {
    "zero_bytes.mp4": "empty_file",
    "not_a_video.mp4": "not_a_video",
    "truncated_half.mp4": "truncated_video",
    "image_as_video.mp4": "image_not_video",
}


@pytest.fixture(scope="module")
def running(tmp_path_factory, model_env, media):
    """One daemon for the module, with a video waiting in the inbox before it starts."""
    root = tmp_path_factory.mktemp("daemon")
    (root / "inbox").mkdir()
    shutil.copyfile(media / "single_shot.mp4", root / "inbox" / "there_at_start.mp4")
    # A settle time ten times the slow copy's pauses: a busy test machine may stall it.
    env = daemon_env(root, model_env, HTTP_ENABLED="true", HTTP_PORT="0", INBOX_SETTLE_S="1")
    daemon = Daemon(root, env).start()
    try:
        daemon.wait_ready()
        yield daemon, LocalStore(root / "store"), root / "inbox"
    finally:
        daemon.close()


def _drop(src: Path, inbox: Path, name: str) -> None:
    """Copy into the inbox as a user's tool would: straight to the final name."""
    shutil.copyfile(src, inbox / name)


def test_a_file_present_at_start_up_is_processed(running, media):
    daemon, store, inbox = running
    doc = wait_job_state(store, filename="there_at_start.mp4", daemon=daemon)
    assert doc["state"] == "completed", doc["error"]
    assert doc["source"]["sha256"] == sha256_of(media / "single_shot.mp4")
    assert not (inbox / "there_at_start.mp4").exists()


def test_a_dropped_video_completes_with_the_full_layout(running, media):
    daemon, store, inbox = running
    dropped = time.monotonic()
    # The same bytes as the file there at start-up: named to be analysed afresh.
    _drop(media / "single_shot.mp4", inbox, "dropped.reanalyze.mp4")
    doc = wait_job_state(store, filename="dropped.reanalyze.mp4", daemon=daemon)
    took = time.monotonic() - dropped
    assert doc["state"] == "completed", doc["error"]
    job_id = doc["job_id"]
    assert doc["source"]["origin"] == "inbox" and doc["stage"] == "done"
    assert doc["reanalyze"] is True and doc["duplicate_of"] is None
    assert doc["source"]["key"] == keys.source_key(job_id, "mp4")
    assert doc["source"]["sha256"] == sha256_of(media / "single_shot.mp4")
    assert doc["progress"]["frames_done"] == doc["progress"]["frames_total"] == 48
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    expected = {"status.json", "lease.json", "analysis/results.json", "input/source.mp4"}
    expected |= {"report.html", *(f"analysis/exports/{n}" for n in keys.EXPORT_FILES.values())}
    for frame in results["frames"]:
        n = frame["frame"]
        expected |= {f"frames/{kind}/frame_{n}.jpg" for kind in keys.IMAGE_KINDS}
        expected.add(f"analysis/json/frame_{n}.json")
    assert relative_keys(store, job_id) == expected
    assert (
        store.get_bytes(keys.source_key(job_id, "mp4")) == (media / "single_shot.mp4").read_bytes()
    )
    # Moved out of the inbox; the staged copy is gone after the verified upload (default).
    assert not (inbox / "dropped.reanalyze.mp4").exists()
    assert not (daemon.root / "tmp_media" / job_id).exists()
    # Every line of the job names it; its stage lines name the stage.
    lines = [e for e in daemon.events() if e.get("job_id") == job_id]
    assert {e["event"] for e in lines} >= {
        "inbox_file_claimed",
        "job_started",
        "job_stage",
        "job_completed",
    }
    assert all(e.get("stage") for e in lines if e["event"] in ("job_stage", "job_completed"))
    print(f"drop to completed: {took:.2f} s")


def test_a_slow_copy_is_not_taken_before_it_is_whole(running, media):
    daemon, store, inbox = running
    data = (media / "single_shot.mp4").read_bytes()
    path = inbox / "slow.mp4"
    chunk = len(data) // 20 + 1
    with open(path, "wb") as fh:
        for start in range(0, len(data), chunk):
            fh.write(data[start : start + chunk])
            fh.flush()
            time.sleep(0.1)  # a pause well under INBOX_SETTLE_S (1 s)
            assert path.exists(), "taken while still being written"
            assert job_of_file(store, "slow.mp4") is None
    doc = wait_job_state(store, filename="slow.mp4", daemon=daemon)
    assert doc["state"] == "completed", doc["error"]
    assert doc["source"]["bytes"] == len(data)
    assert doc["source"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_bad_videos_fail_clearly_and_the_next_good_one_completes(running, media):
    daemon, store, inbox = running
    for name in BAD_CODES:
        _drop(media / "bad" / name, inbox, f"bad_{name}")
    _drop(media / "single_shot.mp4", inbox, "after_bad.mp4")
    for name, code in BAD_CODES.items():
        doc = wait_job_state(store, filename=f"bad_{name}", daemon=daemon)
        assert doc["state"] == "failed", name
        assert doc["error"]["code"] == code, (name, doc["error"])
        assert len(doc["error"]["message"]) > 10
        # Nothing silently deleted: the source stays beside the failed manifest.
        assert store.get_bytes(doc["source"]["key"]) == (media / "bad" / name).read_bytes()
        assert doc["results_key"] is None
    good = wait_job_state(store, filename="after_bad.mp4", daemon=daemon)
    assert good["state"] == "completed", good["error"]
    assert daemon.alive()


def test_http_api_is_served_by_the_daemon(running, media):
    import httpx

    daemon, store, _inbox = running
    port = daemon.wait_for("http_listening")["port"]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        health = client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["ok"] is True and health.json()["runner_alive"] is True
        with open(media / "single_shot.mp4", "rb") as fh:
            answer = client.post("/analyze-video", files={"file": ("api.mp4", fh, "video/mp4")})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
        doc = wait_until(
            lambda: (lambda d: d if d["state"] in ("completed", "failed") else None)(
                client.get(f"/status/{job_id}").json()
            ),
            timeout_s=60,
            what="API job",
            daemon=daemon,
        )
        assert doc["state"] == "completed" and doc["source"]["origin"] == "api"
        # The daemon opened its local store with the API's signer: links are /files links.
        link = client.get(f"/results/{job_id}").json()["frames"][0]["json"]
        assert link["url"].startswith(f"http://127.0.0.1:{port}/files/{link['key']}?expires=")
        got = httpx.get(link["url"], timeout=30)
        assert got.status_code == 200 and got.content == store.get_bytes(link["key"])


def test_the_same_bytes_twice_in_the_inbox_and_by_the_api_are_not_analysed_again(running, media):
    """The file present at start-up was analysed; the same bytes dropped twice more (other
    names) and POSTed complete as duplicates of that job, without a new analysis."""
    import httpx

    daemon, store, inbox = running
    first = wait_job_state(store, filename="there_at_start.mp4", daemon=daemon)
    analyses_before = len(daemon.find("job_stage", stage="analyzing"))
    _drop(media / "single_shot.mp4", inbox, "again_1.mp4")
    _drop(media / "single_shot.mp4", inbox, "again 2.mp4")
    port = daemon.wait_for("http_listening")["port"]
    with open(media / "single_shot.mp4", "rb") as fh:
        answer = httpx.post(
            f"http://127.0.0.1:{port}/analyze-video",
            files={"file": ("again_3.mp4", fh, "video/mp4")},
            timeout=30,
        )
    assert answer.status_code == 202, answer.text
    docs = [
        wait_job_state(store, filename=name, daemon=daemon)
        for name in ("again_1.mp4", "again 2.mp4", "again_3.mp4")
    ]
    # The original: the first analysis, or the latest one asked for with `.reanalyze.`.
    original = docs[0]["duplicate_of"]
    assert original is not None
    earlier = json.loads(store.get_bytes(keys.status_key(original)))
    assert earlier["duplicate_of"] is None and earlier["state"] == "completed"
    assert earlier["source"]["sha256"] == first["source"]["sha256"]
    for doc in docs:
        assert doc["state"] == "completed", doc["error"]
        assert doc["duplicate_of"] == original
        assert doc["results_key"] == keys.results_key(original)
        assert store.head(doc["source"]["key"])  # the source is kept all the same
    assert {d["source"]["origin"] for d in docs} == {"inbox", "api"}
    assert len(daemon.find("job_stage", stage="analyzing")) == analyses_before
    assert len(daemon.find("job_duplicate")) >= 3
