"""Two real daemons on one S3 bucket (moto, then SeaweedFS): sources uploaded to
``jobs/<id>/input/`` are found and completed (a fresh id by the polls, an id older than the
poll window by the start-up sweep), and each of ten jobs is analysed once. ``kill -9`` in
the middle of a bucket job under an old id: another host takes it up by its pending marker
and completes it."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from ulid import ULID

from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys

from .service_harness import (
    analyses_by_job,
    daemon_env,
    read_status,
    wait_until,
)

pytestmark = pytest.mark.models


def _upload(bucket, data: bytes, *, age_s: float = 0.0) -> str:
    """A user's own upload: a plain PutObject, no status.json; the same bytes each time,
    so each asks to be analysed afresh (the metadata ``reanalyze: true``). ``age_s``: under
    an id made that long ago."""
    job_id = str(ULID.from_timestamp(time.time() - age_s)) if age_s else new_job_id()
    client = bucket.client()
    try:
        client.put_object(
            Bucket=bucket.name,
            Key=keys.source_key(job_id, "mp4"),
            Body=data,
            Metadata={"reanalyze": "true"},
        )
    finally:
        client.close()
    return job_id


def test_two_daemons_share_a_bucket_and_run_each_job_once(
    s3_bucket, daemons, tmp_path, model_env, media
):
    data = (media / "single_shot.mp4").read_bytes()
    early = [_upload(s3_bucket, data) for _ in range(4)]  # waiting before either starts
    early.append(_upload(s3_bucket, data, age_s=2 * 3600))  # older than the window
    started = []
    for name in ("a", "b"):
        env = daemon_env(
            tmp_path / name,
            model_env,
            **s3_bucket.env(),
            TORCH_THREADS="1",
            LEASE_TTL_S="10",
            LEASE_RENEW_S="2",
            BUCKET_WINDOW_S="600",
        )
        started.append(daemons(tmp_path / name, env, name=name).start())
    for daemon in started:
        daemon.wait_ready()
    late = [_upload(s3_bucket, data) for _ in range(5)]  # found by the periodic polls
    jobs = early + late

    store = s3_bucket.store()
    try:

        def all_done():
            docs = {j: read_status(store, j) for j in jobs}
            return (
                docs
                if all(d and d["state"] in ("completed", "failed") for d in docs.values())
                else None
            )

        docs = wait_until(
            all_done, timeout_s=180, what="ten bucket jobs", interval_s=0.3, daemon=started[0]
        )
        for job_id, doc in docs.items():
            assert doc["state"] == "completed", doc["error"]
            assert doc["source"]["origin"] == "bucket"
            assert doc["source"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert doc["attempts"] == 1
            results = json.loads(store.get_bytes(keys.results_key(job_id)))
            assert results["video"]["frames"] == 48
    finally:
        store.close()

    analyses = analyses_by_job(*started)
    assert sorted(analyses) == sorted(jobs)
    assert all(len(by) == 1 for by in analyses.values()), analyses
    shares = {d.name: sum(by == [d.name] for by in analyses.values()) for d in started}
    print(f"{s3_bucket.server.name}: jobs per daemon {shares}")
    assert all(shares.values()), shares  # both took part


def test_kill_9_mid_bucket_job_another_host_resumes_it_by_its_marker(
    moto_bucket, daemons, tmp_path, model_env, media
):
    data = (media / "cuts_h264.mp4").read_bytes()
    job_id = _upload(moto_bucket, data, age_s=2 * 3600)  # no poll window shows it
    env = {**moto_bucket.env(), "SAMPLE_FPS": "2", "MODEL_BATCH_SIZE": "1", "TORCH_THREADS": "1"}
    first = daemons(tmp_path / "a", daemon_env(tmp_path / "a", model_env, **env), name="a")
    first.start()
    store = moto_bucket.store()
    try:

        def mid_analysis():
            doc = read_status(store, job_id)
            frames = keys.job_prefix(job_id) + "frames/original/"
            if doc and doc["stage"] == "analyzing" and any(store.list(frames)):
                return doc
            return None

        wait_until(mid_analysis, timeout_s=120, what="frames written", daemon=first)
        first.kill9()
        assert store.head(keys.pending_key(job_id)) is not None

        # Another host: its own staging, no memory of the job; the marker leads it there.
        second = daemons(tmp_path / "b", daemon_env(tmp_path / "b", model_env, **env), name="b")
        second.start()
        done = wait_until(
            lambda: (lambda d: d if d and d["state"] in ("completed", "failed") else None)(
                read_status(store, job_id)
            ),
            timeout_s=180,
            what="the resumed job",
            daemon=second,
        )
        assert done["state"] == "completed", done["error"]
        assert done["attempts"] == 2 and done["source"]["origin"] == "bucket"
        found = second.find("job_found", job_id=job_id)
        assert found and found[0]["why"] == "resume running"
        wait_until(  # the marker goes right after the final manifest
            lambda: store.head(keys.pending_key(job_id)) is None,
            timeout_s=10,
            what="marker gone",
        )
    finally:
        store.close()
