"""Hostile files and names through the real daemon (``vidwatch run`` with its inbox and the
HTTP API; the bucket path is in test_bucket_hostile_files.py): a valid MP4 that carries ``<script>``
in a trailing box, named ``poly.html``, is analysed to the end and stored as
``source.mp4``, and its link on the job page answers a video type with ``nosniff`` and a
sandbox CSP, never ``text/html``; a name with a bidi override or over 255 bytes is cleaned
the same way on every path, with a ``filename_changed`` warning in status.json."""

from __future__ import annotations

import re
import shutil
import struct
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from vidwatch.jobs.names import FILENAME_CHANGED
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

from .service_harness import Daemon, daemon_env, wait_job_state, wait_until

pytestmark = pytest.mark.models


def polyglot(video: Path, marker: str) -> bytes:
    """``video`` with a trailing ``free`` box whose payload is an HTML document with a
    script: still a valid MP4 (players skip ``free`` boxes), and HTML to a browser that
    is told it is HTML."""
    payload = (
        f"<!doctype html><html><body><script>document.title='{marker}';"
        f"fetch('/jobs?stolen=' + document.cookie)</script></body></html>"
    ).encode()
    return video.read_bytes() + struct.pack(">I", 8 + len(payload)) + b"free" + payload


@pytest.fixture(scope="module")
def running(tmp_path_factory, model_env, media):
    root = tmp_path_factory.mktemp("hostile")
    (root / "inbox").mkdir()
    env = daemon_env(root, model_env, HTTP_ENABLED="true", HTTP_PORT="0")
    daemon = Daemon(root, env).start()
    try:
        daemon.wait_ready()
        port = daemon.wait_for("http_listening")["port"]
        yield daemon, LocalStore(root / "store"), root / "inbox", f"http://127.0.0.1:{port}"
    finally:
        daemon.close()


def source_link_on_the_job_page(base_url: str, job_id: str) -> str:
    page = httpx.get(f"{base_url}/jobs/{job_id}", timeout=30)
    assert page.status_code == 200, page.text
    found = re.search(r'<source src="([^"]+)"', page.text)
    assert found, "no video source on the job page"
    return unescape(found.group(1))


def check_served_as_video(url: str, body: bytes) -> None:
    for method in ("GET", "HEAD"):
        resp = httpx.request(method, url, timeout=30)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "video/mp4"
        assert resp.headers["x-content-type-options"] == "nosniff"
        csp = resp.headers["content-security-policy"]
        assert csp.startswith("sandbox") and "allow-scripts" not in csp
        assert "script-src" not in csp and "default-src 'none'" in csp
        if method == "GET":
            assert resp.content == body


def test_a_polyglot_named_html_is_a_video_on_every_path(running, media, tmp_path):
    daemon, store, inbox, base_url = running
    by_api = polyglot(media / "single_shot.mp4", "api")
    by_inbox = polyglot(media / "single_shot.mp4", "inbox")

    answer = httpx.post(
        f"{base_url}/analyze-video",
        files={"file": ("poly.html", by_api, "text/html")},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    api_job = answer.json()["job_id"]
    (tmp_path / "poly-inbox.html").write_bytes(by_inbox)
    shutil.move(tmp_path / "poly-inbox.html", inbox / "poly-inbox.html")

    api_doc = wait_job_state(store, job_id=api_job, daemon=daemon)
    inbox_doc = wait_job_state(store, filename="poly-inbox.html", daemon=daemon)
    for doc, name, body, key in [
        (api_doc, "poly.html", by_api, keys.source_key(api_job, "mp4")),
        (inbox_doc, "poly-inbox.html", by_inbox, keys.source_key(inbox_doc["job_id"], "mp4")),
    ]:
        assert doc["state"] == "completed", doc["error"]
        assert doc["source"]["key"] == key and doc["source"]["filename"] == name
        assert store.get_bytes(key) == body
        link = source_link_on_the_job_page(base_url, doc["job_id"])
        assert urlpath(link) == f"/files/{key}"
        check_served_as_video(link, body)


def urlpath(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def _changed(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in doc["warnings"] if w.get("code") == FILENAME_CHANGED]


def test_names_are_cleaned_alike_with_a_warning_on_every_path(running, media):
    """The same bidi name by the API and the inbox ends with the same name and the same
    warning in the final status.json; a name over 255 bytes (which no inbox file system
    holds) is cut by the API with its extension kept, and said so."""
    daemon, store, inbox, base_url = running
    video = media / "single_shot.mp4"
    cases = {"\u202egpj.mp4": "gpj.mp4", "é" * 200 + ".mp4": "é" * 125 + ".mp4"}
    jobs = {}
    for n, (raw, shown) in enumerate(cases.items()):
        body = video.read_bytes() + b"\0" * (n + 1)  # distinct bytes: no duplicates
        answer = httpx.post(f"{base_url}/analyze-video", files={"file": (raw, body)}, timeout=30)
        assert answer.status_code == 202, answer.text
        assert answer.json()["filename"] == shown
        jobs[shown] = answer.json()["job_id"]
    (inbox / "\u202egpj.mp4").write_bytes(video.read_bytes() + b"inbox")
    done = {}
    for shown, job_id in jobs.items():
        doc = wait_job_state(store, job_id=job_id, daemon=daemon)
        assert doc["state"] == "completed" and doc["source"]["filename"] == shown
        (done[shown],) = _changed(doc)
    assert "U+202E" in done["gpj.mp4"]["message"]
    assert done["gpj.mp4"]["original"] == "\\u202egpj.mp4"
    assert "cut from 404 to 254 bytes" in done["é" * 125 + ".mp4"]["message"]
    inbox_doc = wait_until(
        lambda: next(
            (
                d
                for d in _statuses(store)
                if d["source"]["origin"] == "inbox"
                and d["source"]["filename"] == "gpj.mp4"
                and d["state"] in ("completed", "failed")
            ),
            None,
        ),
        timeout_s=120,
        what="the inbox job",
        daemon=daemon,
    )
    assert inbox_doc["state"] == "completed" and inbox_doc["source"]["filename"] == "gpj.mp4"
    assert _changed(inbox_doc) == [done["gpj.mp4"]]


def _statuses(store: LocalStore) -> list[dict[str, Any]]:
    import json

    out = []
    for info in store.list("jobs/"):
        if info.key.endswith("/status.json"):
            out.append(json.loads(store.get_bytes(info.key)))
    return out
