"""Issue 16, case 9: trouble leaves a trace. A job that rode out a store outage says so in
its status.json (a ``store_retries`` warning); a job whose lease was lost in a longer
outage and that a second attempt finished says so too (``attempts: 2``, an
``attempt_history`` whose first entry is ``abandoned``, an ``attempt_abandoned`` warning);
and ``/metrics`` counts the retries, the lost lease and the abandoned attempt. A real
daemon, a moto server that really goes away, files dropped into the inbox."""

from __future__ import annotations

import re
import shutil
import time

import httpx
import pytest

from tests.daemon.service_harness import served_daemon, wait_job_state


def _metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


@pytest.mark.expect_error_logs(
    "frame_write_failed", "job_failed", "lease_lost", "manifest_write_failed"
)
def test_retries_a_lost_lease_and_a_second_attempt_show_in_status_and_metrics(
    tmp_path, daemons, restartable_moto, media
):
    server = restartable_moto.server()
    bucket = server.create_bucket()
    daemon, url = served_daemon(
        daemons, tmp_path, server.env(bucket), SAMPLE_FPS="2", LEASE_TTL_S="4", LEASE_RENEW_S="1"
    )
    store = server.store(bucket)
    inbox = tmp_path / "inbox"

    def outage_at_upload(filename: str, seconds: float, video: str) -> None:
        # Two different videos: the second is not a duplicate completed without analysis.
        shutil.copyfile(media / video, inbox / f".{filename}")
        (inbox / f".{filename}").rename(inbox / filename)
        claimed = daemon.wait_for("inbox_file_claimed", filename=filename)
        # At "staging" the job holds its lease and has every write still ahead of it, so the
        # outage cannot miss it however fast the machine (at "uploading_source" a quick job
        # could finish before the store was gone).
        daemon.wait_for("job_stage", job_id=claimed["job_id"], stage="staging")
        restartable_moto.stop()
        time.sleep(seconds)
        restartable_moto.start()

    # 1. A short outage (well inside the 4 s lease): the job retries and completes.
    outage_at_upload("short.mp4", 1.5, "cuts_h264.mp4")
    short = wait_job_state(store, filename="short.mp4", daemon=daemon, timeout_s=120)
    # 2. A long outage: renewals fail until the lease runs out, attempt 1 is abandoned,
    #    attempt 2 takes the job up once the store is back.
    outage_at_upload("long.webm", 9, "cuts_vp9.webm")
    long = wait_job_state(store, filename="long.webm", daemon=daemon, timeout_s=180)
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    store.close()

    assert short["state"] == "completed" and short["attempts"] == 1
    retries = [w for w in short["warnings"] if w["code"] == "store_retries"]
    assert len(retries) == 1 and retries[0]["retries"] >= 1 and retries[0]["message"]

    assert long["state"] == "completed" and long["attempts"] == 2, long
    history = long["attempt_history"]
    assert [h["attempt"] for h in history] == [1, 2]
    assert [h["outcome"] for h in history] == ["abandoned", "completed"]
    codes = [w["code"] for w in long["warnings"]]
    assert "attempt_abandoned" in codes, long["warnings"]
    assert all(w["message"] for w in long["warnings"])
    assert daemon.find("lease_lost")

    assert _metric(metrics, "vidwatch_store_retries_total") >= 1
    assert _metric(metrics, "vidwatch_leases_lost_total") >= 1
    assert _metric(metrics, "vidwatch_job_attempts_abandoned_total") >= 1
