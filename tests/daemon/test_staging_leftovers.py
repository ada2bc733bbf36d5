"""Issue 16, case 8: leftovers in staging are judged by the job's manifest and by whether
a writer of this process holds the folder, not by age alone. A killed daemon's staged
source goes once its job ended elsewhere; a cut-off upload's ``upload.partial`` goes when
no upload is arriving; an upload still arriving is never touched, however small
STAGING_STALE_HOURS is."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.api.api_harness import BOUNDARY, MULTIPART_TYPE, local_api, part_header, serve
from vidwatch.config import load_settings
from vidwatch.daemon.retention import Retention
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import new_job_id, staged_source_path, staging_dir
from vidwatch.r2 import keys

HOUR = 3600.0


def _settings(tmp_path: Path, **extra: str):
    return load_settings(
        {
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            "LOCAL_STORE_DIR": str(tmp_path / "store"),
            "STAGING_STALE_HOURS": "24",
            **extra,
        }
    )


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_killed_daemons_source_and_a_cut_off_upload_go_once_their_jobs_are_over(
    tmp_path, moto_bucket
):
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    # A daemon was killed mid-job; another host took the job over and completed it.
    taken_over = new_job_id()
    source = staged_source_path(settings, taken_over, "mp4")
    source.parent.mkdir(parents=True)
    source.write_bytes(b"v" * 4096)
    (source.parent / "source.mp4.download").write_bytes(b"v" * 100)
    store.put_bytes(keys.source_key(taken_over, "mp4"), b"v" * 4096)
    write_manifest(
        store,
        Manifest(
            job_id=taken_over, state="completed", source_key=keys.source_key(taken_over, "mp4")
        ),
    )
    _age(source, 5 * 60)  # minutes old, far from STAGING_STALE_HOURS
    # An upload cut off when the daemon died: it never became a job (no manifest).
    cut_off = new_job_id()
    partial = staging_dir(settings, cut_off) / "input" / "upload.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 8192)
    _age(partial, HOUR)
    # A job still queued here (full queue): its source and its partial are kept.
    pending = new_job_id()
    pending_source = staged_source_path(settings, pending, "mp4")
    pending_source.parent.mkdir(parents=True)
    pending_source.write_bytes(b"p")
    write_manifest(store, Manifest(job_id=pending, state="queued"))
    _age(pending_source, 48 * HOUR)

    report = Retention(settings, store).run()
    store.close()

    assert not staging_dir(settings, taken_over).exists()
    assert not staging_dir(settings, cut_off).exists()
    assert pending_source.is_file()
    deleted = {p.name for p in report.staging_deleted}
    assert deleted == {"source.mp4", "source.mp4.download", "upload.partial"}


def test_an_upload_still_arriving_is_never_swept(tmp_path):
    settings = _settings(tmp_path, STAGING_STALE_HOURS="0.0001")  # 0.36 s
    submitted = []
    app, store = local_api(settings, submitted.append, secret=b"k" * 32)
    first_part_sent = threading.Event()
    go_on = threading.Event()
    payload = os.urandom(3 * 1024 * 1024)

    def body() -> Iterator[bytes]:
        yield part_header("file", b"slow.mp4") + payload[: 2 * 1024 * 1024]
        first_part_sent.set()
        go_on.wait(30)
        yield payload[2 * 1024 * 1024 :]
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    result = {}
    with serve(app) as served, served.client(timeout=60) as client:

        def upload() -> None:
            result["resp"] = client.post(
                "/analyze-video", content=body(), headers={"content-type": MULTIPART_TYPE}
            )

        sender = threading.Thread(target=upload)
        sender.start()
        assert first_part_sent.wait(30)
        root = Path(settings.temp_media_dir)
        deadline = time.monotonic() + 30
        while not list(root.glob("*/input/upload.partial")):
            assert time.monotonic() < deadline, "the upload never reached staging"
            time.sleep(0.02)
        (partial,) = list(root.glob("*/input/upload.partial"))
        while partial.stat().st_size < 1024 * 1024 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.8)  # older than STAGING_STALE_HOURS now
        report = Retention(settings, store).run()
        go_on.set()
        sender.join(60)

    assert report.staging_deleted == []
    resp = result["resp"]
    assert resp.status_code == 202, resp.text
    (spec,) = submitted
    assert spec.staged_source.read_bytes() == payload
