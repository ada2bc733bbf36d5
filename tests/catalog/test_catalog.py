"""The catalog on jobs of our own in a real LocalStore: what it keeps, what search and the job
list answer, the people library's changes, rebuilds."""

from __future__ import annotations

import json

import pytest

from bench.catalog_data import results_doc, status_doc
from tests.catalog.conftest import ALICE, BOB
from vidwatch.catalog import Catalog
from vidwatch.catalog.query import QueryError, parse_jobs, parse_search
from vidwatch.jobs.manifest import Manifest
from vidwatch.pipeline.documents import Results
from vidwatch.r2 import keys


def hits(keeper, **params) -> list[tuple[str, int]]:
    found, _ = keeper.catalog.search(parse_search(**params))
    return [(h.job_id, h.scene) for h in found]


def test_synthetic_documents_are_schema_valid(library) -> None:
    for spec in library.values():
        Results.model_validate(results_doc(spec))
        Manifest.from_json(status_doc(spec))


def test_rebuild_indexes_every_job_and_marks_complete(library, open_keeper) -> None:
    keeper = open_keeper()
    assert not keeper.catalog.complete
    report = keeper.rebuild()
    assert (report.jobs, report.indexed, report.failed) == (4, 4, 0)
    assert keeper.catalog.complete
    assert keeper.catalog.counts() == {"jobs": 4, "scenes": 7}


def test_label_finds_its_scenes_only_newest_job_first(library, open_keeper) -> None:
    keeper = open_keeper()
    keeper.rebuild()
    beach, park = library["beach"].job_id, library["park"].job_id
    assert hits(keeper, label=["dog"]) == [(park, 0), (beach, 0)]
    assert hits(keeper, label=["DOG"]) == [(park, 0), (beach, 0)]
    assert hits(keeper, label=["dog", "bench"]) == [(park, 0)]
    assert hits(keeper, label=["giraffe"]) == []


def test_people_together_only_scenes_with_all_of_them(library, open_keeper) -> None:
    keeper = open_keeper()
    keeper.rebuild()
    beach, park = library["beach"].job_id, library["park"].job_id
    assert hits(keeper, person=[ALICE]) == [(park, 1), (beach, 0), (beach, 1)]
    assert hits(keeper, person=[ALICE, BOB]) == [(park, 1), (beach, 1)]
    assert hits(keeper, person=[BOB, ALICE], job=beach.lower()) == [(beach, 1)]
    office = library["office"].job_id
    assert hits(keeper, person=[f"{office.lower()}:0"]) == [(office, 0)]


def test_text_prefix_words_must_all_match(library, open_keeper) -> None:
    keeper = open_keeper()
    keeper.rebuild()
    beach, park = library["beach"].job_id, library["park"].job_id
    assert hits(keeper, q="beach") == [(beach, 0), (beach, 1), (beach, 2)]
    assert hits(keeper, q="BEA surf") == [(beach, 2)]
    assert hits(keeper, q="park ben") == [(park, 0)]
    assert hits(keeper, q="beach bench") == []
    assert hits(keeper, q='"dog OR') == []  # FTS5 syntax is plain text


def test_time_range_limit_and_cursor(library, open_keeper) -> None:
    keeper = open_keeper()
    keeper.rebuild()
    park = library["park"]
    everything = hits(keeper, limit_="500")
    assert len(everything) == 7
    page, cursor = keeper.catalog.search(parse_search(limit_="3"))
    assert [(h.job_id, h.scene) for h in page] == everything[:3] and cursor is not None
    rest = hits(keeper, limit_="500", cursor_=str(cursor))
    assert rest == everything[3:]
    start = status_doc(park)["created_at"]
    assert {j for j, _ in hits(keeper, from_=start, to=start)} == {park.job_id}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit_": "0"}, "limit"),
        ({"limit_": "501"}, "limit"),
        ({"limit_": "x"}, "limit"),
        ({"from_": "yesterday"}, "from"),
        ({"from_": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"job": "nope"}, "job"),
        ({"person": ["a b"]}, "person"),
        ({"cursor_": "abc"}, "cursor"),
        ({"q": "?!"}, "q"),
    ],
)
def test_bad_parameters_name_themselves(params, param) -> None:
    with pytest.raises(QueryError) as caught:
        parse_search(**params)
    assert caught.value.param == param


def test_job_list_filters_and_pages(library, open_keeper) -> None:
    keeper = open_keeper()
    keeper.rebuild()
    ids = [s.job_id for s in library.values()][::-1]
    listed, _ = keeper.catalog.jobs(parse_jobs())
    assert [j["job_id"] for j in listed] == ids
    assert listed[0]["state"] == "failed" and listed[0]["error"] == "unreadable_video"
    failed, _ = keeper.catalog.jobs(parse_jobs(state="failed"))
    assert [j["job_id"] for j in failed] == [library["broken"].job_id]
    inbox, _ = keeper.catalog.jobs(parse_jobs(origin="inbox"))
    assert [j["job_id"] for j in inbox] == [library["park"].job_id]
    texted, _ = keeper.catalog.jobs(parse_jobs(text="lapt"))
    assert [j["job_id"] for j in texted] == [library["office"].job_id]
    page, cursor = keeper.catalog.jobs(parse_jobs(limit_="2"))
    more, end = keeper.catalog.jobs(parse_jobs(limit_="2", cursor_=str(cursor)))
    assert [j["job_id"] for j in page + more] == ids and end is None
    with pytest.raises(QueryError):
        parse_jobs(state="done")


