"""Face identities on videos made here with exact truth: every face gets the right person,
none split, none merged; each person's scenes and frames exact; thumbnails are JPEGs in the
store; FACE_IDENTITIES=false gives the same output with ``person: null``; the bad cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.pipeline.face_video import Placement, Scene, make_video, match
from tests.pipeline.test_pipeline import _run
from vidwatch.pipeline.identities import MIN_VISIBLE_FRACTION, visible_fraction
from vidwatch.pipeline.toon import open_toon
from vidwatch.r2 import keys
from vidwatch.toon_bridge import json_difference

pytestmark = pytest.mark.models

A, C = "astronaut", "camera"
# People are numbered in order of first appearance: the astronaut opens the video.
EXPECTED_ID = {A: 0, C: 1}

CAST = [
    Scene(15, (90, 90, 90), [Placement(A, 90, 200, 170)]),
    Scene(15, (40, 120, 40), [Placement(C, 80, 400, 160)]),
    # Smaller and mirrored.
    Scene(15, (140, 60, 60), [Placement(A, 45, 450, 200, mirror=True)]),
    # Side by side.
    Scene(15, (60, 60, 150), [Placement(C, 70, 180, 170), Placement(A, 70, 460, 170)]),
    # Nobody.
    Scene(15, (200, 200, 200), []),
    # Larger and moving, beside the other one mirrored and smaller.
    Scene(
        15,
        (30, 160, 160),
        [Placement(A, 130, 420, 160, dx=2), Placement(C, 60, 130, 200, mirror=True)],
    ),
    # Bad cases beside a good face: a face below FACE_IDENTITY_MIN_PX, one cut by the edge.
    Scene(
        15,
        (120, 120, 30),
        [Placement(A, 22, 60, 60), Placement(A, 90, 620, 180), Placement(C, 80, 300, 200)],
    ),
]
# The scenes where each person is seen (the tiny and the cut astronaut get no person).
EXPECTED_SCENES = {0: [0, 2, 3, 5], 1: [1, 3, 5, 6]}


@pytest.fixture(scope="module")
def cast_video(tmp_path_factory) -> tuple[Path, list[dict]]:
    path = tmp_path_factory.mktemp("faces") / "cast.mp4"
    return path, make_video(path, CAST)


@pytest.fixture(scope="module")
def cast_job(cast_video, models, tmp_path_factory):
    """The cast video with identities on (the default) and TOON twins."""
    from vidwatch.config import load_settings

    root = tmp_path_factory.mktemp("cast_job")
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(root / "tmp"),
            "LOCAL_STORE_DIR": str(root / "store"),
            "TOON_ENABLED": "true",
            "DETECT_MODEL": models.settings.detect_model,
            "SEGMENT_MODEL": models.settings.segment_model,
        }
    )
    toon = open_toon(settings)
    try:
        store, job_id, manifest = _run(cast_video[0], settings, models, toon=toon)
        assert manifest.state == "completed", manifest.error
        results = json.loads(store.get_bytes(keys.results_key(job_id)))
        toons = {
            f["frame"]: toon.decode(store.get_bytes(f["toon"]).decode()) for f in results["frames"]
        }
    finally:
        toon.close()
    return {"store": store, "job_id": job_id, "results": results, "toons": toons}


def _expected_person(face: dict, truth_faces: list[dict], width: int, height: int) -> int | None:
    """The person a found face must have: by the truth face it lies on, None for a face
    too small or cut by the edge."""
    who = match(face["box_xyxy"], truth_faces)
    assert who is not None, (face, truth_faces)
    x1, y1, x2, y2 = face["box_xyxy"]
    if min(x2 - x1, y2 - y1) < 32:
        return None
    if visible_fraction(face["box_xyxy"], width, height) < MIN_VISIBLE_FRACTION:
        return None
    return EXPECTED_ID[who["who"]]


def test_every_face_gets_the_right_person(cast_job, cast_video):
    results, truth = cast_job["results"], cast_video[1]
    assert [s["start_frame"] for s in results["scenes"]] == [15 * i for i in range(len(CAST))]
    checked = {None: 0, 0: 0, 1: 0}
    for frame in results["frames"]:
        want = truth[frame["frame"]]["faces"]
        assert frame["scene"] == truth[frame["frame"]]["scene"]
        # Every truth face is found (the cut astronaut too) and nothing else.
        assert len(frame["faces"]) == len(want), (frame["frame"], frame["faces"])
        for face in frame["faces"]:
            expected = _expected_person(face, want, 640, 360)
            assert face["person"] == expected, (frame["frame"], face, want)
            checked[expected] += 1
    # The bad cases were really seen: the tiny face and the cut one, on each sample of S6.
    samples_s6 = sum(1 for f in results["frames"] if f["scene"] == 6)
    assert checked[None] == 2 * samples_s6 > 0
    assert checked[0] >= 8 and checked[1] >= 8


def test_people_scenes_frames_and_casts_are_exact(cast_job):
    results = cast_job["results"]
    frames = results["frames"]
    assert results["summary"]["people"] == len(results["people"]) == 2
    for person in results["people"]:
        k = person["person"]
        seen = [f for f in frames if any(face["person"] == k for face in f["faces"])]
        assert person["scenes"] == EXPECTED_SCENES[k]
        assert person["frames"] == [f["frame"] for f in seen]
        assert person["faces"] == sum(
            1 for f in frames for face in f["faces"] if face["person"] == k
        )
        assert person["first_s"] == seen[0]["time_s"] and person["last_s"] == seen[-1]["time_s"]
    for scene in results["scenes"]:
        want = sorted(k for k, scenes in EXPECTED_SCENES.items() if scene["index"] in scenes)
        assert scene["people"] == want


def test_thumbnails_are_jpegs_of_each_persons_face(cast_job):
    import cv2

    store, job_id, results = cast_job["store"], cast_job["job_id"], cast_job["results"]
    present = {i.key for i in store.list(keys.job_prefix(job_id))}
    thumbs = sorted(k for k in present if "/people/" in k)
    assert thumbs == [keys.person_thumbnail_key(job_id, k) for k in (0, 1)]
    assert [p["thumbnail"] for p in results["people"]] == thumbs
    from vidwatch.detectors.identities import DlibFaceDescriber

    describer = DlibFaceDescriber()
    for person in results["people"]:
        data = store.get_bytes(person["thumbnail"])
        assert data[:3] == b"\xff\xd8\xff"
        assert store.head(person["thumbnail"]).content_type == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        # The best crop is the largest face: the astronaut's 130 px one, the cameraman's 80.
        h, w = image.shape[:2]
        assert max(h, w) >= 80
        # It shows the person it names: its descriptor is near that person's faces.
        crop_d = describer.describe(image, [(w * 0.2, h * 0.2, w * 0.8, h * 0.8)])[0]
        frame = next(f for f in results["frames"] if f["frame"] == person["frames"][0])
        face = next(x for x in frame["faces"] if x["person"] == person["person"])
        original = cv2.imdecode(
            np.frombuffer(store.get_bytes(frame["images"]["original"]), np.uint8),
            cv2.IMREAD_COLOR,
        )
        face_d = describer.describe(original, [tuple(face["box_xyxy"])])[0]
        assert np.linalg.norm(crop_d - face_d) < 0.6


def test_frame_documents_and_toon_twins_equal_results_entries(cast_job):
    store, results = cast_job["store"], cast_job["results"]
    for frame in results["frames"]:
        doc = json.loads(store.get_bytes(frame["json"]))
        assert {k: v for k, v in doc.items() if k not in ("schema_version", "job_id")} == frame
        assert json_difference(doc, cast_job["toons"][frame["frame"]]) is None
        assert all("person" in face for face in doc["faces"])


def test_descriptors_stay_in_memory_and_provenance_says_how_people_were_made(cast_job):
    results = cast_job["results"]
    stats, prov = results["stats"], results["provenance"]
    faces = sum(len(f["faces"]) for f in results["frames"])
    bad = 2 * sum(1 for f in results["frames"] if f["scene"] == 6)
    # Each face was described or continued a described face; the two bad ones neither.
    assert stats["face_descriptors"] + stats["faces_reused"] == faces - bad
    assert stats["face_descriptors"] >= 7  # one per person per scene at least
    assert prov["settings"]["face_identities"] is True
    assert prov["settings"]["face_identity_threshold"] == 0.6
    assert prov["models"]["identities"]["name"] == "dlib_face_recognition_resnet_model_v1.dat"
    assert len(prov["models"]["identities"]["sha256"]) == 64
    # No descriptor anywhere: only the layout's keys, and no 128-number list in any document.
    present = {i.key for i in cast_job["store"].list(keys.job_prefix(cast_job["job_id"]))}
    assert {k.rsplit("/", 2)[-2] for k in present} <= {
        "input", "original", "det", "seg", "face", "json", "toon", "analysis", "people", "exports",
        cast_job["job_id"],
    }  # fmt: skip
    assert not _has_vector(results)
    for frame in results["frames"]:
        assert not _has_vector(json.loads(cast_job["store"].get_bytes(frame["json"])))


def _has_vector(doc) -> bool:
    """Whether any list of 128 numbers (a descriptor) is inside ``doc``."""
    if isinstance(doc, dict):
        return any(_has_vector(v) for v in doc.values())
    if isinstance(doc, list):
        if len(doc) == 128 and all(isinstance(v, float | int) for v in doc):
            return True
        return any(_has_vector(v) for v in doc)
    return False


def test_identities_off_gives_the_same_output_with_person_null(
    cast_video, cast_job, models, make_settings
):
    settings = make_settings(face_identities="false")
    store, job_id, manifest = _run(cast_video[0], settings, models)
    assert manifest.state == "completed", manifest.error
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    on = cast_job["results"]
    assert results["people"] == [] and results["summary"]["people"] == 0
    assert all(s["people"] == [] for s in results["scenes"])
    assert not any("/people/" in i.key for i in store.list(keys.job_prefix(job_id)))
    assert results["provenance"]["settings"]["face_identities"] is False
    off = results["provenance"]["models"]["identities"]
    assert off["name"] == "none" and off["enabled"] is False
    assert "FACE_IDENTITIES=false" in off["reason"]
    assert results["stats"]["face_descriptors"] == 0
    assert len(results["frames"]) == len(on["frames"])
    for off_frame, on_frame in zip(results["frames"], on["frames"], strict=True):
        assert [f["person"] for f in off_frame["faces"]] == [None] * len(off_frame["faces"])
        strip = [{k: v for k, v in f.items() if k != "person"} for f in on_frame["faces"]]
        assert [{k: v for k, v in f.items() if k != "person"} for f in off_frame["faces"]] == strip
        doc = json.loads(store.get_bytes(off_frame["json"]))
        assert doc["faces"] == off_frame["faces"]


def _job(tmp_path, models, make_settings, scenes, size=(640, 360), fps=10, **settings_kw):
    path = tmp_path / "clip.mp4"
    truth = make_video(path, scenes, size=size, fps=fps)
    settings = make_settings(**settings_kw)
    store, job_id, manifest = _run(path, settings, models)
    assert manifest.state == "completed", manifest.error
    return store, job_id, json.loads(store.get_bytes(keys.results_key(job_id))), truth


def test_one_person_across_a_whole_clip_is_one_person(tmp_path, models, make_settings):
    # She crosses the frame and grows; every face is described (no reuse by overlap).
    scenes = [Scene(60, (90, 90, 90), [Placement(A, 60, 120, 180, dx=7, grow=1.0)])]
    _store, _job_id, results, _truth = _job(
        tmp_path, models, make_settings, scenes, sample_fps=2, face_identity_reuse_iou=0
    )
    faces = [face for f in results["frames"] for face in f["faces"]]
    assert len(results["frames"]) == 12 and len(faces) == 12
    assert {face["person"] for face in faces} == {0}
    assert results["stats"]["face_descriptors"] == 12 and results["stats"]["faces_reused"] == 0
    assert [p["person"] for p in results["people"]] == [0]
    assert results["people"][0]["frames"] == [f["frame"] for f in results["frames"]]


def test_two_people_side_by_side_stay_two(tmp_path, models, make_settings):
    scenes = [
        Scene(
            40,
            (90, 90, 90),
            [Placement(A, 70, 150, 180, dx=3), Placement(C, 70, 480, 180, dx=-2)],
        )
    ]
    _store, _job_id, results, truth = _job(
        tmp_path, models, make_settings, scenes, sample_fps=2, face_identity_reuse_iou=0
    )
    assert len(results["frames"]) == 8
    for frame in results["frames"]:
        got = {match(f["box_xyxy"], truth[frame["frame"]]["faces"])["who"]: f["person"]
               for f in frame["faces"]}  # fmt: skip
        assert got == {A: 0, C: 1}, frame["frame"]
    assert results["stats"]["face_descriptors"] == 16
    assert [p["faces"] for p in results["people"]] == [8, 8]


def test_a_frame_with_twenty_faces(tmp_path, models, make_settings):
    # A 5 x 4 grid, the two people in a checkerboard; one sampled frame.
    grid = [
        Placement(A if (col + row) % 2 == 0 else C, 48, 80 + 160 * col, 70 + 150 * row)
        for col in range(5)
        for row in range(4)
    ]
    store, job_id, results, truth = _job(
        tmp_path, models, make_settings, [Scene(3, (90, 90, 90), grid)], size=(800, 600)
    )
    (frame,) = results["frames"]
    assert len(frame["faces"]) == 20
    ids: dict[str, set[int]] = {}
    for face in frame["faces"]:
        ids.setdefault(match(face["box_xyxy"], truth[0]["faces"])["who"], set()).add(face["person"])
    # Each of the two people has one id of their own, none split and none merged ...
    assert sorted(ids) == sorted({A, C}) and all(len(v) == 1 for v in ids.values())
    assert set().union(*ids.values()) == {0, 1}
    # ... and people first seen in one frame are numbered left to right (by the box's left
    # edge, then its top): within one column the two people's boxes differ by pixels only.
    leftmost = min(frame["faces"], key=lambda f: (f["box_xyxy"][0], f["box_xyxy"][1]))
    assert leftmost["person"] == 0
    assert [(p["person"], p["faces"]) for p in results["people"]] == [(0, 10), (1, 10)]
    assert results["summary"]["faces"]["max_in_frame"] == 20
    assert len([i for i in store.list(keys.job_prefix(job_id)) if "/people/" in i.key]) == 2


def test_a_job_with_no_face_has_no_people(media, models, make_settings):
    settings = make_settings()
    store, job_id, _manifest = _run(media / "single_shot.mp4", settings, models)
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    assert results["people"] == [] and results["summary"]["people"] == 0
    assert all(f["faces"] == [] for f in results["frames"])
    assert results["scenes"][0]["people"] == []
    assert results["provenance"]["settings"]["face_identities"] is True
    assert not any("/people/" in i.key for i in store.list(keys.job_prefix(job_id)))
