"""Issue 16, case 1: retention reads the manifest. A job still queued (waiting in a full
queue) or running (its daemon died; nobody holds the lease) is never expired, whatever the
age of its files; a finished one of the same age is."""

from __future__ import annotations

import json
import os
from pathlib import Path

from vidwatch.config import load_settings
from vidwatch.daemon.retention import Retention
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import new_job_id, staged_source_path
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

NOW = 1_900_000_000.0
DAY = 86400.0


def _age_all(store: LocalStore, job_id: str, days: float) -> None:
    for info in store.list(keys.job_prefix(job_id)):
        os.utime(store.path_for(info.key), (NOW - days * DAY, NOW - days * DAY))


def test_a_queued_or_running_job_survives_retention_whatever_its_age(tmp_path: Path):
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            "LOCAL_STORE_DIR": str(tmp_path / "store"),
            "R2_RETENTION_DAYS": "7",
        }
    )
    store = LocalStore(settings.local_store_dir)
    jobs = {}
    for state in ("queued", "running", "completed", "failed"):
        job_id = new_job_id()
        jobs[state] = job_id
        write_manifest(
            store, Manifest(job_id=job_id, state=state, origin="inbox", filename=f"{state}.mp4")
        )
        if state == "queued":  # its source waits in staging, as with a full queue
            source = staged_source_path(settings, job_id, "mp4")
            source.parent.mkdir(parents=True)
            source.write_bytes(b"video")
        else:
            store.put_bytes(keys.source_key(job_id, "mp4"), b"video")
        _age_all(store, job_id, 30)

    report = Retention(settings, store, clock=lambda: NOW).run()

    assert sorted(report.jobs_expired) == sorted([jobs["completed"], jobs["failed"]])
    for state in ("queued", "running"):
        doc = json.loads(store.get_bytes(keys.status_key(jobs[state])))
        assert doc["state"] == state and doc["source"]["filename"] == f"{state}.mp4"
    assert staged_source_path(settings, jobs["queued"], "mp4").is_file()
    assert store.head(keys.source_key(jobs["running"], "mp4")) is not None
    for state in ("completed", "failed"):
        assert list(store.list(keys.job_prefix(jobs[state]))) == []