def test_names_come_from_the_resolver_and_follow_the_library(library, open_keeper) -> None:
    keeper = open_keeper(names=lambda ids: {i: {ALICE: "Alice"}.get(i) for i in ids})
    keeper.rebuild()
    beach, park = library["beach"].job_id, library["park"].job_id
    assert hits(keeper, q="alice") == [(park, 1), (beach, 0), (beach, 1)]
    found, _ = keeper.catalog.search(parse_search(person=[ALICE, BOB], job=beach))
    assert {p["id"]: p["name"] for p in found[0].people} == {ALICE: "Alice", BOB: None}

    keeper.catalog.person_renamed(BOB, "Robert")
    assert hits(keeper, q="robert alice") == [(park, 1), (beach, 1)]
    assert hits(keeper, q="rob") == [(park, 1), (beach, 1), (beach, 2)]

    keeper.catalog.people_merged(ALICE, BOB)  # Bob was Alice all along
    assert hits(keeper, q="robert") == []
    assert hits(keeper, person=[BOB]) == []
    assert hits(keeper, person=[ALICE]) == [
        (park, 1),
        (beach, 0),
        (beach, 1),
        (beach, 2),
    ]

    keeper.catalog.person_forgotten(ALICE)
    assert hits(keeper, person=[ALICE]) == []
    assert hits(keeper, q="alice") == []
    found, _ = keeper.catalog.search(parse_search(job=beach, limit_="1"))
    assert {p["id"]: p["name"] for p in found[0].people} == {f"{beach}:0": None}
    assert hits(keeper, person=[f"{beach}:1"]) == [(beach, 1), (beach, 2)]


def test_a_newer_manifest_is_never_undone_by_an_older_one(library, open_keeper, store) -> None:
    keeper = open_keeper()
    keeper.rebuild()
    spec = library["office"]
    older = status_doc(spec, "running")
    older["updated_at"] = "2000-01-01T00:00:00.000000Z"
    from vidwatch.catalog.rows import job_docs

    assert keeper.catalog.put(job_docs(older, None)) is False
    assert keeper.catalog.job_state(spec.job_id) == "completed"


def test_removed_jobs_leave_and_a_sweep_listing_forgets_them(library, open_keeper, store) -> None:
    keeper = open_keeper()
    keeper.rebuild()
    beach, park = library["beach"].job_id, library["park"].job_id
    keeper.remove_job(beach)
    assert hits(keeper, label=["dog"]) == [(park, 0)]
    store.delete_many(i.key for i in store.list(keys.job_prefix(park)))

    class Sweep:
        kind, marked = "sweep", frozenset()
        listed = frozenset(library[n].job_id for n in ("office", "broken"))

    keeper.on_scan(Sweep())
    assert hits(keeper, label=["dog"]) == []
    assert keeper.catalog.job_ids() == Sweep.listed


def test_deleted_or_foreign_file_is_rebuilt_with_the_same_answers(
    library, open_keeper, tmp_path
) -> None:
    path = tmp_path / "catalog.sqlite3"
    first = open_keeper(path)
    first.rebuild()
    before = hits(first, person=[ALICE, BOB]), hits(first, q="dog"), first.catalog.counts()
    first.catalog.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"catalog.sqlite3{suffix}").unlink(missing_ok=True)
    again = open_keeper(path)
    assert not again.catalog.complete and again.catalog.counts()["jobs"] == 0
    again.rebuild()
    assert (hits(again, person=[ALICE, BOB]), hits(again, q="dog"), again.catalog.counts()) == (
        before
    )
    again.catalog.close()
    path.write_bytes(b"not a database" * 100)
    broken = open_keeper(path)
    assert broken.catalog.counts()["jobs"] == 0 and not broken.catalog.complete
    other = Catalog.open(tmp_path / "other.sqlite3", store_id="s3://a/jobs/")
    other.set_complete(True)
    other.close()
    moved = Catalog.open(tmp_path / "other.sqlite3", store_id="s3://b/jobs/")
    assert not moved.complete
    moved.close()


def test_scene_labels_come_from_frames_and_label_segments(library, store, open_keeper) -> None:
    spec = library["office"]
    doc = results_doc(spec)
    doc["frames"][0]["objects"] = []
    doc["label_segments"][0]["label"] = "keyboard"
    store.put_bytes(keys.results_key(spec.job_id), json.dumps(doc).encode())
    keeper = open_keeper()
    keeper.rebuild()
    assert hits(keeper, label=["keyboard"]) == [(spec.job_id, 0)]
    assert hits(keeper, label=["laptop"]) == []
