"""Issue 16, case 2: bucket intake never leaves an object under ``jobs/`` without telling.
A lower-case ULID folder is the same job (one id rule for intake, keys and the API); a
folder that is not a ULID and a misnamed source get a ``failed`` status.json where the user
looks, with a code and a message naming the key to use, a log line and a metric; a source
then uploaded under the right key is taken. On SeaweedFS (a real S3 server)."""

from __future__ import annotations

import json

import httpx
from structlog.testing import capture_logs

from tests.api.api_harness import api_app, serve
from vidwatch import metrics
from vidwatch.config import load_settings
from vidwatch.daemon.runner import Runner
from vidwatch.detectors.registry import load_models
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys

from .helpers import MODELS_OFF, runner_scanner


def _count(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value("vidwatch_bucket_keys_total", {"outcome": outcome})
    return value or 0.0


def _status(store, key: str) -> dict:
    return json.loads(store.get_bytes(key))


def test_every_object_under_jobs_is_taken_or_answered(tmp_path, seaweedfs_bucket, media):
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            **MODELS_OFF,
            "TOON_ENABLED": "false",
            "SAMPLE_FPS": "1",
            **{k: v for k, v in seaweedfs_bucket.env().items()},
        }
    )
    store = seaweedfs_bucket.store()
    video = (media / "single_shot.mp4").read_bytes()
    lower = new_job_id().lower()
    misnamed = new_job_id()
    store.put_bytes(f"jobs/{lower}/input/source.mkv", video)
    store.put_bytes("jobs/holiday-2026/input/source.mkv", video)
    store.put_bytes(f"jobs/{misnamed}/input/video.mkv", video)
    before = {o: _count(o) for o in ("bad_job_key", "bad_source_key", "normalized_job_id")}

    runner = Runner(settings=settings, store=store, models=load_models(settings), toon=None)
    runner.start()
    scanner = runner_scanner(settings, store, runner)
    try:
        with capture_logs() as logs:
            scanner.poll_once()
            assert runner.wait_idle(120)
            scanner.poll_once()  # answered once: nothing is written or taken again
            assert runner.idle()

        # The lower-case folder: the same job, under its canonical id.
        job_id = lower.upper()
        done = _status(store, keys.status_key(job_id))
        assert done["state"] == "completed", done["error"]
        assert done["source"]["key"] == f"jobs/{lower}/input/source.mkv"
        assert store.head(keys.results_key(job_id)) is not None
        # A folder that is not a job id: a failed status.json in that folder.
        holiday = _status(store, "jobs/holiday-2026/status.json")
        assert holiday["state"] == "failed" and holiday["error"]["code"] == "bad_job_key"
        assert "jobs/holiday-2026/input/source.mkv" in holiday["error"]["message"]
        assert "jobs/<ULID>/input/source.mkv" in holiday["error"]["message"]
        # A misnamed source: a failed status.json naming the key to use.
        refused = _status(store, keys.status_key(misnamed))
        assert refused["state"] == "failed" and refused["error"]["code"] == "bad_source_key"
        assert f"jobs/{misnamed}/input/source.mkv" in refused["error"]["message"]
        refusals = [e for e in logs if e["event"] == "bucket_key_refused"]
        assert sorted(e["code"] for e in refusals) == ["bad_job_key", "bad_source_key"]
        assert [e["job_id"] for e in logs if e["event"] == "bucket_key_normalized"] == [job_id]
        assert _count("bad_job_key") - before["bad_job_key"] == 1
        assert _count("bad_source_key") - before["bad_source_key"] == 1
        assert _count("normalized_job_id") - before["normalized_job_id"] == 1

        # The user uploads the misnamed video again under the right key: it is taken.
        store.put_bytes(f"jobs/{misnamed}/input/source.mkv", video)
        scanner.poll_once()
        assert runner.wait_idle(120)
        assert _status(store, keys.status_key(misnamed))["state"] == "completed"

        # The API answers for the lower-case id intake accepted (no 404).
        app = api_app(settings, store, runner.submit)
        with serve(app) as served:
            for asked in (lower, job_id):
                answer = httpx.get(f"{served.base_url}/status/{asked}", timeout=30)
                assert answer.status_code == 200, answer.text
                assert answer.json()["job_id"] == job_id
            results = httpx.get(f"{served.base_url}/results/{lower}", timeout=30)
            assert results.status_code == 200, results.text
    finally:
        runner.shutdown(5)
        store.close()


def test_a_job_refused_at_intake_is_told_apart_by_its_error_code():
    from vidwatch.jobs.manifest import INTAKE_CODES, ErrorInfo, Manifest, failed_at_intake

    code = sorted(INTAKE_CODES)[0]
    refused = Manifest(job_id="01JD3W5Q6Y7Z8A9B0C1D2E3F4G", state="failed")
    refused.error = ErrorInfo(code=code, message="m")
    assert failed_at_intake(refused)
    refused.error = ErrorInfo(code="invalid_video", message="m")
    assert not failed_at_intake(refused)
    assert not failed_at_intake(Manifest(job_id="01JD3W5Q6Y7Z8A9B0C1D2E3F4G", state="queued"))
