"""The library with the real models (MTCNN boxes, dlib descriptors) on real photos: two
videos share a stranger, a person is enrolled from another photo than the video's, names
show in old jobs, bad photos are refused with nothing stored."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from tests.daemon.helpers import local_settings
from tests.library.photo_video import (
    CASTS,
    FACES_ONLY,
    analyse_casts,
    photo,
    photo_bytes,
    side_by_side,
    still_video,
)
from tests.pipeline.test_pipeline import _run
from vidwatch.library import PeopleLibrary
from vidwatch.library.jobs import with_names
from vidwatch.library.photos import ModelPhotoFaces, PhotoError, enrolment_faces
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def two_jobs(face_models, tmp_path_factory):
    """Video A: Obama and the astronaut; video B: Biden and the astronaut."""
    root = tmp_path_factory.mktemp("library_jobs")
    settings = local_settings(root, FACES_ONLY, SAMPLE_FPS="1")
    store = LocalStore(settings.local_store_dir)
    return store, settings, analyse_casts(root, settings, face_models, store)


def _people(store, job_id: str) -> list[dict]:
    """The job's people, left to right, with names as /results resolves them."""
    doc = json.loads(store.get_bytes(keys.results_key(job_id)))
    by_person = {}
    for frame in doc["frames"]:
        for face in frame["faces"]:
            if face["person"] is not None:
                by_person[face["person"]] = face["box_xyxy"][0]
    people = with_names(doc["people"], PeopleLibrary(store).names_for)
    return sorted(people, key=lambda p: by_person[p["person"]])


def test_threshold_separates_the_photos(face_models):
    """The distances the threshold was chosen from: three photos of one man, three other
    people (docs/people.md, FACE_MATCH_THRESHOLD)."""
    faces_of = ModelPhotoFaces(face_models)
    who = ["obama", "obama2", "obama3", "biden", "astronaut", "camera"]
    d = {w: faces_of(photo_bytes(w)) for w in who}
    assert all(len(found) == 1 for found in d.values()), {w: len(f) for w, f in d.items()}
    same, different = [], []
    for a, b in itertools.combinations(who, 2):
        distance = float(np.linalg.norm(d[a][0].descriptor - d[b][0].descriptor))
        (same if a[:5] == b[:5] == "obama" else different).append(distance)
    assert max(same) < 0.6 < min(different), (same, different)


def test_a_stranger_in_two_videos_is_one_person_and_names_reach_old_jobs(two_jobs, face_models):
    store, _, jobs = two_jobs
    a, b = _people(store, jobs["a"]), _people(store, jobs["b"])
    assert len(a) == 2 and len(b) == 2
    obama, astronaut_a = a
    biden, astronaut_b = b
    assert astronaut_a["library_id"] == astronaut_b["library_id"] is not None
    assert len({obama["library_id"], biden["library_id"], astronaut_a["library_id"]}) == 3
    assert all(p["name"] is None for p in a + b)
    lib = PeopleLibrary(store)
    # Enrolled from another photo than the video's: names the unnamed person of video A.
    person, n = lib.enrol(
        "Barack Obama", enrolment_faces([photo_bytes("obama2")], ModelPhotoFaces(face_models))
    )
    assert person.id == obama["library_id"] and n == 1
    lib.rename(astronaut_a["library_id"], "Eileen Collins")
    a, b = _people(store, jobs["a"]), _people(store, jobs["b"])
    assert [p["name"] for p in a] == ["Barack Obama", "Eileen Collins"]
    assert [p["name"] for p in b] == [None, "Eileen Collins"]  # Biden stays a stranger
    appearances = lib.get(astronaut_a["library_id"]).appearances
    assert {x["job_id"] for x in appearances} == set(jobs.values())
    assert all(x["file_name"] in ("a.mp4", "b.mp4") for x in appearances)


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda: b"GIF89a not a photo", "not_an_image"),
        (lambda: b"\xff\xd8\xff\xe0 truncated jpeg", "not_an_image"),
        (lambda: _jpeg(np.full((200, 200, 3), 90, np.uint8)), "no_face"),
        (lambda: _jpeg(side_by_side("obama2", "astronaut", height=300)), "several_faces"),
    ],
)
def test_bad_photos_store_nothing(make, code, face_models, tmp_path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(PhotoError) as caught:
        enrolment_faces([photo_bytes("obama2"), make()], ModelPhotoFaces(face_models))
    assert caught.value.code == code and caught.value.photo == 1
    assert list(store.list("")) == []


def _jpeg(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def test_photo_pixels_are_what_the_test_expects():
    assert photo("obama").shape[2] == 3 and photo("camera").shape == (512, 512, 3)


def test_two_daemons_on_s3_share_a_stranger(face_models, seaweedfs_bucket, tmp_path):
    """Two jobs on SeaweedFS, each through its own store client as two daemons would be,
    running side by side and ending together: the astronaut in both is one library
    person, Obama and Biden two others."""
    import threading

    settings = local_settings(
        tmp_path, FACES_ONLY, SAMPLE_FPS="1", LOCAL_STORE_DIR=str(tmp_path / "unused")
    )
    videos = [still_video(tmp_path / f"{n}.mp4", side_by_side(*cast)) for n, cast in CASTS]
    stores = [seaweedfs_bucket.store() for _ in videos]
    done: dict[int, str] = {}
    errors: list[BaseException] = []

    def daemon(i: int) -> None:
        try:
            _, job_id, manifest = _run(videos[i], settings, face_models, store=stores[i])
            assert manifest.state == "completed", manifest.error
            done[i] = job_id
        except BaseException as exc:  # noqa: BLE001 - raised again below
            errors.append(exc)

    threads = [threading.Thread(target=daemon, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    try:
        assert not errors, errors
        a, b = _people(stores[0], done[0]), _people(stores[0], done[1])
        assert a[1]["library_id"] == b[1]["library_id"] is not None
        assert len({a[0]["library_id"], b[0]["library_id"], a[1]["library_id"]}) == 3
        library = PeopleLibrary(stores[0])
        assert len(library.list()[0]) == 3
        both = library.get(a[1]["library_id"])
        assert {x["job_id"] for x in both.appearances} == set(done.values())
    finally:
        for store in stores:
            store.close()


def test_library_off_links_nothing(face_models, tmp_path):
    """FACE_LIBRARY=false: the job's people stay per-job (library_id null), nothing is
    written under library/."""
    settings = local_settings(tmp_path, FACES_ONLY, SAMPLE_FPS="1", FACE_LIBRARY="false")
    video = still_video(tmp_path / "a.mp4", side_by_side("obama", "astronaut"))
    store, job_id, manifest = _run(video, settings, face_models)
    assert manifest.state == "completed", manifest.error
    people = json.loads(store.get_bytes(keys.results_key(job_id)))["people"]
    assert len(people) == 2 and all(p["library_id"] is None for p in people)
    assert list(store.list("library/")) == []
