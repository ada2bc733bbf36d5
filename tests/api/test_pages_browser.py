"""The job page in a real browser: Debian's Chromium driven by Playwright (PyPI), on a real
job of the shared cut video served by the API with API_TOKEN set, and as the static
report.html opened from the store's folder. One browser for the module.

Writes a screenshot of the job page to pytest's tmp folder (and, when
VIDWATCH_SCREENSHOT_DIR is set, there too: how docs/job-page.md's picture is made)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.api_harness import Served, local_api, serve
from tests.api.browser import Watch
from tests.daemon.helpers import MODELS_OFF, local_settings
from vidwatch.config import Settings, load_settings
from vidwatch.jobs.manifest import ErrorInfo, JobSummary, Manifest, write_manifest
from vidwatch.jobs.staging import new_job_id
from vidwatch.pipeline.documents import FaceSummary
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

pytestmark = pytest.mark.models

TOKEN = "browser-token-41c7"
EVIL = "<script>alert(1)</script>.mp4"
ALL_IMAGES_LOADED = """async () => {
  const images = Array.from(document.images);
  for (const img of images) {
    img.scrollIntoView();
    try { await img.decode(); } catch (e) { /* counted below */ }
  }
  window.scrollTo(0, 0);
  return images.map(img => [img.currentSrc, img.naturalWidth]);
}"""


@pytest.fixture(scope="module")
def site(analysed_job) -> Iterator[Served]:
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(analysed_job.settings.temp_media_dir),
            "LOCAL_STORE_DIR": str(analysed_job.settings.local_store_dir),
            "API_TOKEN": TOKEN,
        }
    )
    app, _ = local_api(settings, lambda spec: None)
    with serve(app) as served:
        yield served


def _sign_in(context, site: Served, path: str):
    page = context.new_page()
    watch = Watch(page)
    refused = page.goto(site.base_url + path)
    assert refused.status == 401  # no cookie yet: the sign-in form, nothing of the job
    assert page.locator("[data-scene]").count() == 0
    assert watch.errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    watch.errors.clear()
    page.fill("#token", TOKEN)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == site.base_url + path
    return page, watch


def _check_images(page) -> list[list[Any]]:
    images = page.evaluate(ALL_IMAGES_LOADED)
    assert images and all(width > 0 for _, width in images), images
    return images


def _seek_by_click(page, scene: dict[str, Any], fps: float) -> float:
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    page.click(f'[data-scene="{scene["index"]}"]')
    page.wait_for_function(
        "([t, tol]) => { const v = document.getElementById('player');"
        " return !v.seeking && Math.abs(v.currentTime - t) <= tol; }",
        arg=[scene["start_s"], 0.5 / fps],
        timeout=10_000,
    )
    return page.evaluate("document.getElementById('player').currentTime")


def test_the_job_page_in_chromium(browser, site, analysed_job, tmp_path):
    results = analysed_job.results
    scenes, fps = results["scenes"], results["video"]["fps"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page, watch = _sign_in(context, site, f"/jobs/{analysed_job.job_id}")

    assert page.locator("[data-scene]").count() == len(scenes) == 6
    shown = page.eval_on_selector_all("[data-scene]", "els => els.map(e => +e.dataset.scene)")
    assert shown == [s["index"] for s in scenes]
    images = _check_images(page)
    people = results.get("people", [])
    assert len(images) == len(scenes) + len(results["frames"]) + len(people)
    # The people (the astronaut and the cameraman), one element each, with their scenes.
    shown_people = page.eval_on_selector_all(
        "[data-person]", "els => els.map(e => +e.dataset.person)"
    )
    assert shown_people == [p["person"] for p in people]
    casts = page.eval_on_selector_all(
        "[data-scene]", "els => els.map(e => e.querySelectorAll('.chip.person').length)"
    )
    assert casts == [len(s.get("people", [])) for s in scenes]
    # A click on a scene moves the video to the scene's start (the /files route answers
    # Range requests with 206, so Chromium can seek).
    for scene in (scenes[3], scenes[1]):
        assert _seek_by_click(page, scene, fps) == pytest.approx(scene["start_s"], abs=0.5 / fps)
    assert page.get_attribute('[data-scene="1"]', "class") == "scene active"
    # The chapters track holds one cue per scene, at the scenes' times.
    cues = page.evaluate(
        """async () => { const t = document.getElementById('player').textTracks[0];
        t.mode = 'hidden';
        for (let i = 0; i < 100 && !(t.cues && t.cues.length); i++)
          await new Promise(r => setTimeout(r, 50));
        return Array.from(t.cues || []).map(c => [c.startTime, c.endTime, c.text]); }"""
    )
    assert [round(c[0], 3) for c in cues] == [round(s["start_s"], 3) for s in scenes]
    assert cues[0][2].startswith("Scene 1")
    # The frames' switch shows the drawn images.
    page.check('input[name="kind"][value="det"]')
    srcs = page.eval_on_selector_all("#frames img", "els => els.map(e => e.src)")
    assert srcs and all("/frames/det/frame_" in s for s in srcs)
    _check_images(page)
    page.check('input[name="kind"][value="original"]')
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.evaluate("() => window.scrollTo(0, 0)")
    shot = tmp_path / "job-page.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    if os.environ.get("VIDWATCH_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["VIDWATCH_SCREENSHOT_DIR"]) / "job-page.png")

    # A phone's width: nothing wider than the screen, scenes still reachable and working.
    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        storage_state=context.storage_state(),
        is_mobile=True,
        has_touch=True,
    )
    small = phone.new_page()
    small_watch = Watch(small)
    assert small.goto(f"{site.base_url}/jobs/{analysed_job.job_id}").status == 200
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    box = small.locator('[data-scene="0"]').bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    small.locator('[data-scene="2"]').scroll_into_view_if_needed()
    assert _seek_by_click(small, scenes[2], fps) == pytest.approx(
        scenes[2]["start_s"], abs=0.5 / fps
    )
    small.screenshot(path=str(tmp_path / "job-page-390.png"))
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    assert watch.errors == [] and small_watch.errors == []
    assert watch.dialogs == [] == small_watch.dialogs
    phone.close()
    context.close()


def _copy_job(store, source_id: str, target_id: str) -> dict[str, Any]:
    """Job ``source_id``'s artifacts under ``target_id`` (the results as they would be)."""
    old, new = keys.job_prefix(source_id), keys.job_prefix(target_id)
    for info in store.list(old):
        if info.key.endswith(("status.json", "results.json", "report.html")):
            continue
        store.put_bytes(
            new + info.key[len(old) :], store.get_bytes(info.key), content_type=info.content_type
        )
    return json.loads(store.get_bytes(keys.results_key(source_id)).decode().replace(old, new))


