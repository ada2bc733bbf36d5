"""Retention with fixed clocks: the pure decisions, then whole passes over a real staging
folder and local store whose file times are set relative to a fixed ``now``."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vidwatch.daemon.retention import (
    Retention,
    StagedFile,
    StagingFacts,
    plan_staging,
    store_job_expired,
)
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.leases import claim
from vidwatch.r2.local import LocalStore

from .helpers import local_settings

NOW = 1_900_000_000.0  # a fixed clock, 2030
HOUR = 3600.0
DAY = 24 * HOUR


# --- pure decisions -------------------------------------------------------------------------
def _facts(state, *, policy=True, in_store=True, active=False, age_h=30.0, extra_age_h=None):
    files = [StagedFile(Path("src"), True, NOW - age_h * HOUR)]
    if extra_age_h is not None:
        files.append(StagedFile(Path("other"), False, NOW - extra_age_h * HOUR))
    return StagingFacts("J", tuple(files), state, policy, in_store, active)


@pytest.mark.parametrize(
    ("facts", "doomed"),
    [
        (_facts("completed"), ["src"]),
        (_facts("failed"), ["src"]),  # the source is in the store beside the failed manifest
        (_facts("completed", age_h=0.1), ["src"]),  # ended: no need to wait out the age
        (_facts("completed", policy=False), []),  # cleanup off: the source is kept
        (_facts("completed", policy=False, extra_age_h=25), ["other"]),  # ...stale others not
        (_facts("completed", policy=False, extra_age_h=1), ["other"]),  # ended: no writer
        (_facts("queued", extra_age_h=0.1), []),  # a pending job's fresh partial may be live
        (_facts(None, extra_age_h=0.2), ["other"]),  # no manifest, no writer here, 12 min old
        (_facts("completed", in_store=False), []),  # never verified in the store: the only copy
        (_facts("queued", extra_age_h=48), ["other"]),  # pending: its source is untouchable
        (_facts("running"), []),
        (_facts(None, extra_age_h=48), ["other"]),  # no manifest yet
        (_facts("completed", active=True, extra_age_h=48), []),  # in hand here
        (_facts("completed", policy=None), ["src"]),  # no recorded policy: the default (on)
    ],
)
def test_plan_staging(facts, doomed):
    got = plan_staging(facts, now=NOW, stale_after_s=24 * HOUR, default_cleanup=True)
    assert [p.name for p in got] == doomed


def test_plan_staging_default_policy_off():
    facts = _facts("completed", policy=None)
    assert plan_staging(facts, now=NOW, stale_after_s=24 * HOUR, default_cleanup=False) == []


@pytest.mark.parametrize(
    ("age", "leased", "expired"),
    [
        (timedelta(days=7, seconds=1), False, True),
        (timedelta(days=7), False, False),
        (timedelta(days=6, hours=23), False, False),
        (timedelta(days=30), True, False),
    ],
)
def test_store_job_expired(age, leased, expired):
    now = datetime.fromtimestamp(NOW, UTC)
    assert store_job_expired(newest=now - age, now=now, retention_days=7, leased=leased) is expired


# --- whole passes -------------------------------------------------------------------------
class Recorder:
    """A logger that keeps every line as a dict: ``{"event": ..., "level": ..., **fields}``."""

    def __init__(self) -> None:
        self.lines: list[dict] = []

    def __getattr__(self, level: str):
        return lambda event, **fields: self.lines.append({"event": event, "level": level, **fields})


def _settings(tmp_path: Path, **extra):
    return local_settings(
        tmp_path, {"STAGING_STALE_HOURS": "24", "R2_RETENTION_DAYS": "7"}, **extra
    )


def _age(path: Path, hours: float) -> Path:
    os.utime(path, (NOW - hours * HOUR, NOW - hours * HOUR))
    return path


def _stage(
    settings,
    store,
    *,
    state,
    policy=None,
    uploaded=True,
    source_h=30.0,
    extra: dict[str, float] | None = None,
) -> tuple[str, Path]:
    job_id = new_job_id()
    folder = Path(settings.temp_media_dir) / job_id
    source = folder / "input" / "source.mp4"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"video-bytes")
    for name, hours in (extra or {}).items():
        _age(_write(folder / name, b"leftover"), hours)
    _age(source, source_h)
    if uploaded:
        store.put_bytes(keys.source_key(job_id, "mp4"), b"video-bytes")
    if state is not None:
        write_manifest(
            store,
            Manifest(
                job_id=job_id,
                state=state,
                source_key=keys.source_key(job_id, "mp4"),
                cleanup_local_source=policy,
            ),
        )
    return job_id, folder


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_staging_pass_removes_exactly_what_the_policy_says(tmp_path):
    settings = _settings(tmp_path)
    store = LocalStore(settings.local_store_dir)
    done, done_dir = _stage(settings, store, state="completed", policy=True)
    kept, kept_dir = _stage(
        settings,
        store,
        state="completed",
        policy=False,
        extra={"input/source.mp4.download": 30, "scratch/frame.jpg": 30, "scratch/fresh.jpg": 2},
    )
    _lost, lost_dir = _stage(settings, store, state="failed", policy=True, uploaded=False)
    fresh, fresh_dir = _stage(settings, store, state="completed", policy=True, source_h=2)
    pending, pending_dir = _stage(
        settings, store, state="queued", uploaded=False, extra={"input/source.mp4.download": 30}
    )
    busy, busy_dir = _stage(settings, store, state="completed", policy=True)
    empty_dir = Path(settings.temp_media_dir) / new_job_id()
    (empty_dir / "input").mkdir(parents=True)
    _age(empty_dir, 30)
    signing_key = _write(Path(settings.temp_media_dir) / ".url-signing-key", b"secret")
    _age(signing_key, 24 * 365)
    models_cfg = _write(Path(settings.temp_media_dir) / ".ultralytics" / "settings.json", b"{}")
    _age(models_cfg, 24 * 365)

    recorder = Recorder()
    retention = Retention(
        settings, store, is_active=lambda job_id: job_id == busy, clock=lambda: NOW, logger=recorder
    )
    report = retention.run()
    logs = recorder.lines

    assert not done_dir.exists()  # cleanup on, verified in the store, stale
    assert sorted(
        p.relative_to(kept_dir).as_posix() for p in kept_dir.rglob("*") if p.is_file()
    ) == ["input/source.mp4"]
    assert (lost_dir / "input" / "source.mp4").is_file()  # the only copy
    assert not fresh_dir.exists()  # ended: judged by the manifest, not by the age
    assert sorted(p.name for p in pending_dir.rglob("*") if p.is_file()) == ["source.mp4"]
    assert (busy_dir / "input" / "source.mp4").is_file()
    assert not empty_dir.exists()
    assert signing_key.is_file() and models_cfg.is_file()
    assert sorted(
        p.relative_to(Path(settings.temp_media_dir)).as_posix() for p in report.staging_deleted
    ) == sorted(
        [
            f"{done}/input/source.mp4",
            f"{fresh}/input/source.mp4",
            f"{kept}/input/source.mp4.download",
            f"{kept}/scratch/frame.jpg",
            f"{kept}/scratch/fresh.jpg",
            f"{pending}/input/source.mp4.download",
        ]
    )
    logged = {
        e["path"] for e in logs if e["event"] == "retention_deleted" and e["kind"] == "staging_file"
    }
    assert logged == {str(p) for p in report.staging_deleted}
    assert {e["job_id"] for e in logs if e.get("kind") == "staging_folder"} == {
        done,
        fresh,
        empty_dir.name,
    }


def _age_job(store: LocalStore, job_id: str, days: float, only: str | None = None) -> None:
    for info in store.list(keys.job_prefix(job_id)):
        if only is None or info.key.endswith(only):
            path = store.path_for(info.key)
            os.utime(path, (NOW - days * DAY, NOW - days * DAY))


def test_local_store_jobs_expire_after_the_retention_days(tmp_path):
    settings = _settings(tmp_path)
    store = LocalStore(settings.local_store_dir)
    jobs = {}
    for name in ("old", "touched", "leased", "busy", "young"):
        job_id = new_job_id()
        jobs[name] = job_id
        store.put_bytes(keys.source_key(job_id, "mp4"), b"v")
        store.put_bytes(keys.frame_json_key(job_id, 0), b"{}")
        write_manifest(store, Manifest(job_id=job_id, state="completed"))
    claim(store, jobs["leased"], "another-host", ttl_s=60, now=NOW)
    for name in ("old", "touched", "leased", "busy"):
        _age_job(store, jobs[name], 8)
    _age_job(store, jobs["touched"], 6, only="status.json")  # rewritten six days ago
    _age_job(store, jobs["young"], 6.9)

    recorder = Recorder()
    retention = Retention(
        settings, store, is_active=lambda j: j == jobs["busy"], clock=lambda: NOW, logger=recorder
    )
    report = retention.run()
    logs = recorder.lines

    assert report.jobs_expired == [jobs["old"]]
    assert list(store.list(keys.job_prefix(jobs["old"]))) == []
    assert not (Path(settings.local_store_dir) / "jobs" / jobs["old"]).exists()
    for name in ("touched", "leased", "busy", "young"):
        assert store.head(keys.status_key(jobs[name])) is not None, name
    assert [(e["job_id"], e["objects"]) for e in logs if e.get("kind") == "store_job"] == [
        (jobs["old"], 3)
    ]


def test_the_scheduler_runs_the_pass(tmp_path):
    settings = _settings(tmp_path, RETENTION_INTERVAL_S="0.2")
    store = LocalStore(settings.local_store_dir)
    _job_id, folder = _stage(settings, store, state="completed", policy=True)
    retention = Retention(settings, store, clock=lambda: NOW)
    scheduler = retention.schedule(first_run_s=0.1)
    try:
        deadline = time.monotonic() + 10
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert not folder.exists()
