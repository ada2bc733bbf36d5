"""The search page in Chromium (Debian's, driven by Playwright) on a real job in a local
store: the header's search box, scene cards with their keyframes, and a click that opens
the job page playing from the scene's start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.api_harness import Served, api_app, serve
from vidwatch.api.links import FileLinkSigner
from vidwatch.catalog import Catalog, CatalogKeeper

pytestmark = pytest.mark.models


@pytest.fixture
def site(analysed_job, tmp_path) -> Iterator[Served]:
    settings = analysed_job.settings
    signer = FileLinkSigner.from_settings(settings, secret=b"s" * 32)
    from vidwatch.r2.local import LocalStore

    store = LocalStore(settings.local_store_dir, url_signer=signer)
    catalog = Catalog.open(tmp_path / "catalog.sqlite3", store_id="browser")
    # Only this job: other tests add jobs (a duplicate) to the shared analysed store.
    assert CatalogKeeper(catalog, store).read_job(analysed_job.job_id)
    app = api_app(settings, store, signer=signer, catalog=catalog)
    try:
        with serve(app) as served:
            yield served
    finally:
        catalog.close()


def test_search_box_cards_and_a_click_that_plays_the_scene(browser, site, analysed_job) -> None:
    results = analysed_job.results
    scenes, fps = results["scenes"], results["video"]["fps"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{site.base_url}/jobs")
    page.fill("header form.search input[name=q]", "cuts_h")
    with page.expect_navigation():
        page.press("header form.search input[name=q]", "Enter")
    assert page.url.startswith(f"{site.base_url}/search?q=cuts_h")
    cards = page.locator("li.hit")
    assert cards.count() == len(scenes) == 6
    assert page.eval_on_selector_all("li.hit", "els => els.map(e => +e.dataset.scene)") == [
        s["index"] for s in scenes
    ]
    widths = page.evaluate(
        """async () => Promise.all(Array.from(document.images).map(async img => {
             try { await img.decode(); } catch (e) {} return img.naturalWidth; }))"""
    )
    assert len(widths) == 6 and all(w > 0 for w in widths), widths  # the keyframes load
    texts = cards.nth(3).inner_text()
    assert "cuts_h264.mp4" in texts and "Scene 4" in texts
    scene = scenes[3]
    with page.expect_navigation():
        cards.nth(3).locator("a.hit-link").click()
    assert page.url == f"{site.base_url}/jobs/{analysed_job.job_id}?t={scene['start_s']:g}"
    page.wait_for_function(
        "([t, tol]) => { const v = document.getElementById('player');"
        " return v.readyState >= 1 && !v.seeking && Math.abs(v.currentTime - t) <= tol"
        " && !v.paused; }",
        arg=[scene["start_s"], 1.0],
        timeout=15_000,
    )
    assert page.evaluate("document.getElementById('player').currentTime") >= scene["start_s"] - (
        0.5 / fps
    )
    assert errors == [], errors