def test_a_running_jobs_page_turns_into_its_results(browser, site, analysed_job):
    store = analysed_job.store
    job_id = new_job_id()
    manifest = Manifest(job_id=job_id, origin="inbox", filename=EVIL, state="running")
    manifest.stage, manifest.frames_done, manifest.frames_total = "analyzing", 70, 280
    manifest.source_key = keys.source_key(job_id, "mp4")
    write_manifest(store, manifest)
    context = browser.new_context()
    page, watch = _sign_in(context, site, f"/jobs/{job_id}")
    assert page.inner_text("h1") == EVIL  # the name as text, no script run
    assert page.locator("#live").is_visible() and page.locator("[data-scene]").count() == 0
    manifest.frames_done = 210
    write_manifest(store, manifest)
    page.wait_for_function("() => document.getElementById('progress').value == 75", timeout=10_000)
    results = _copy_job(store, analysed_job.job_id, job_id)
    store.put_bytes(keys.results_key(job_id), json.dumps(results).encode())
    manifest.state, manifest.stage, manifest.frames_done = "completed", "done", 280
    write_manifest(store, manifest)
    page.wait_for_selector("[data-scene]", timeout=15_000)  # reloaded into the results
    assert page.locator("[data-scene]").count() == len(results["scenes"])
    assert page.locator("#live").count() == 0
    _check_images(page)
    # The list shows the hostile name as text too.
    page.goto(f"{site.base_url}/jobs")
    assert page.inner_text(f'[data-job="{job_id}"] td.name a') == EVIL
    assert watch.errors == [] and watch.dialogs == []
    context.close()


def test_the_static_report_opens_from_the_folder(browser, analysed_job):
    report = analysed_job.folder / "report.html"
    context = browser.new_context()
    page = context.new_page()
    watch = Watch(page)
    page.goto(report.as_uri())
    results = analysed_job.results
    assert page.locator("[data-scene]").count() == len(results["scenes"])
    images = _check_images(page)
    assert all(src.startswith(analysed_job.folder.as_uri()) for src, _ in images)
    scene = results["scenes"][4]
    assert _seek_by_click(page, scene, results["video"]["fps"]) == pytest.approx(
        scene["start_s"], abs=0.5 / results["video"]["fps"]
    )
    exports = page.eval_on_selector_all(".exports a", "els => els.map(e => e.href)")
    assert len(exports) == len(keys.EXPORT_FILES)
    assert all(Path(e.removeprefix("file://")).is_file() for e in exports)
    assert watch.errors == [] and watch.dialogs == []
    context.close()


