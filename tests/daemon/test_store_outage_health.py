"""Issue 16, case 4: a dead store is seen within seconds. ``/healthz`` and ``GET /status``
use short timeouts of their own (STORE_PROBE_TIMEOUT_S), not the minute of retries that job
writes use to ride out an outage. A real daemon on a moto server that really goes away."""

from __future__ import annotations

import time

import httpx

from tests.daemon.service_harness import served_daemon, wait_until
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import new_job_id


def _wait_health(http: httpx.Client, daemon, code: int, what: str) -> None:
    """Polls ``/healthz`` every 0.2 s until it answers ``code`` (15 s at the most)."""
    wait_until(
        lambda: http.get("/healthz").status_code == code,
        timeout_s=15,
        what=what,
        daemon=daemon,
        interval_s=0.2,
    )


def test_healthz_and_status_answer_503_within_seconds_of_the_store_dying(
    tmp_path, daemons, restartable_moto
):
    server = restartable_moto.server()
    bucket = server.create_bucket()
    store = server.store(bucket)
    job_id = new_job_id()
    write_manifest(store, Manifest(job_id=job_id, state="completed"))
    store.close()
    daemon, url = served_daemon(daemons, tmp_path, server.env(bucket), BUCKET_POLL_S="30")
    http = httpx.Client(base_url=url, timeout=90)
    assert http.get("/healthz").status_code == 200
    assert http.get(f"/status/{job_id}").status_code == 200

    restartable_moto.stop()
    died = time.monotonic()
    _wait_health(http, daemon, 503, "/healthz to answer 503")
    unhealthy_after_s = time.monotonic() - died
    asked = time.monotonic()
    answer = http.get(f"/status/{job_id}")
    status_after_s = time.monotonic() - asked
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "store_unavailable"
    assert unhealthy_after_s < 10, unhealthy_after_s
    assert status_after_s < 8, status_after_s
    body = http.get("/healthz").json()
    assert body["store_ok"] is False and body["store_error"]

    restartable_moto.start()
    _wait_health(http, daemon, 200, "/healthz to recover")
    http.close()


def _staged(root) -> list[str]:
    folder = root / "tmp_media"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_an_upload_answers_503_within_seconds_of_the_store_dying_and_keeps_nothing(
    tmp_path, daemons, restartable_moto, media
):
    """Issue 21, point 9: the upload's store writes (the queued manifest, its pending marker,
    the Idempotency-Key) give up within STORE_PROBE_TIMEOUT_S as the other routes do, not
    after the minute of retries that job writes use."""
    server = restartable_moto.server()
    bucket = server.create_bucket()
    daemon, url = served_daemon(daemons, tmp_path, server.env(bucket), BUCKET_POLL_S="30")
    http = httpx.Client(base_url=url, timeout=90)
    assert http.get("/healthz").status_code == 200
    video = (media / "single_shot.mp4").read_bytes()
    before = _staged(tmp_path)

    restartable_moto.stop()
    for headers in ({}, {"Idempotency-Key": "outage-1"}):
        asked = time.monotonic()
        answer = http.post(
            "/analyze-video", files={"file": ("clip.mp4", video, "video/mp4")}, headers=headers
        )
        took_s = time.monotonic() - asked
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "store_unavailable"
        assert took_s < 5, (headers, took_s)
        print(f"upload with the store down, {headers or 'no key'}: 503 after {took_s:.2f} s")
        assert _staged(tmp_path) == before, "the refused upload left files in staging"

    # Once the store probe has seen the outage, an upload is refused before its body is read.
    _wait_health(http, daemon, 503, "/healthz to answer 503")
    asked = time.monotonic()
    answer = http.post("/analyze-video", files={"file": ("clip.mp4", video, "video/mp4")})
    took_s = time.monotonic() - asked
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "store_unavailable"
    assert took_s < 1.5, took_s
    print(f"upload with the outage known to the probe: 503 after {took_s:.2f} s")
    assert _staged(tmp_path) == before
    http.close()
