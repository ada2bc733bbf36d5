"""The bucket path with hostile objects (the daemon's runner and job scanner in-process, on
a folder store, its /files route serving the links): an object put at
``jobs/<id>/input/source.html`` is refused with the key to use (``source.bin``, as for any
extension a source may not keep), the same bytes there are analysed, and the job page's
source link answers ``application/octet-stream`` as an attachment; a key whose name holds
a bidi override is shown cleaned, with a ``filename_changed`` warning."""

from __future__ import annotations

import json
import re
import struct
from html import unescape
from pathlib import Path

import httpx

from tests.api.api_harness import local_api, serve
from vidwatch.daemon.runner import Runner
from vidwatch.detectors.registry import load_models
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys

from .helpers import MODELS_OFF, local_settings, runner_scanner


def _status(store, job_id: str) -> dict:
    return json.loads(store.get_bytes(keys.status_key(job_id)))


def test_a_source_html_in_the_bucket_is_refused_then_taken_as_source_bin(tmp_path, media):
    settings = local_settings(tmp_path, MODELS_OFF, SAMPLE_FPS="1")
    app, store = local_api(settings, lambda spec: None)
    payload = b"<!doctype html><script>document.title='pwned'</script>"
    video = (media / "single_shot.mp4").read_bytes()
    poly = video + struct.pack(">I", 8 + len(payload)) + b"free" + payload
    job_id, bidi_job = new_job_id(), new_job_id()
    store.put_bytes(f"jobs/{job_id}/input/source.html", poly, content_type="text/html")
    store.put_bytes(f"jobs/{bidi_job}/input/\u202evideo.mkv", video)

    runner = Runner(settings=settings, store=store, models=load_models(settings), toon=None)
    runner.start()
    scanner = runner_scanner(settings, store, runner)
    try:
        scanner.poll_once()
        assert runner.wait_idle(60)
        refused = _status(store, job_id)
        assert refused["state"] == "failed" and refused["error"]["code"] == "bad_source_key"
        message = refused["error"]["message"]
        assert f"jobs/{job_id}/input/source.bin" in message and "never .html" in message
        assert store.head(keys.results_key(job_id)) is None  # not analysed

        shown = _status(store, bidi_job)
        assert shown["error"]["code"] == "bad_source_key"
        assert shown["source"]["filename"] == "video.mkv"
        (warning,) = shown["warnings"]
        assert warning["code"] == "filename_changed" and "U+202E" in warning["message"]

        store.put_bytes(f"jobs/{job_id}/input/source.bin", poly)
        scanner.poll_once()
        assert runner.wait_idle(120)
        done = _status(store, job_id)
        assert done["state"] == "completed", done["error"]
        assert done["source"]["key"] == f"jobs/{job_id}/input/source.bin"
    finally:
        runner.shutdown(5)

    with serve(app) as served:
        page = httpx.get(f"{served.base_url}/jobs/{job_id}", timeout=30)
        # No type to name for a source.bin: the player finds out from the bytes.
        source_tag = re.search(r"<source [^>]*>", page.text).group(0)
        assert "type=" not in source_tag
        link = unescape(re.search(r'<source src="([^"]+)"', page.text).group(1))
        assert Path(link.split("?")[0]).name == "source.bin"
        got = httpx.get(link, timeout=30)
        assert got.status_code == 200 and got.content == poly
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"] == 'attachment; filename="source.bin"'
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-security-policy"].startswith("sandbox;")