@dataclass
class DedupedJobs:
    """Two jobs of the same bytes (the second a duplicate of the first) and a failed one, run
    with the models off, in one LocalStore."""

    settings: Settings
    store: LocalStore
    first: Manifest
    second: Manifest
    failed: Manifest


@pytest.fixture(scope="module")
def deduped(media, tmp_path_factory) -> DedupedJobs:
    from vidwatch.detectors.registry import load_models
    from vidwatch.jobs.run import run_job
    from vidwatch.jobs.staging import JobSpec, stage_copy

    root = tmp_path_factory.mktemp("deduped")
    settings = local_settings(root, MODELS_OFF, SAMPLE_FPS="0.5")
    store = LocalStore(settings.local_store_dir)
    models = load_models(settings)

    def run(source: Path) -> Manifest:
        job_id = new_job_id()
        spec = JobSpec(
            job_id=job_id,
            staged_source=stage_copy(settings, job_id, source),
            origin="cli",
            filename=source.name,
        )
        return run_job(spec, store=store, settings=settings, models=models, toon=None, dedupe=True)

    first = run(media / "cuts_h264.mp4")
    second = run(media / "cuts_h264.mp4")
    failed = run(media / "bad" / "not_a_video.mp4")
    assert first.state == second.state == "completed" and second.duplicate_of == first.job_id
    assert failed.state == "failed" and failed.error.code == "not_a_video"
    return DedupedJobs(settings, store, first, second, failed)


def test_duplicate_and_failed_jobs_have_their_static_report_too(browser, deduped):
    """A duplicate's report.html shows the results of the job that analysed its bytes, its
    images and video from that job's folder beside it, and links to that job's report; a
    failed job's report.html says what failed. Both open from the folder, no console error."""
    store, first, second, failed = deduped.store, deduped.first, deduped.second, deduped.failed
    results = json.loads(store.get_bytes(keys.results_key(first.job_id)))
    first_folder = store.root / keys.job_prefix(first.job_id)

    context = browser.new_context()
    page = context.new_page()
    watch = Watch(page)
    page.goto((store.root / keys.report_key(second.job_id)).as_uri())
    assert page.locator("[data-scene]").count() == len(results["scenes"])
    images = _check_images(page)
    assert all(src.startswith(first_folder.as_uri()) for src, _ in images)
    original = page.eval_on_selector("#duplicate a", "a => a.href")
    assert original == (store.root / keys.report_key(first.job_id)).as_uri()
    _check_plays(page, results["video"]["duration_s"])

    page.goto((store.root / keys.report_key(failed.job_id)).as_uri())
    alert = page.locator("[role=alert]")
    assert "not_a_video" in alert.inner_text() and failed.error.message in alert.inner_text()
    assert page.locator("[data-scene]").count() == 0
    assert watch.errors == [] and watch.dialogs == []
    context.close()


def _check_plays(page, duration_s: float) -> None:
    """The page's video has its source, loads it (duration known) and plays."""
    assert page.locator("#player source").count() == 1
    page.wait_for_function(
        "() => document.getElementById('player').readyState >= 2", timeout=10_000
    )
    got = page.evaluate("document.getElementById('player').duration")
    assert got == pytest.approx(duration_s, abs=0.2)
    page.evaluate("document.getElementById('player').muted = true")
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function(
        "() => document.getElementById('player').currentTime > 0.2", timeout=10_000
    )


def test_a_duplicates_page_plays_its_own_video(browser, deduped, tmp_path):
    """The API's page of a duplicate: the earlier job's results, and its own source video
    (its upload, in the store under its own id), which Chromium loads and plays."""
    app, _ = local_api(deduped.settings, lambda spec: None)
    results = json.loads(deduped.store.get_bytes(keys.results_key(deduped.first.job_id)))
    with serve(app) as served:
        context = browser.new_context()
        page = context.new_page()
        watch = Watch(page)
        assert page.goto(f"{served.base_url}/jobs/{deduped.second.job_id}").status == 200
        assert page.locator("[data-scene]").count() == len(results["scenes"])
        src = page.eval_on_selector("#player source", "s => s.src")
        assert f"/files/jobs/{deduped.second.job_id}/input/source.mp4" in src
        _check_plays(page, results["video"]["duration_s"])
        _check_captions_and_exports(page)
        page.screenshot(path=str(tmp_path / "duplicate-page.png"), full_page=True)
        assert watch.errors == [] and watch.dialogs == []
        context.close()


