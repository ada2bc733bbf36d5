"""The job scanner in-process: bucket listing by job (paginated), which jobs it submits and
which it leaves, staging recovery, and the download of a bucket source into staging. The
daemon tests run it against moto and SeaweedFS with real analyses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from vidwatch.daemon.runner import Runner
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore
from vidwatch.r2.store import UploadVerificationError
from vidwatch.r2.verify import SHA256_META, verify_object

from .helpers import (
    Submitted,
    local_settings,
    make_scanner,
    runner_scanner,
    running_with_lease,
)
from .runner_fakes import FakeJobs


def _settings(tmp_path: Path, **extra):
    return local_settings(tmp_path, {"LEASE_TTL_S": "30"}, **extra)


def _put_source(store, job_id: str, ext: str = "mp4", data: bytes = b"video") -> str:
    key = f"jobs/{job_id}/input/source.{ext}"
    store.put_bytes(key, data)
    return key


def test_scanner_submits_new_and_abandoned_jobs_only(moto_bucket, tmp_path):
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    now = time.time()
    new, upper, done, held, crashed, waiting = (new_job_id() for _ in range(6))
    new_key = _put_source(store, new)
    upper_key = _put_source(store, upper, ext="MP4")  # a user's own upload, as named
    _put_source(store, done)
    write_manifest(
        store,
        Manifest(
            job_id=done, state="completed", stage="done", source_key=keys.source_key(done, "mp4")
        ),
    )
    _put_source(store, held)
    running_with_lease(store, held, "another-host", claimed_at=now, filename="f.mp4")  # live
    _put_source(store, crashed)
    # Its lease expired a half-minute ago.
    running_with_lease(store, crashed, "dead-host", claimed_at=now - 60, filename="f.mp4")
    write_manifest(
        store,
        Manifest(
            job_id=waiting, state="queued", origin="api", source_key=keys.source_key(waiting, "mp4")
        ),
    )  # not uploaded
    sub = Submitted()
    scanner = make_scanner(settings, store, sub)
    assert scanner.poll_once() == 3
    assert set(sub.specs) == {new, upper, crashed}
    assert sub.specs[new].origin == "bucket" and sub.specs[new].source_in_store
    assert sub.specs[new].source_key == new_key
    assert sub.specs[upper].source_key == upper_key
    assert sub.specs[crashed].origin == "inbox" and sub.specs[crashed].filename == "f.mp4"
    assert (
        sub.specs[new].staged_source == Path(settings.temp_media_dir) / new / "input" / "source.mp4"
    )
    # Nothing twice; the held job is looked at again only once its lease would expire.
    assert scanner.poll_once() == 0
    later = make_scanner(settings, store, sub, clock=lambda: now + 31)
    later._not_before = dict(scanner._not_before)
    sub.specs.clear()
    assert later.poll_once() >= 1 and held in sub.specs
    store.close()


def test_on_the_local_store_only_jobs_with_a_manifest_are_scanned(tmp_path):
    settings = _settings(tmp_path)
    store = LocalStore(settings.local_store_dir)
    stray, resumed = new_job_id(), new_job_id()
    _put_source(store, stray)  # a file written into the store folder by hand
    _put_source(store, resumed)
    write_manifest(
        store,
        Manifest(
            job_id=resumed,
            state="queued",
            origin="inbox",
            source_key=keys.source_key(resumed, "mp4"),
        ),
    )
    sub = Submitted()
    assert make_scanner(settings, store, sub, new_sources=False).poll_once() == 1
    assert set(sub.specs) == {resumed}


def test_staging_recovery(tmp_path):
    settings = _settings(tmp_path)
    store = LocalStore(settings.local_store_dir)
    staged = {}
    for name in ("queued", "done", "orphan", "partial"):
        job_id = new_job_id()
        folder = Path(settings.temp_media_dir) / job_id / "input"
        folder.mkdir(parents=True)
        source = folder / ("source.mp4.download" if name == "partial" else "source.mp4")
        source.write_bytes(b"v")
        staged[name] = job_id
    write_manifest(
        store,
        Manifest(
            job_id=staged["queued"], origin="api", filename="a.mp4", cleanup_local_source=False
        ),
    )
    write_manifest(store, Manifest(job_id=staged["done"], state="completed"))
    sub = Submitted()
    scanner = make_scanner(settings, store, sub, new_sources=False)
    assert scanner.poll_once() == 1  # a later poll: a source without manifest may be mid-intake
    spec = sub.specs[staged["queued"]]
    assert spec.origin == "api" and spec.filename == "a.mp4" and not spec.source_in_store
    assert spec.cleanup_override is False
    assert scanner.poll_once(startup=True) == 1  # at start-up it is a job cut short
    assert sub.specs[staged["orphan"]].origin == "inbox"
    assert staged["partial"] not in sub.specs and staged["done"] not in sub.specs


def test_runner_downloads_a_bucket_source_into_staging(moto_bucket, tmp_path):
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    job_id = new_job_id()
    data = bytes(range(256)) * 100
    key = _put_source(store, job_id, ext="webm", data=data)
    seen = {}

    class Checking(FakeJobs):
        def __call__(self, spec, **kw):
            seen["bytes"] = spec.staged_source.read_bytes()
            seen["key"] = spec.source_key
            return super().__call__(spec, **kw)

    runner = Runner(settings=settings, store=store, models=None, toon=None, job_fn=Checking())
    runner.start()
    try:
        scanner = runner_scanner(settings, store, runner)
        assert scanner.poll_once() == 1
        assert runner.wait_idle(20)
    finally:
        runner.shutdown(5)
    assert seen == {"bytes": data, "key": key}
    status = json.loads(store.get_bytes(keys.status_key(job_id)))
    assert status["state"] == "completed" and status["source"]["origin"] == "bucket"
    assert not list(Path(settings.temp_media_dir).glob("*/input/*.download"))
    store.close()


def test_verify_download(tmp_path):
    def verify_download(store, key, *, size, sha256):
        return verify_object(
            store, key, size=size, sha256=sha256, read_back=False, local="the downloaded copy"
        )

    store = LocalStore(tmp_path / "store")
    store.put_bytes("jobs/x/input/source.mp4", b"12345")
    verify_download(store, "jobs/x/input/source.mp4", size=5, sha256="any")  # no metadata
    with pytest.raises(UploadVerificationError):
        verify_download(store, "jobs/x/input/source.mp4", size=4, sha256="any")
    store.put_bytes("jobs/y/input/source.mp4", b"12345", metadata={SHA256_META: "abc"})
    verify_download(store, "jobs/y/input/source.mp4", size=5, sha256="abc")
    with pytest.raises(UploadVerificationError):
        verify_download(store, "jobs/y/input/source.mp4", size=5, sha256="def")
    with pytest.raises(UploadVerificationError):
        verify_download(store, "jobs/z/input/source.mp4", size=5, sha256="abc")
