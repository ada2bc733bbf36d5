"""Two real daemons on one S3 bucket (moto, then SeaweedFS): sources uploaded to
``jobs/<id>/input/`` are found and completed, and each of ten jobs is analysed once."""

from __future__ import annotations

import hashlib
import json

import pytest

from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys

from .service_harness import (
    analyses_by_job,
    daemon_env,
    read_status,
    wait_until,
)

pytestmark = pytest.mark.models


def _upload(bucket, data: bytes) -> str:
    """A user's own upload: a plain PutObject, no status.json; the same bytes each time,
    so each asks to be analysed afresh (the metadata ``reanalyze: true``)."""
    job_id = new_job_id()
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
):  # noqa: F811
    data = (media / "single_shot.mp4").read_bytes()
    early = [_upload(s3_bucket, data) for _ in range(5)]  # waiting before either starts
    started = []
    for name in ("a", "b"):
        env = daemon_env(
            tmp_path / name,
            model_env,
            **s3_bucket.env(),
            TORCH_THREADS="1",
            LEASE_TTL_S="10",
            LEASE_RENEW_S="2",
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
