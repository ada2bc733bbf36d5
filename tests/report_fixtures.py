"""One real job for the page and export tests: the shared cut video through ``run_job``
with the test models (random-weight YOLO, MTCNN), into a LocalStore; made once a session."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vidwatch.config import Settings, load_settings
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore


@dataclass
class AnalysedJob:
    job_id: str
    settings: Settings
    store: LocalStore
    status: dict[str, Any]
    results: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.store.root / keys.job_prefix(self.job_id)


@pytest.fixture(scope="session")
def analysed_job(media, models, model_env, tmp_path_factory) -> AnalysedJob:
    from vidwatch.jobs.run import run_job
    from vidwatch.jobs.staging import JobSpec, new_job_id, stage_copy

    root = tmp_path_factory.mktemp("analysed")
    settings = load_settings(
        {
            **model_env,
            "TEMP_MEDIA_DIR": str(root / "tmp_media"),
            "LOCAL_STORE_DIR": str(root / "store"),
            "TOON_ENABLED": "false",
            "SAMPLE_FPS": "0.5",
        }
    )
    store = LocalStore(settings.local_store_dir)
    job_id = new_job_id()
    source = media / "cuts_h264.mp4"
    spec = JobSpec(
        job_id=job_id,
        staged_source=stage_copy(settings, job_id, source),
        origin="cli",
        filename=source.name,
    )
    manifest = run_job(spec, store=store, settings=settings, models=models, toon=None)
    assert manifest.state == "completed", manifest.error
    return AnalysedJob(
        job_id,
        settings,
        store,
        json.loads(store.get_bytes(keys.status_key(job_id))),
        json.loads(store.get_bytes(keys.results_key(job_id))),
    )
