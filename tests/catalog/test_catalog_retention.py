"""Jobs removed by retention leave the catalog: the local store's retention (a pure decision
on a fixed clock, then its hook), and jobs a bucket's lifecycle rules expired (checked by
HEAD only for jobs old enough)."""

from __future__ import annotations

import time

from tests.catalog.conftest import ALICE
from vidwatch.catalog.query import parse_search
from vidwatch.config import load_settings
from vidwatch.daemon.retention import Retention
from vidwatch.r2 import keys


def test_a_job_expired_by_retention_is_no_longer_found(library, store, open_keeper, tmp_path):
    keeper = open_keeper()
    keeper.rebuild()
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
            "LOCAL_STORE_DIR": str(store.root),
            "R2_RETENTION_DAYS": "7",
        }
    )
    found, _ = keeper.catalog.search(parse_search(person=[ALICE]))
    assert found
    now = time.time()
    kept = Retention(settings, store, catalog=keeper).run(now=now + 6 * 86400)
    assert kept.jobs_expired == [] and keeper.catalog.counts()["jobs"] == 4
    report = Retention(settings, store, catalog=keeper).run(now=now + 8 * 86400)
    assert sorted(report.jobs_expired) == sorted(s.job_id for s in library.values())
    assert keeper.catalog.search(parse_search(person=[ALICE]))[0] == []
    assert keeper.catalog.counts() == {"jobs": 0, "scenes": 0}


def test_jobs_a_bucket_expired_itself_are_pruned_by_age(library, store, open_keeper) -> None:
    keeper = open_keeper()
    keeper.rebuild()
    beach, park = library["beach"].job_id, library["park"].job_id
    for job_id in (beach, park):  # the lifecycle rule took them
        store.delete_many(i.key for i in store.list(keys.job_prefix(job_id)))
    created = time.time() - 3600  # the library's jobs were made an hour ago
    assert keeper.prune_expired(created + 7 * 86400 - 120, retention_days=7) == 0
    assert keeper.prune_expired(created + 7 * 86400 + 600, retention_days=7) == 2
    assert keeper.catalog.job_ids() == {library[n].job_id for n in ("office", "broken")}
