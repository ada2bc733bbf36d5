"""The people library on every store, with synthetic descriptors of known identity."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from ulid import ULID

from tests.library.faces import Faces, read_results, write_job
from vidwatch.library import (
    EnrolFace,
    InvalidName,
    LibraryChange,
    PeopleLibrary,
    PersonNotFound,
)
from vidwatch.library import keys as lkeys
from vidwatch.library.index import Index
from vidwatch.library.jobs import with_names
from vidwatch.library.link import link_results
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore


def job_with(store: ObjectStore, lib: PeopleLibrary, faces: Faces, who: list[str]) -> str:
    """A job whose people are ``who`` (in order), linked and saved as a job saves it."""
    job_id = str(ULID())
    doc = write_job(store, job_id, len(who))
    ids = link_results(
        lib, job_id, doc, {k: faces.views(w) for k, w in enumerate(who)}, file_name=f"{job_id}.mp4"
    )
    assert len(ids) == len(who)
    store.put_bytes(keys.results_key(job_id), json.dumps(doc).encode())
    return job_id


def library_ids(store: ObjectStore, job_id: str) -> list[str | None]:
    return [p["library_id"] for p in read_results(store, job_id)["people"]]


def test_a_stranger_in_two_videos_is_one_library_person(any_store: ObjectStore) -> None:
    lib, faces = PeopleLibrary(any_store), Faces()
    first = job_with(any_store, lib, faces, ["stranger", "alice"])
    second = job_with(any_store, lib, faces, ["bob", "stranger"])
    a, b = library_ids(any_store, first), library_ids(any_store, second)
    assert a[0] == b[1] and a[0] is not None
    assert len({a[0], a[1], b[0]}) == 3  # three different people
    person = lib.get(a[0])
    assert person.name is None
    assert sorted((x["job_id"], x["person"]) for x in person.appearances) == sorted(
        [(first, 0), (second, 1)]
    )
    people, more = lib.list()
    assert {p.id for p in people} == {a[0], a[1], b[0]} and more is None
    assert any_store.head(lkeys.thumbnail_key(a[0])) is not None  # a copy of a job's crop


def test_a_name_given_later_shows_in_every_video(any_store: ObjectStore) -> None:
    lib, faces = PeopleLibrary(any_store), Faces()
    first = job_with(any_store, lib, faces, ["carol"])
    second = job_with(any_store, lib, faces, ["dave", "carol"])
    carol = library_ids(any_store, first)[0]
    assert carol is not None
    lib.rename(carol, "  Carol   Smith ")
    for job_id in (first, second):
        people = with_names(read_results(any_store, job_id)["people"], lib.names_for)
        named = {p["name"] for p in people if p["library_id"] == carol}
        assert named == {"Carol Smith"}
        assert all(p["name"] is None for p in people if p["library_id"] != carol)


def test_enrolment_names_the_unnamed_person_it_matches(local_store: ObjectStore) -> None:
    lib, faces = PeopleLibrary(local_store), Faces()
    job = job_with(local_store, lib, faces, ["erin", "frank"])
    erin = library_ids(local_store, job)[0]
    person, count = lib.enrol("Erin", [EnrolFace(v) for v in faces.views("erin", 2)])
    assert person.id == erin and person.name == "Erin" and count == 2
    assert len(lib.list()[0]) == 2  # no second Erin
    # A photo of someone new makes a new named person; a later video of them shows the name.
    grace, _ = lib.enrol("Grace", [EnrolFace(faces.views("grace", 1)[0], b"\xff\xd8\xffjpg")])
    assert grace.id not in library_ids(local_store, job)
    later = job_with(local_store, lib, faces, ["grace"])
    assert library_ids(local_store, later) == [grace.id]
    assert lib.names_for([grace.id]) == {grace.id: "Grace"}
    # A photo that matches a person named otherwise does not rename them.
    other, _ = lib.enrol("Not Erin", [EnrolFace(faces.views("erin", 1)[0])])
    assert other.id != erin and lib.get(erin).name == "Erin"


def test_strangers_are_never_named(local_store: ObjectStore) -> None:
    lib, faces = PeopleLibrary(local_store), Faces()
    for who in ("heidi", "ivan"):
        lib.enrol(who.title(), [EnrolFace(v) for v in faces.views(who, 2)])
    job = job_with(local_store, lib, faces, ["heidi", "stranger1", "ivan", "stranger2"])
    people = with_names(read_results(local_store, job)["people"], lib.names_for)
    assert [p["name"] for p in people] == ["Heidi", None, "Ivan", None]
    assert len({p["library_id"] for p in people}) == 4


def test_merge_moves_appearances_and_the_other_id_is_gone(any_store: ObjectStore) -> None:
    lib, faces = PeopleLibrary(any_store), Faces()
    first = job_with(any_store, lib, faces, ["judy"])
    # The same woman, seen so differently that the threshold kept her apart.
    faces.centres["judy_profile"] = faces.identity("judy") + 0.8 / np.sqrt(128)
    second = job_with(any_store, lib, faces, ["judy_profile"])
    (a,), (b,) = library_ids(any_store, first), library_ids(any_store, second)
    assert a != b
    lib.rename(b, "Judy")
    merged = lib.merge(a, b)
    assert merged.name == "Judy"
    assert {x["job_id"] for x in merged.appearances} == {first, second}
    assert library_ids(any_store, second) == [a]
    with pytest.raises(PersonNotFound):
        lib.get(b)
    assert set(lib.descriptor_count()) == {a}
    assert any_store.head(lkeys.person_key(b)) is None
    assert any_store.head(lkeys.thumbnail_key(b)) is None


def test_forget_leaves_no_descriptor_or_crop_anywhere(any_store: ObjectStore) -> None:
    lib, faces = PeopleLibrary(any_store), Faces()
    lib.enrol("Mallory", [EnrolFace(faces.views("mallory", 1)[0], b"\xff\xd8\xffcrop")])
    first = job_with(any_store, lib, faces, ["mallory", "niaj"])
    second = job_with(any_store, lib, faces, ["olivia", "mallory"])
    mallory = library_ids(any_store, first)[0]
    assert mallory is not None and library_ids(any_store, second)[1] == mallory
    lib.forget(mallory)
    with pytest.raises(PersonNotFound):
        lib.get(mallory)
    # Nothing keyed by the person is left, and no descriptor in the store is hers.
    assert not [i.key for i in any_store.list("library/") if mallory in i.key]
    index = Index.from_bytes(any_store.get_bytes(lkeys.INDEX_KEY), None)
    assert mallory not in index.people
    for other in index.people.values():
        distances = np.linalg.norm(other[:, None, :] - faces.views("mallory", 5)[None], axis=2)
        assert distances.min() > 0.6
    for job_id, k in ((first, 0), (second, 1)):
        person = read_results(any_store, job_id)["people"][k]
        assert person["library_id"] is None and person["thumbnail"] is None
        assert any_store.head(keys.person_thumbnail_key(job_id, k)) is None
    # The others keep their links and crops.
    assert library_ids(any_store, first)[1] is not None
    assert any_store.head(keys.person_thumbnail_key(first, 1)) is not None
    # A new video of her makes a new unnamed stranger: nothing remembered her.
    later = job_with(any_store, lib, faces, ["mallory"])
    again = library_ids(any_store, later)[0]
    assert again != mallory and lib.get(again).name is None


def test_two_daemons_ending_jobs_with_one_stranger_make_one_person(
    any_store: ObjectStore,
) -> None:
    """Jobs on separate library objects (as on separate daemons) link the same stranger
    at the same moment: one library person, every job linked to it."""
    faces = Faces()
    faces.identity("stranger")
    n = 4
    start = threading.Barrier(n)
    results: dict[str, list[str | None]] = {}
    errors: list[BaseException] = []

    def daemon(i: int) -> None:
        try:
            lib = PeopleLibrary(any_store)
            job_id = str(ULID())
            doc = write_job(any_store, job_id, 1)
            views = {0: faces.views("stranger")}
            start.wait()
            results[job_id] = link_results(lib, job_id, doc, views)
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=daemon, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    ids = {ids[0] for ids in results.values()}
    assert len(ids) == 1 and None not in ids
    (pid,) = ids
    lib = PeopleLibrary(any_store)
    assert [p.id for p in lib.list()[0]] == [pid]
    assert {a["job_id"] for a in lib.get(pid).appearances} == set(results)


def test_listener_hears_each_change(local_store: ObjectStore) -> None:
    heard: list[LibraryChange] = []
    lib, faces = PeopleLibrary(local_store, on_change=heard.append), Faces()
    job = job_with(local_store, lib, faces, ["peggy", "rupert"])
    peggy, rupert = library_ids(local_store, job)
    assert peggy is not None and rupert is not None
    lib.rename(peggy, "Peggy")
    lib.merge(peggy, rupert)
    lib.forget(peggy)
    assert heard == [
        LibraryChange("linked", peggy, job_id=job),
        LibraryChange("linked", rupert, job_id=job),
        LibraryChange("renamed", peggy, name="Peggy"),
        LibraryChange("merged", peggy, name="Peggy", other_id=rupert),
        LibraryChange("forgotten", peggy),
    ]


def test_bad_names_and_ids(local_store: ObjectStore) -> None:
    lib, faces = PeopleLibrary(local_store), Faces()
    job = job_with(local_store, lib, faces, ["sybil"])
    (sybil,) = library_ids(local_store, job)
    assert sybil is not None
    with pytest.raises(InvalidName):
        lib.rename(sybil, "x" * 201)
    with pytest.raises(InvalidName):
        lib.rename(sybil, "bell\x07")
    with pytest.raises(PersonNotFound):
        lib.rename("P" + str(ULID()), "Nobody")
    with pytest.raises(PersonNotFound):
        lib.get("not-an-id")
    with pytest.raises(ValueError):
        lib.merge(sybil, sybil)
    assert lib.rename(sybil, "   ").name is None


def test_prune_forgets_strangers_of_jobs_that_are_gone(local_store: ObjectStore) -> None:
    """Retention removed a job: its appearances go; a stranger seen only there is
    forgotten (descriptors too); a named person, or one seen elsewhere, stays."""
    lib, faces = PeopleLibrary(local_store), Faces()
    old = job_with(local_store, lib, faces, ["stranger", "named", "both"])
    kept = job_with(local_store, lib, faces, ["both"])
    stranger, named, both = library_ids(local_store, old)
    assert stranger and named and both
    lib.rename(named, "Quinn")
    local_store.delete_many(i.key for i in local_store.list(keys.job_prefix(old)))
    assert lib.prune() == {"appearances_dropped": 2, "people_forgotten": 1}
    with pytest.raises(PersonNotFound):
        lib.get(stranger)
    assert stranger not in lib.descriptor_count()
    assert lib.get(named).appearances == [] and lib.get(named).name == "Quinn"
    assert [a["job_id"] for a in lib.get(both).appearances] == [kept]
    assert lib.prune() == {"appearances_dropped": 0, "people_forgotten": 0}


def test_the_retention_pass_prunes_the_library_once_a_day(
    local_store: ObjectStore, tmp_path
) -> None:
    from vidwatch.config import load_settings
    from vidwatch.daemon.retention import LIBRARY_PRUNE_S, Retention

    settings = load_settings({"TEMP_MEDIA_DIR": str(tmp_path / "tmp")})
    lib, faces = PeopleLibrary(local_store), Faces()
    first = job_with(local_store, lib, faces, ["stranger"])
    (stranger,) = library_ids(local_store, first)
    retention = Retention(settings, local_store)
    retention.run(now=1_000_000.0)
    assert lib.get(stranger).id == stranger  # its job is there
    local_store.delete_many(i.key for i in local_store.list(keys.job_prefix(first)))
    retention.run(now=1_000_000.0 + LIBRARY_PRUNE_S / 2)  # not a day yet
    assert lib.get(stranger).id == stranger
    retention.run(now=1_000_000.0 + LIBRARY_PRUNE_S)
    with pytest.raises(PersonNotFound):
        lib.get(stranger)
