"""The library and the catalog wired as the daemon wires them: the catalog resolves names
through the library and hears its changes, so a rename, a merge or a forget done through
the library shows in search at once."""

from __future__ import annotations

import time
from pathlib import Path

from ulid import ULID

from bench.catalog_data import JobSpecDocs, SceneSpec, put_job
from tests.library.faces import Faces
from vidwatch.catalog import Catalog, CatalogKeeper
from vidwatch.catalog.query import parse_search
from vidwatch.library import EnrolFace, JobPerson, PeopleLibrary
from vidwatch.r2.local import LocalStore


def hits(keeper: CatalogKeeper, **params) -> list[tuple[str, int]]:
    found, _ = keeper.catalog.search(parse_search(**params))
    return [(h.job_id, h.scene) for h in found]


def test_library_changes_reach_search(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    library, faces = PeopleLibrary(store), Faces()
    ann, _ = library.enrol("Ann", [EnrolFace(faces.views("ann", 1)[0])])
    job_id = str(ULID())
    stranger, other = library.link_job(
        job_id,
        [JobPerson({"person": 1}, faces.views("zoe")), JobPerson({"person": 2}, faces.views("x"))],
    )
    assert stranger and other
    put_job(
        store,
        JobSpecDocs(
            job_id,
            "meeting.mp4",
            time.time() - 60,
            [SceneSpec(["person"], [0, 1]), SceneSpec([], [2])],
            library_ids={0: ann.id, 1: stranger, 2: other},
        ),
    )
    keeper = CatalogKeeper(
        Catalog.open(tmp_path / "catalog.sqlite3", store_id=str(store.root)),
        store,
        names=library.names_for,
    )
    library.on_change = keeper.on_library_change
    try:
        keeper.rebuild()
        assert hits(keeper, q="ann") == [(job_id, 0)]
        assert hits(keeper, q="zoe") == []
        library.rename(stranger, "Zoe")
        assert hits(keeper, q="zoe") == [(job_id, 0)]
        library.merge(stranger, other)  # the third face was Zoe too
        assert hits(keeper, person=[stranger]) == [(job_id, 0), (job_id, 1)]
        library.forget(ann.id)
        assert hits(keeper, q="ann") == [] and hits(keeper, person=[ann.id]) == []
        assert hits(keeper, q="zoe") == [(job_id, 0), (job_id, 1)]
    finally:
        keeper.stop()
        keeper.catalog.close()
