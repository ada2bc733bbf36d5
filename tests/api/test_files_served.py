"""What ``/files`` answers for each kind of key: a type decided by what the key is in the
layout (never by a name a user chose, never by the bytes), ``nosniff``, a CSP with
``sandbox``, and ``attachment`` where a browser need not render the file. The bytes of
every object here are a hostile HTML document, stored with ``text/html``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.api_harness import Served, local_api, serve
from tests.api.browser import chromium
from tests.test_keys import SERVED
from vidwatch.api.links import request_base_url
from vidwatch.config import load_settings
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

HOSTILE = b"<!doctype html><html><body><script>document.title='pwned'</script></body></html>"


@pytest.fixture
def files_api(tmp_path: Path) -> Iterator[tuple[Served, LocalStore]]:
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp_media"),
            "LOCAL_STORE_DIR": str(tmp_path / "store"),
        }
    )
    app, store = local_api(settings, lambda spec: None)
    with serve(app) as served:
        yield served, store


def signed(served: Served, store: LocalStore, key: str) -> str:
    with request_base_url(served.base_url):
        return store.signed_url(key, 600)


def _job_key(key: str, job_id: str) -> str:
    from tests.test_keys import JOB

    return key.replace(JOB, job_id)


def check_headers(headers: Any, key: str, ctype: str, attachment: bool) -> None:
    assert headers["content-type"] == ctype, key
    assert headers["x-content-type-options"] == "nosniff"
    csp = [part.strip() for part in headers["content-security-policy"].split(";")]
    # A video keeps its origin (its player fetches it again), never its scripts.
    sandbox = "sandbox allow-same-origin" if ctype.startswith("video/") else "sandbox"
    assert csp[0] == sandbox and "default-src 'none'" in csp, csp
    assert not any(part.startswith("script-src") or "allow-scripts" in part for part in csp)
    name = key.rsplit("/", 1)[-1]
    want = f'attachment; filename="{name}"' if attachment else "inline"
    assert headers["content-disposition"] == want


# /files serves the folders of canonical job ids only.
ON_FILES = [s for s in SERVED if keys.job_id_of(s[0]) is not None]


@pytest.mark.parametrize("key, ctype, attachment", ON_FILES)
def test_each_kind_of_key_is_served_as_what_it_is(files_api, key, ctype, attachment):
    served, store = files_api
    key = _job_key(key, new_job_id())
    store.put_bytes(key, HOSTILE, content_type="text/html")
    for method in ("GET", "HEAD"):
        resp = httpx.request(method, signed(served, store, key))
        assert resp.status_code == 200, resp.text
        check_headers(resp.headers, key, ctype, attachment)
        assert resp.content == (HOSTILE if method == "GET" else b"")


def test_the_report_keeps_its_styles_and_nothing_else(files_api):
    served, store = files_api
    job_id = new_job_id()
    key = f"jobs/{job_id}/report.html"
    store.put_bytes(key, HOSTILE)
    resp = httpx.get(signed(served, store, key))
    csp = [part.strip() for part in resp.headers["content-security-policy"].split(";")]
    assert "style-src 'unsafe-inline'" in csp and "img-src 'self' data:" in csp
    assert not any(part.startswith(("script-src", "connect-src")) for part in csp)


def until(page: Any, expression: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def test_in_chromium_a_source_plays_and_a_hostile_file_runs_nothing(files_api, media):
    """A real browser opens the links: the video source plays under the sandbox CSP, the
    report shows its styles without its script, and a hostile HTML file kept at a
    source key (as a bucket user may upload it) is not rendered, its script never runs."""
    served, store = files_api
    job_id = new_job_id()
    video = f"jobs/{job_id}/input/source.webm"
    store.put_bytes(video, (media / "cuts_vp9.webm").read_bytes())
    hostile = f"jobs/{job_id}/input/source.html"
    store.put_bytes(hostile, HOSTILE, content_type="text/html")
    report = f"jobs/{job_id}/report.html"
    store.put_bytes(
        report,
        b"<!doctype html><html><head><style>body{background:rgb(1, 2, 3)}</style></head>"
        b"<body><p id=p>report</p><script>document.title='pwned'</script></body></html>",
    )
    with chromium() as browser:
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        page.goto(signed(served, store, video))
        # Polled from here: Playwright's own polling stalls in the browser's player page.
        until(
            page,
            "(() => { const v = document.querySelector('video'); "
            "return v && v.readyState >= 2 && v.videoWidth === 480; })()",
        )
        page.evaluate(
            "() => { const v = document.querySelector('video'); v.muted = true; v.play(); }"
        )
        until(page, "document.querySelector('video').currentTime > 0.3")

        page.goto(signed(served, store, report))
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == ("rgb(1, 2, 3)")
        assert page.title() != "pwned"

        # A download aborts the navigation (goto raises): the download is what counts.
        with page.expect_download() as download, contextlib.suppress(Exception):
            page.goto(signed(served, store, hostile))
        assert download.value.suggested_filename == "source.html"
        assert page.title() != "pwned" and dialogs == []
        context.close()
