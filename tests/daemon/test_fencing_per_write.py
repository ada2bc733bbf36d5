"""Issue 16, case 5: fencing holds per write. Once a job's lease is lost, no object of
that job that was still waiting for one of the pool's threads reaches the store."""

from __future__ import annotations

import threading
import time

import pytest

from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.fenced import FencedStore, LeaseGuard
from vidwatch.r2.leases import LeaseLost, claim, read_lease
from vidwatch.r2.store import PutItem

ITEMS = 400
WORKERS = 2


@pytest.mark.expect_error_logs("lease_lost")
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


@pytest.mark.expect_error_logs("lease_lost")
def test_retries_in_an_outage_end_with_the_lease_and_the_lease_is_not_renewed_late(
    restartable_moto,
):
    """A write and the lease's renewals both ride out store outages with retries, for up to a
    minute. Neither may go on past the lease's term: a write retried after another host took
    the job would land on that host's results, and a renewal retried past the term would
    extend a lease that may already be someone else's. With the store gone for longer than
    the lease, the write ends with LeaseLost near the term, and the lease object, once the
    store is back, still carries the term it had when the outage began."""
    server = restartable_moto.server()
    bucket = server.create_bucket()
    store = server.store(bucket)  # the default retry policy: a 60 s deadline per call
    job_id = new_job_id()
    ttl_s = 2.0
    held = claim(store, job_id, "me", ttl_s=ttl_s, now=time.time())
    assert held is not None
    lost = threading.Event()
    guard = LeaseGuard(store, held, ttl_s=ttl_s, renew_s=0.3, clock=time.time, on_lost=lost.set)
    guard.start()
    fenced = FencedStore(store, guard)
    key = keys.frame_json_key(job_id, 1)
    try:
        restartable_moto.stop()
        started = time.monotonic()
        with pytest.raises(LeaseLost):
            fenced.put_bytes(key, b"{}")
        took = time.monotonic() - started
        # The term, plus at most one backoff wait (5 s) begun before it ended.
        assert took < ttl_s + 6, f"the write rode out the outage for {took:.1f} s"
        assert lost.wait(10), "the keeper did not give the lease up"
        term = guard.held.lease.expires_at
        assert time.time() >= term - guard.margin_s
        assert guard.stop(timeout_s=10), "the keeper went on retrying past the term"
    finally:
        restartable_moto.start()
    lease, _, _ = read_lease(store, job_id)
    assert lease is not None and lease.expires_at == term, "a renewal landed after the term"
    assert store.head(key) is None, "a write retried after the loss reached the store"
    store.close()
