"""Jobs against a real S3 server (moto on loopback): the full layout in the bucket, signed
links that download the stored bytes, and sources that are never lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.pipeline.test_pipeline import _run
from vidwatch.r2 import keys

pytestmark = pytest.mark.models


def test_job_writes_full_layout_to_the_bucket_and_links_download_same_bytes(
    media, models, make_settings, moto_bucket
):
    settings = make_settings()
    store = moto_bucket.store()
    _, job_id, manifest = _run(media / "single_shot.mp4", settings, models, store=store)
    assert manifest.state == "completed", manifest.error
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    present = {i.key for i in store.list(keys.job_prefix(job_id))}
    for frame in results["frames"]:
        assert set(frame["images"].values()) | {frame["json"]} <= present
    key = results["frames"][0]["images"]["original"]
    url = store.signed_url(key, 60)
    assert url.startswith(moto_bucket.server.endpoint_url)
    assert httpx.get(url, timeout=10).content == store.get_bytes(key)
    head = store.head(keys.status_key(job_id))
    assert head.content_type == "application/json"
    assert store.head(key).content_type == "image/jpeg"
    assert store.head(keys.source_key(job_id, "mp4")).content_type == "video/mp4"


def test_vidwatch_analyze_pointed_at_the_bucket(media, model_env, moto_bucket, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("R2_")}
    env.update(model_env)
    env.update(moto_bucket.env())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidwatch.cli",
            "analyze",
            str(media / "single_shot.mp4"),
            "--no-toon",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"s3://{moto_bucket.name}/jobs/" in proc.stdout
    store = moto_bucket.store()
    statuses = [i.key for i in store.list("jobs/") if i.key.endswith("/status.json")]
    assert len(statuses) == 1
    assert json.loads(store.get_bytes(statuses[0]))["state"] == "completed"
    assert not (tmp_path / "store").exists()  # nothing went to the local store


class _CutShortStore:
    """The real S3 store, but every source upload stops halfway (a connection cut that the
    server took for the end of the body)."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def put_file(self, key, path, *, content_type=None, metadata=None):
        data = Path(path).read_bytes()
        return self._store.put_bytes(
            key, data[: len(data) // 2], content_type=content_type, metadata=metadata
        )


@pytest.mark.expect_error_logs("job_failed")
def test_source_cut_short_in_upload_is_kept_locally_and_the_job_says_why(
    media, models, make_settings, moto_bucket
):
    settings = make_settings()
    store = _CutShortStore(moto_bucket.store())
    _, job_id, manifest = _run(media / "single_shot.mp4", settings, models, store=store)
    assert manifest.state == "failed"
    assert manifest.error.code == "upload_not_verified"
    assert "bytes after upload" in manifest.error.message
    staged = Path(settings.temp_media_dir) / job_id / "input" / "source.mp4"
    assert staged.read_bytes() == (media / "single_shot.mp4").read_bytes()
    assert manifest.local_source_deleted is False
    doc = json.loads(store.get_bytes(keys.status_key(job_id)))
    assert doc["state"] == "failed" and doc["error"]["code"] == "upload_not_verified"
