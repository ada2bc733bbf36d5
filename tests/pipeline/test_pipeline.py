"""The pipeline on real videos with their exact ground truth."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vidwatch.jobs.run import run_job
from vidwatch.jobs.staging import JobSpec, new_job_id, stage_copy
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

pytestmark = pytest.mark.models


def _run(media_file: Path, settings, models, store=None, toon=None, **spec_kw):
    store = store or LocalStore(settings.local_store_dir)
    job_id = new_job_id()
    staged = stage_copy(settings, job_id, media_file)
    spec = JobSpec(
        job_id=job_id, staged_source=staged, origin="cli", filename=media_file.name, **spec_kw
    )
    manifest = run_job(spec, store=store, settings=settings, models=models, toon=toon)
    return store, job_id, manifest


@pytest.fixture(scope="module")
def h264_job(media, models, tmp_path_factory):
    from vidwatch.config import load_settings

    root = tmp_path_factory.mktemp("h264")
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(root / "tmp"),
            "LOCAL_STORE_DIR": str(root / "store"),
            "TOON_ENABLED": "false",
            "DETECT_MODEL": models.settings.detect_model,
            "SEGMENT_MODEL": models.settings.segment_model,
        }
    )
    before = hashlib.sha256((media / "cuts_h264.mp4").read_bytes()).hexdigest()
    store, job_id, manifest = _run(media / "cuts_h264.mp4", settings, models)
    after = hashlib.sha256((media / "cuts_h264.mp4").read_bytes()).hexdigest()
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    return {
        "store": store,
        "job_id": job_id,
        "manifest": manifest,
        "results": results,
        "settings": settings,
        "sha_before": before,
        "sha_after": after,
    }


def _truth(media: Path, name: str) -> dict:
    return json.loads((media / name).with_suffix(".truth.json").read_text())


def _check_against_truth(results: dict, truth: dict) -> None:
    got = [(s["start_frame"], s["end_frame"]) for s in results["scenes"]]
    assert got == [(s["start_frame"], s["end_frame"]) for s in truth["scenes"]]
    assert results["video"]["frames"] == truth["frames"]
    for frame in results["frames"]:
        scene = truth["scenes"][frame["scene"]]
        assert scene["start_frame"] <= frame["frame"] < scene["end_frame"]
        if scene["faces"] is not None:
            assert len(frame["faces"]) == scene["faces"], (frame["frame"], scene["photo"])


def test_h264_scenes_and_faces_match_truth(h264_job, media):
    assert h264_job["manifest"].state == "completed", h264_job["manifest"].error
    _check_against_truth(h264_job["results"], _truth(media, "cuts_h264.mp4"))


def test_vp9_scenes_and_faces_match_truth(media, models, make_settings):
    settings = make_settings()
    store, job_id, manifest = _run(media / "cuts_vp9.webm", settings, models)
    assert manifest.state == "completed", manifest.error
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    _check_against_truth(results, _truth(media, "cuts_vp9.webm"))
    assert results["video"]["codec"] == "vp9"


def test_sampling_every_second_plus_every_scene_start(h264_job):
    results = h264_job["results"]
    sampled = [f["frame"] for f in results["frames"]]
    # 25 fps, SAMPLE_FPS 1: one frame a second (0, 25, ..., 275) plus each scene's first.
    ticks = set(range(0, 280, 25))
    starts = {s["start_frame"] for s in results["scenes"]}
    assert sampled == sorted(ticks | starts)
    assert all(f["time_s"] == pytest.approx(f["frame"] / 25, abs=1e-3) for f in results["frames"])


def test_every_key_of_the_layout_exists_and_json_agrees(h264_job):
    store, job_id, results = h264_job["store"], h264_job["job_id"], h264_job["results"]
    present = {info.key for info in store.list(keys.job_prefix(job_id))}
    assert keys.status_key(job_id) in present
    assert keys.results_key(job_id) in present
    assert keys.source_key(job_id, "mp4") in present
    for frame in results["frames"]:
        n = frame["frame"]
        for kind in keys.IMAGE_KINDS:
            key = keys.frame_image_key(job_id, kind, n)
            assert key in present and frame["images"][kind] == key
            assert store.get_bytes(key)[:3] == b"\xff\xd8\xff"  # a JPEG
        doc = json.loads(store.get_bytes(keys.frame_json_key(job_id, n)))
        assert doc["job_id"] == job_id
        assert {k: v for k, v in doc.items() if k not in ("schema_version", "job_id")} == frame
    for person in results["people"]:
        assert person["thumbnail"] == keys.person_thumbnail_key(job_id, person["person"])
        assert store.get_bytes(person["thumbnail"])[:3] == b"\xff\xd8\xff"
    # Nothing beyond the layout: images, documents, source, manifest, results, thumbnails,
    # exports, the static page.
    assert set(results["exports"]) == set(keys.EXPORT_FILES)
    assert {keys.report_key(job_id), *results["exports"].values()} <= present
    expected = 3 + len(results["frames"]) * 5 + len(results["people"])
    expected += len(keys.EXPORT_FILES) + 1
    assert len(present) == expected


def test_the_astronaut_and_the_cameraman_are_two_people(h264_job, media):
    """cuts_h264: the astronaut's scene comes first, the cameraman's last; no other face."""
    results = h264_job["results"]
    photos = [s["photo"] for s in _truth(media, "cuts_h264.mp4")["scenes"]]
    cast = {photos[s["index"]]: s["people"] for s in results["scenes"]}
    assert cast == {
        "astronaut": [0],
        "chelsea": [],
        "coffee": [],
        "motorcycle": [],
        "rocket": [],
        "camera": [1],
    }
    assert results["summary"]["people"] == 2
    assert [p["scenes"] for p in results["people"]] == [[0], [5]]
    for person in results["people"]:
        assert person["faces"] == len(person["frames"])
        scene = results["scenes"][person["scenes"][0]]
        in_scene = [f["frame"] for f in results["frames"] if f["scene"] == scene["index"]]
        assert person["frames"] == in_scene


def test_manifest_fields(h264_job):
    doc = json.loads(h264_job["store"].get_bytes(keys.status_key(h264_job["job_id"])))
    assert doc["state"] == "completed" and doc["stage"] == "done"
    assert doc["progress"] == {"frames_done": 280, "frames_total": 280, "percent": 100.0}
    assert doc["source"]["bytes"] == 802877 and doc["source"]["filename"] == "cuts_h264.mp4"
    assert doc["source"]["sha256"] == h264_job["sha_before"]
    assert doc["results_key"] == keys.results_key(h264_job["job_id"])
    assert doc["error"] is None and doc["finished_at"] and doc["started_at"]


def test_users_file_untouched_and_staged_copy_removed_by_default(h264_job):
    assert h264_job["sha_before"] == h264_job["sha_after"]
    staging = Path(h264_job["settings"].temp_media_dir) / h264_job["job_id"]
    assert not staging.exists()


def test_cleanup_off_keeps_the_staged_source(media, models, make_settings):
    settings = make_settings(cleanup_local_video_after_upload_default="false")
    _, job_id, manifest = _run(media / "single_shot.mp4", settings, models)
    assert manifest.state == "completed"
    staged = Path(settings.temp_media_dir) / job_id / "input" / "source.mp4"
    assert staged.is_file() and manifest.local_source_deleted is False


def test_request_override_wins_over_default(media, models, make_settings):
    settings = make_settings(cleanup_local_video_after_upload_default="true")
    _, job_id, manifest = _run(media / "single_shot.mp4", settings, models, cleanup_override=False)
    assert (Path(settings.temp_media_dir) / job_id / "input" / "source.mp4").is_file()
    assert manifest.cleanup_local_source is False


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("zero_bytes.mp4", "empty_file", "empty"),
        ("not_a_video.mp4", "not_a_video", "not a video"),
        ("truncated_half.mp4", "truncated_video", "cut off"),
        ("image_as_video.mp4", "image_not_video", "image"),
    ],
)
def test_bad_inputs_fail_with_a_code_and_keep_the_source(
    media, models, make_settings, name, code, words
):
    settings = make_settings()
    store, job_id, manifest = _run(media / "bad" / name, settings, models)
    assert manifest.state == "failed"
    assert manifest.error.code == code
    assert words in manifest.error.message
    doc = json.loads(store.get_bytes(keys.status_key(job_id)))
    assert doc["state"] == "failed" and doc["error"]["code"] == code
    # The source stays where the user can find it: in the store, beside the manifest.
    assert store.get_bytes(keys.source_key(job_id, "mp4")) == (media / "bad" / name).read_bytes()
    assert not any(i.key.endswith(".jpg") for i in store.list(keys.job_prefix(job_id)))


def test_higher_sample_rate_samples_more(media, models, make_settings):
    settings = make_settings(sample_fps=4)
    store, job_id, _manifest = _run(media / "single_shot.mp4", settings, models)
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    # 24 fps, 48 frames, 4 samples a second: frames 0, 6, 12, ... 42.
    assert [f["frame"] for f in results["frames"]] == list(range(0, 48, 6))
    assert results["provenance"]["settings"]["sample_fps"] == 4.0