LAYOUT = """() => {
  const box = e => e.getBoundingClientRect();
  const frames = Array.from(document.querySelectorAll('#frames .frame')).map(f => {
    const t = box(f.querySelector('.times')), c = box(f.querySelector('.counts'));
    return {timesBottom: t.bottom, countsTop: c.top};
  });
  const items = Array.from(document.querySelectorAll('.exports li'));
  return {
    frames,
    bullets: items.map(li => getComputedStyle(li).listStyleType),
    exports: items.map(li => {
      const b = box(li), a = box(li.querySelector('a'));
      return {left: b.left, right: b.right, top: b.top, bottom: b.bottom,
              linkLeft: a.left, linkRight: a.right};
    }),
  };
}"""


def _check_captions_and_exports(page) -> None:
    """A frame's caption: its times and its counts on lines of their own (they ran into one
    another: "scene 1 0 objects"); the exports: no bullets running into the links, no two
    items overlapping, each link inside its own item."""
    layout = page.evaluate(LAYOUT)
    assert layout["frames"] and all(
        f["countsTop"] >= f["timesBottom"] - 0.5 for f in layout["frames"]
    )
    assert len(layout["exports"]) == len(keys.EXPORT_FILES)
    assert set(layout["bullets"]) == {"none"}
    boxes = layout["exports"]
    for e in boxes:
        assert e["left"] <= e["linkLeft"] and e["linkRight"] <= e["right"]
    for a, b in itertools.pairwise(boxes):
        same_line = a["top"] < b["bottom"] and b["top"] < a["bottom"]
        assert not same_line or a["right"] <= b["left"], (a, b)


PHONE_NAMES = [
    "holiday-at-the-lake-2026-07-14-family-and-friends.mp4",
    "VID_20261121_183304_HDR_stabilised.mov",
    "a.mp4",
    "Interview with the head of the rocket programme (final cut, 2nd edit).mkv",
]
PHONE_ROWS = """() => Array.from(document.querySelectorAll('[data-job]')).map(row => {
  const lines = el => el.getClientRects().length;
  const box = el => { const b = el.getBoundingClientRect();
    return {left: b.left, right: b.right, width: b.width}; };
  const name = row.querySelector('.name a'), id = row.querySelector('.name small');
  const time = row.querySelector('time'), dur = row.querySelector('.duration');
  return {
    job: row.dataset.job, name: name.innerText, nameLines: lines(name), nameBox: box(name),
    idLines: lines(id), idBox: box(id), time: time.innerText, timeLines: lines(time),
    timeBox: box(time), duration: dur.innerText, durationBox: box(dur),
    durationClipped: dur.scrollWidth > dur.clientWidth,
  };
})"""


def test_the_jobs_list_at_a_phones_width(browser, tmp_path):
    """At 390 px the list reflows into one card per job: whole file names on a line or two
    (not a few characters a line), ids and times on one line, the duration column not cut,
    nothing wider than the screen."""
    settings = load_settings(
        {"TEMP_MEDIA_DIR": str(tmp_path / "tmp"), "LOCAL_STORE_DIR": str(tmp_path / "store")}
    )
    app, store = local_api(settings, lambda spec: None)
    written = []
    for i, name in enumerate(PHONE_NAMES):
        state = ("completed", "failed", "running", "completed")[i]
        manifest = Manifest(job_id=new_job_id(), origin="api", filename=name, state=state)
        if state == "completed":
            manifest.summary = JobSummary(
                scenes=3,
                frames_analyzed=12,
                labels=["person"],
                faces=FaceSummary(frames=3, max_in_frame=1),
                duration_s=11.2 + 3600 * i,
            )
        if state == "failed":
            manifest.error = ErrorInfo(code="not_a_video", message="not a video")
        if state == "running":
            manifest.frames_done, manifest.frames_total = 5, 20
        write_manifest(store, manifest)
        written.append(manifest)
    with serve(app) as served:
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        watch = Watch(page)
        assert page.goto(f"{served.base_url}/jobs").status == 200
        page.screenshot(path=str(tmp_path / "jobs-390.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        rows = page.evaluate(PHONE_ROWS)
        assert [r["name"] for r in rows] == PHONE_NAMES[::-1]
        for row in rows:
            for part in ("nameBox", "idBox", "timeBox", "durationBox"):
                assert row[part]["left"] >= 0 and row[part]["right"] <= 390, (part, row)
            assert row["nameLines"] <= (1 if len(row["name"]) < 30 else 3), row
            assert row["idLines"] == 1 and row["timeLines"] == 1, row
            assert not row["durationClipped"], row
        durations = {r["job"]: r["duration"] for r in rows}
        assert durations[written[0].job_id].endswith("0:11")
        assert durations[written[3].job_id].endswith("3:00:11")
        assert watch.errors == [] and watch.dialogs == []
        context.close()
