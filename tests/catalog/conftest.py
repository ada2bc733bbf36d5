"""Jobs of our own for the catalog's tests: written into a real LocalStore with the
documents a job writes (schema-checked), then read by the catalog like any other job."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import ulid

from bench.catalog_data import JobSpecDocs, SceneSpec, put_job
from vidwatch.catalog import Catalog, CatalogKeeper
from vidwatch.r2.local import LocalStore

ALICE, BOB = "P01ALICE0000000000000000000", "P01BOB000000000000000000000"


def job_id_at(ts: float) -> str:
    return str(ulid.ULID.from_timestamp(ts))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def open_keeper(tmp_path: Path, store: LocalStore) -> Callable[..., CatalogKeeper]:
    made: list[CatalogKeeper] = []

    def make(path: Path | None = None, **kwargs) -> CatalogKeeper:
        catalog = Catalog.open(path or tmp_path / "catalog.sqlite3", store_id=str(store.root))
        keeper = CatalogKeeper(catalog, store, **kwargs)
        made.append(keeper)
        return keeper

    yield make
    for keeper in made:
        keeper.stop()
        keeper.catalog.close()


@pytest.fixture
def library(store: LocalStore) -> dict[str, JobSpecDocs]:
    """Three completed jobs a minute apart, oldest first, and a failed one:

    - ``beach``: scene 0 dog + Alice, scene 1 Alice and Bob with a person label, scene 2
      surfboard and Bob;
    - ``park``: scene 0 dog, scene 1 Alice and Bob, scene 2 nobody;
    - ``office``: scene 0 laptop and an anonymous person 0;
    - ``broken``: failed.
    """
    now = time.time() - 3600
    specs = {
        "beach": JobSpecDocs(
            job_id_at(now),
            "Beach Day.mp4",
            now,
            [SceneSpec(["dog"], [0]), SceneSpec(["person"], [0, 1]), SceneSpec(["surfboard"], [1])],
            library_ids={0: ALICE, 1: BOB},
        ),
        "park": JobSpecDocs(
            job_id_at(now + 60),
            "park_walk.mov",
            now + 60,
            [SceneSpec(["dog", "bench"], []), SceneSpec(["person"], [3, 4]), SceneSpec([], [])],
            library_ids={3: ALICE, 4: BOB},
            origin="inbox",
        ),
        "office": JobSpecDocs(
            job_id_at(now + 120),
            "office.mp4",
            now + 120,
            [SceneSpec(["laptop"], [0])],
            origin="api",
        ),
        "broken": JobSpecDocs(job_id_at(now + 180), "broken.mp4", now + 180, [], origin="api"),
    }
    for name, spec in specs.items():
        put_job(store, spec, "failed" if name == "broken" else "completed")
    return specs
