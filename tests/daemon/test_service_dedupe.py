"""The same bytes never analysed twice: one file dropped into two daemons' inboxes (under
other names), uploaded to their shared bucket and POSTed to one's API gives four jobs, one
analysis, three jobs ``duplicate_of`` the analysed one, and job.completed events that say so.
SeaweedFS (a real S3 server) gives the conditional writes the index claims rely on."""

from __future__ import annotations

import shutil

import httpx
import pytest

from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys

from ..jobs.webhook_receiver import Receiver, new_secret, spec_verify
from .service_harness import all_statuses, analyses_by_job, daemon_env, wait_until

pytestmark = pytest.mark.models

SECRET = new_secret()


def test_one_analysis_for_the_same_bytes_from_every_intake_and_two_daemons(
    seaweedfs_bucket, daemons, tmp_path, model_env, media
):
    receiver = Receiver().start()
    started = []
    try:
        for name in ("a", "b"):
            env = daemon_env(
                tmp_path / name,
                model_env,
                **seaweedfs_bucket.env(),
                TORCH_THREADS="1",
                HTTP_ENABLED="true",
                HTTP_PORT="0",
                WEBHOOK_URLS=receiver.url("/hook"),
                WEBHOOK_SECRET=SECRET,
            )
            (tmp_path / name / "inbox").mkdir(parents=True)
            started.append(daemons(tmp_path / name, env, name=name).start())
        a, b = started
        for daemon in started:
            daemon.wait_ready(timeout_s=300)
        port = a.wait_for("http_listening")["port"]

        clip = media / "single_shot.mp4"
        shutil.copyfile(clip, tmp_path / "a" / "inbox" / "holiday.mp4")
        shutil.copyfile(clip, tmp_path / "b" / "inbox" / "holiday copy.mp4")
        bucket_job = new_job_id()
        client = seaweedfs_bucket.client()
        try:
            client.put_object(
                Bucket=seaweedfs_bucket.name,
                Key=keys.source_key(bucket_job, "mp4"),
                Body=clip.read_bytes(),
            )
        finally:
            client.close()
        with open(clip, "rb") as fh:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/analyze-video",
                files={"file": ("upload.mp4", fh, "video/mp4")},
                timeout=60,
            )
        assert answer.status_code == 202, answer.text

        store = seaweedfs_bucket.store()
        try:

            def four_done():
                docs = all_statuses(store)
                done = [d for d in docs.values() if d["state"] in ("completed", "failed")]
                return docs if len(docs) == 4 and len(done) == 4 else None

            docs = wait_until(four_done, timeout_s=240, what="four jobs", interval_s=0.5, daemon=a)
        finally:
            store.close()
        assert {d["source"]["origin"] for d in docs.values()} == {"inbox", "bucket", "api"}
        assert all(d["state"] == "completed" for d in docs.values()), docs
        analysed = [j for j, d in docs.items() if d["duplicate_of"] is None]
        assert len(analysed) == 1, docs
        dups = {j: d["duplicate_of"] for j, d in docs.items() if d["duplicate_of"]}
        assert len(dups) == 3 and set(dups.values()) == set(analysed)
        assert len({d["content_key"] for d in docs.values()}) == 1
        analyses = analyses_by_job(a, b)
        assert list(analyses) == analysed and len(analyses[analysed[0]]) == 1, analyses

        def completed_events():
            events = [spec_verify(SECRET, h.headers, h.body) for h in receiver.at("/hook")]
            done = {e["data"]["job_id"]: e["data"] for e in events if e["type"] == "job.completed"}
            return done if len(done) == 4 else None

        done = wait_until(completed_events, timeout_s=60, what="four job.completed", daemon=a)
        for job_id, data in done.items():
            assert data["duplicate_of"] == dups.get(job_id)
            assert data["summary"] == done[analysed[0]]["summary"]
    finally:
        receiver.close()
