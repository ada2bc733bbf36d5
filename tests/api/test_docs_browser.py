"""``/docs`` in Chromium with every request to anything but 127.0.0.1 blocked: Swagger UI's
script, style and icon come from the package itself (fastapi-offline), under ``/docs/``, with
the same sign-in as the API's own routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.api_harness import LOOPBACK, Served, local_api, serve
from tests.api.browser import Watch
from vidwatch.config import load_settings

TOKEN = "docs-token-5b1f"
OPERATIONS = """() => Array.from(document.querySelectorAll('.opblock')).map(op =>
  [op.querySelector('.opblock-summary-method').innerText.trim(),
   op.querySelector('.opblock-summary-path').dataset.path])"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Served]:
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            "LOCAL_STORE_DIR": str(tmp_path / "store"),
            "API_TOKEN": TOKEN,
        }
    )
    app, _ = local_api(settings, lambda spec: None)
    with serve(app) as served:
        yield served


def test_docs_render_offline_in_chromium(browser, site):
    context = browser.new_context()
    asked: list[str] = []
    blocked: list[str] = []

    def only_loopback(route) -> None:
        url = route.request.url
        asked.append(url)
        if urlsplit(url).hostname == LOOPBACK:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    watch = Watch(page)
    # A browser without a session gets the sign-in form, then the docs.
    assert page.goto(f"{site.base_url}/docs").status == 401
    watch.errors.clear()  # the 401 itself
    page.fill("#token", TOKEN)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert urlsplit(page.url).path == "/docs"
    page.wait_for_selector(".opblock", timeout=15_000)
    operations = {tuple(op) for op in page.evaluate(OPERATIONS)}
    assert {
        ("POST", "/analyze-video"),
        ("GET", "/status/{job_id}"),
        ("GET", "/results/{job_id}"),
        ("GET", "/healthz"),
        ("GET", "/jobs"),
        ("GET", "/jobs/{job_id}"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("POST", "/logout"),
    } <= operations, operations
    assert page.locator(".info .title").inner_text().startswith("vidwatch")
    assert blocked == [], blocked
    assets = [u for u in asked if urlsplit(u).path.startswith("/docs/")]
    assert {urlsplit(u).path.rsplit("/", 1)[-1] for u in assets} >= {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    }
    assert watch.errors == [] and watch.dialogs == []
    context.close()
    # The files follow /docs' rule: the token (or the session), else 401.
    for url in assets:
        assert httpx.get(url).status_code == 401
        got = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert got.status_code == 200 and len(got.content) > 1000
