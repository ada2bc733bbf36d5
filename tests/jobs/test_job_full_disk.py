"""Issue 16, case 3 (jobs): a job whose store fills up fails ``storage_full`` (a code of
its own, not ``internal_error``), frees what it wrote, writes its failed manifest, and its
source stays findable. The local store is a real 2 MiB tmpfs."""

from __future__ import annotations

import json

import pytest

from tests.full_disk import small_tmpfs
from vidwatch.config import load_settings
from vidwatch.detectors.registry import load_models
from vidwatch.jobs.run import run_job
from vidwatch.jobs.staging import JobSpec, new_job_id, stage_copy
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

MiB = 1024 * 1024


@pytest.mark.expect_error_logs("frame_write_failed", "job_failed", "local_put_many_failed")
def test_a_job_that_fills_the_store_fails_storage_full_and_keeps_its_source(tmp_path, media):
    with small_tmpfs(tmp_path / "store", 2 * MiB) as folder:
        settings = load_settings(
            {
                "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
                "LOCAL_STORE_DIR": str(folder),
                "DETECT_MODEL": "none",
                "SEGMENT_MODEL": "none",
                "FACES_ENABLED": "false",
                "SAMPLE_FPS": "10",
                "JPEG_QUALITY": "95",
            }
        )
        store = LocalStore(folder)
        job_id = new_job_id()
        staged = stage_copy(settings, job_id, media / "cuts_h264.mp4")
        spec = JobSpec(job_id=job_id, staged_source=staged, origin="inbox", filename="c.mp4")
        final = run_job(
            spec, store=store, settings=settings, models=load_models(settings), toon=None
        )
        stored = json.loads(store.get_bytes(keys.status_key(job_id)))
        left = sorted(info.key for info in store.list(keys.job_prefix(job_id)))
        source_in_store = store.head(keys.source_key(job_id, "mp4"))

    assert final.state == "failed" and final.error.code == "storage_full"
    assert stored["state"] == "failed" and stored["error"]["code"] == "storage_full"
    message = stored["error"]["message"]
    assert "partial artifacts were removed" in message
    # The source is findable: in the store where the message says, or kept in staging.
    if source_in_store is not None:
        assert keys.source_key(job_id, "mp4") in message
        assert left == [keys.source_key(job_id, "mp4"), keys.status_key(job_id)]
    else:
        assert staged.is_file() and str(staged) in message
        assert left == [keys.status_key(job_id)]
