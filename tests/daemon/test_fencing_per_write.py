"""Issue 16, case 5: fencing holds per write. Once a job's lease is lost, no object of
that job that was still waiting for one of the pool's threads reaches the store."""

from __future__ import annotations

import threading
import time

import pytest

from vidwatch.daemon.runner import FencedStore, LeaseGuard
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.leases import LeaseLost, claim
from vidwatch.r2.store import PutItem

ITEMS = 400
WORKERS = 2


def test_no_write_reaches_the_store_after_the_lease_is_lost(moto_bucket):
    store = moto_bucket.store(workers=WORKERS)
    job_id = new_job_id()
    now = [1_000.0]
    held = claim(store, job_id, "me", ttl_s=30, now=now[0])
    assert held is not None
    guard = LeaseGuard(
        store, held, ttl_s=30, renew_s=3600, clock=lambda: now[0], on_lost=lambda: None
    )
    fenced = FencedStore(store, guard)
    items = [
        PutItem(keys.frame_json_key(job_id, n), b"{}", "application/json") for n in range(ITEMS)
    ]
    outcome: dict[str, object] = {}

    def put() -> None:
        try:
            fenced.put_many(items)
        except Exception as exc:  # noqa: BLE001 - inspected below
            outcome["error"] = exc

    thread = threading.Thread(target=put)
    thread.start()
    deadline = time.monotonic() + 30
    while store.head(keys.frame_json_key(job_id, 20)) is None:
        assert time.monotonic() < deadline and thread.is_alive(), "the puts did not start"
        time.sleep(0.005)
    now[0] += 60  # the lease's term is over: from here on every write must be refused
    thread.join(60)
    written = sum(1 for info in store.list(keys.job_prefix(job_id)) if "/analysis/" in info.key)
    store.close()

    # Only the puts already on the wire when the lease ran out may land (a few per worker).
    assert written <= 20 + 4 * WORKERS + 10, f"{written} of {ITEMS} written after lease_lost"
    assert isinstance(outcome.get("error"), LeaseLost)


def test_a_fenced_batch_with_a_live_lease_writes_everything(moto_bucket):
    store = moto_bucket.store(workers=WORKERS)
    job_id = new_job_id()
    held = claim(store, job_id, "me", ttl_s=30, now=time.time())
    guard = LeaseGuard(store, held, ttl_s=30, renew_s=3600, clock=time.time, on_lost=lambda: None)
    infos = FencedStore(store, guard).put_many(
        [PutItem(keys.frame_json_key(job_id, n), b"{}") for n in range(10)]
    )
    assert [i.key for i in infos] == [keys.frame_json_key(job_id, n) for n in range(10)]
    with pytest.raises(LeaseLost):
        guard.lost.set()
        FencedStore(store, guard).put_many([PutItem(keys.frame_json_key(job_id, 99), b"{}")])
    store.close()
