"""The people pages in Chromium (Playwright, as the job page's test): two analysed videos
that share a stranger, served with API_TOKEN set; list, person, rename, enrol, merge,
forget through the pages' forms, names on the job page, and an appearance's click opening
the job page playing at that time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.api_harness import Served, api_app, serve
from tests.api.browser import Watch
from tests.api.test_pages_browser import ALL_IMAGES_LOADED
from tests.daemon.helpers import local_settings
from tests.library.photo_video import FACES_ONLY, PHOTOS, analyse_casts
from vidwatch.api.links import FileLinkSigner
from vidwatch.library.photos import ModelPhotoFaces
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

pytestmark = pytest.mark.models

TOKEN = "people-browser-token-3f"
FPS = 2
BLANK_FRAMES = 5  # the people appear at 2.5 s


@pytest.fixture(scope="module")
def site(face_models, tmp_path_factory) -> Iterator[tuple[Served, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("people_site")
    settings = local_settings(root, FACES_ONLY, SAMPLE_FPS="2", API_TOKEN=TOKEN)
    signer = FileLinkSigner.from_settings(settings)
    store = LocalStore(settings.local_store_dir, url_signer=signer)
    jobs = analyse_casts(
        root, settings, face_models, store, frames=4, fps=FPS, blank_frames=BLANK_FRAMES
    )
    app = api_app(settings, store, signer=signer, photo_faces=ModelPhotoFaces(face_models))
    with serve(app) as served:
        yield served, {"store": store, "jobs": jobs}


def _results(info: dict[str, Any], job: str) -> dict[str, Any]:
    return json.loads(info["store"].get_bytes(keys.results_key(info["jobs"][job])))


def _left_to_right(results: dict[str, Any]) -> list[str]:
    """The job's library ids, ordered by where their faces are (left first)."""
    x = {}
    for frame in results["frames"]:
        for face in frame["faces"]:
            x[face["person"]] = face["box_xyxy"][0]
    people = sorted(results["people"], key=lambda p: x[p["person"]])
    return [p["library_id"] for p in people]


def _images_loaded(page) -> None:
    images = page.evaluate(ALL_IMAGES_LOADED)
    assert images and all(width > 0 for _, width in images), images


def test_the_people_pages_in_chromium(browser, site, tmp_path):
    served, info = site
    obama, astronaut = _left_to_right(_results(info, "a"))
    biden, astronaut_b = _left_to_right(_results(info, "b"))
    assert astronaut == astronaut_b
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    watch = Watch(page)
    assert page.goto(f"{served.base_url}/people").status == 401  # the sign-in form
    watch.errors.clear()
    page.fill("#token", TOKEN)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == f"{served.base_url}/people"

    # The list: three people with thumbnails, all unnamed.
    shown = page.eval_on_selector_all(
        "[data-library-id]", "els => els.map(e => e.dataset.libraryId)"
    )
    assert sorted(shown) == sorted([obama, astronaut, biden])
    _images_loaded(page)
    assert page.locator(".person .title").all_inner_texts() == ["Unnamed"] * 3

    # The stranger's page: both videos; name her through the form.
    page.click(f'[data-library-id="{astronaut}"] a')
    page.wait_for_url(f"**/people/{astronaut}")
    assert page.locator(".appearance").count() == 2
    _images_loaded(page)
    page.fill("#rename input[name=name]", "Eileen Collins")
    with page.expect_navigation():
        page.click("#rename button")
    assert page.url.endswith(f"/people/{astronaut}"), (page.url, page.content()[:2000])
    assert page.inner_text("#person-name") == "Eileen Collins"

    # An appearance opens its job page playing where she first appears; the page names her.
    job_a = info["jobs"]["a"]
    href = page.get_attribute(f'[data-appearance="{job_a}"]', "href")
    first_s = float(href.split("?t=")[1])
    assert first_s == pytest.approx(BLANK_FRAMES / FPS, abs=0.01)
    with page.expect_navigation():
        page.click(f'[data-appearance="{job_a}"]')
    page.wait_for_function(
        "t => { const v = document.getElementById('player');"
        " return v && v.readyState >= 1 && !v.seeking && Math.abs(v.currentTime - t) < 0.6; }",
        arg=first_s,
        timeout=10_000,
    )
    names = page.eval_on_selector_all(
        ".person .name a",
        "els => els.map(a => [a.dataset.libraryId, a.textContent, a.getAttribute('href')])",
    )
    chips = page.locator(".chip.person").all_inner_texts()
    assert "Eileen Collins" in chips and not any(c.startswith("Barack") for c in chips)
    assert "Eileen Collins" in page.locator(".timeline").inner_text()
    assert sorted(names) == sorted(
        [
            [obama, "Unnamed", f"/people/{obama}"],
            [astronaut, "Eileen Collins", f"/people/{astronaut}"],
        ]
    )

    # Enrol Obama from another photo than the video's: names the unnamed person of video A.
    page.goto(f"{served.base_url}/people")
    page.fill("#enrol input[name=name]", "Barack Obama")
    page.set_input_files("#enrol input[name=photo]", str(PHOTOS / "obama2.jpg"))
    with page.expect_navigation():
        page.click("#enrol button")
    assert page.url.endswith(f"/people/{obama}")
    assert page.inner_text("#person-name") == "Barack Obama"

    # Merge Biden into Obama (a wrong merge, but the page does as told), then forget Obama.
    page.fill("#merge input[name=from]", biden)
    with page.expect_navigation():
        page.click("#merge button")
    assert page.locator(".appearance").count() == 2
    page.check("#forget input[name=confirm]")
    with page.expect_navigation():
        page.click("#forget button")
    assert page.url == f"{served.base_url}/people"
    shown = page.eval_on_selector_all(
        "[data-library-id]", "els => els.map(e => e.dataset.libraryId)"
    )
    assert shown == [astronaut]
    assert page.goto(f"{served.base_url}/people/{biden}").status == 404
    page.screenshot(path=str(tmp_path / "people.png"), full_page=True)
    watch.errors = [e for e in watch.errors if "404" not in e]
    assert watch.errors == [] and watch.dialogs == []
    # Forgotten in the store too: both videos lost those links and face crops.
    for job in ("a", "b"):
        people = _results(info, job)["people"]
        linked = [p["library_id"] for p in people if p["library_id"]]
        assert linked == [astronaut]
        assert sum(p["thumbnail"] is None for p in people) == 1
    context.close()
