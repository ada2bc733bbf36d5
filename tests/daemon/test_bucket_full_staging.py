"""A bucket job whose source does not fit in staging: TEMP_MEDIA_DIR is a real 1 MiB tmpfs, the
source (2 MiB) sits in a moto bucket. The job is not failed and not downloaded at every poll:
its tries back off (doubling from BUCKET_POLL_S up to STAGING_FULL_RETRY_MAX_S), each one
logged with the free bytes and counted, its status.json says why it waits, and once the disk
has room it runs by itself."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time

from structlog.testing import capture_logs

from tests.full_disk import small_tmpfs
from vidwatch import metrics
from vidwatch.daemon.runner import Runner
from vidwatch.jobs.staging import doubling_wait_s, new_job_id
from vidwatch.r2 import keys

from .helpers import local_settings, runner_scanner
from .runner_fakes import FakeJobs

MiB = 1024 * 1024
POLL_S = 0.2
MAX_S = 1.6


def test_a_source_that_does_not_fit_in_staging_backs_off_then_runs(moto_bucket, tmp_path):
    with small_tmpfs(tmp_path / "staging", 1 * MiB) as staging:
        settings = local_settings(
            tmp_path,
            {
                "TEMP_MEDIA_DIR": str(staging),
                "LEASE_TTL_S": "30",
                "BUCKET_POLL_S": str(POLL_S),
                "STAGING_FULL_RETRY_MAX_S": str(MAX_S),
            },
        )
        store = moto_bucket.store()
        job_id = new_job_id()
        key = keys.source_key(job_id, "mp4")
        store.put_bytes(key, os.urandom(2 * MiB))
        downloads: list[float] = []
        download = store.download_file

        def counting_download(k, path):
            downloads.append(time.monotonic())
            download(k, path)

        store.download_file = counting_download  # the runner's downloads, counted
        jobs = FakeJobs()
        runner = Runner(settings=settings, store=store, models=None, toon=None, job_fn=jobs)
        runner.start()
        waits_before = metrics.STAGING_FULL_WAITS._value.get()
        polls = 0
        try:
            scanner = runner_scanner(settings, store, runner)
            with capture_logs() as logs:
                started = time.monotonic()
                while time.monotonic() - started < 5.0:  # 25 polls
                    scanner.poll_once()
                    polls += 1
                    time.sleep(POLL_S)
                assert runner.wait_idle(10)
                waiting = json.loads(store.get_bytes(keys.status_key(job_id)))
                tries_while_full = len(downloads)
                # Room again: the tmpfs grows to 8 MiB; the job goes on by itself.
                subprocess.run(
                    ["mount", "-o", "remount,size=8388608", str(staging)], check=True, timeout=30
                )
                deadline = time.monotonic() + 10
                while jobs.runs[job_id] == 0:
                    assert time.monotonic() < deadline, "the job never ran once space was back"
                    scanner.poll_once()
                    time.sleep(POLL_S)
                assert runner.wait_idle(10)
        finally:
            runner.shutdown(5)
        final = json.loads(store.get_bytes(keys.status_key(job_id)))
        leftovers = [p.name for p in staging.rglob("*.download*")]
        store.close()

    full = [e for e in logs if e["event"] == "job_staging_full"]
    # One download per poll before; now 0.2, 0.4, 0.8, 1.6, 1.6 s apart: 5 or 6 tries in 5 s,
    # however many polls a loaded machine fits in those 5 s (25 on a quiet one, 10 seen).
    assert polls >= 2 * tries_while_full and 4 <= tries_while_full <= 7, (polls, tries_while_full)
    assert len(full) == tries_while_full
    assert [e["failed_tries"] for e in full] == list(range(1, tries_while_full + 1))
    assert [e["retry_in_s"] for e in full[:5]] == [0.2, 0.4, 0.8, 1.6, 1.6]
    gaps = [b - a for a, b in itertools.pairwise(downloads[:tries_while_full])]
    assert all(gap >= want - 0.05 for gap, want in zip(gaps, [0.2, 0.4, 0.8, 1.6], strict=False))
    for e in full:
        assert e["job_id"] == job_id and e["key"] == key and e["next_retry_at"]
        assert 0 <= e["free_bytes"] < 2 * MiB and e["source_bytes"] == 2 * MiB
    assert metrics.STAGING_FULL_WAITS._value.get() - waits_before == tries_while_full
    # While it waited: queued, not failed, and saying why.
    assert waiting["state"] == "queued" and waiting.get("error") is None
    (warning,) = [w for w in waiting["warnings"] if w["code"] == "staging_full"]
    assert warning["failed_tries"] >= 1 and warning["source_bytes"] == 2 * MiB
    assert "TEMP_MEDIA_DIR" in warning["message"] and key in warning["message"]
    # Then it ran once, by itself, and the trace of the wait stays.
    assert jobs.runs[job_id] == 1 and len(downloads) == tries_while_full + 1
    assert final["state"] == "completed"
    assert [w["code"] for w in final["warnings"]] == ["staging_full"]
    assert any(e["event"] == "job_staging_room_back" for e in logs)
    assert leftovers == []
    assert store.head(key) is not None


def test_the_staging_full_wait_is_bounded():
    # The runner's wait: doubling from BUCKET_POLL_S (10 s) up to STAGING_FULL_RETRY_MAX_S.
    assert [doubling_wait_s(n, 10.0, 600.0) for n in (1, 2, 3, 6, 7, 30)] == [
        10.0,
        20.0,
        40.0,
        320.0,
        600.0,
        600.0,
    ]
