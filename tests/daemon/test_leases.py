"""Leases: the pure decision with fixed times, and claim / renew / release through real
stores (the local folder, moto, SeaweedFS)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from vidwatch.r2 import keys
from vidwatch.r2.leases import (
    Lease,
    LeaseLost,
    Verdict,
    claim,
    decide,
    read_lease,
    release,
    renew,
)
from vidwatch.r2.local import LocalStore

JOB = "01JD3ZZZZZZZZZZZZZZZZZZZZZ"
T0 = 1_800_000_000.0


def _lease(owner: str, expires_at: float, *, released: bool = False) -> Lease:
    return Lease(
        job_id=JOB,
        owner=owner,
        acquired_at=T0 - 30,
        renewed_at=T0 - 10,
        expires_at=expires_at,
        released=released,
    )


# --- the decision ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lease", "now", "verdict"),
    [
        (None, T0, Verdict.ACQUIRE),
        (_lease("other", T0 + 5), T0, Verdict.WAIT),
        (_lease("other", T0 + 5), T0 + 4.999, Verdict.WAIT),
        (_lease("other", T0 + 5), T0 + 5, Verdict.TAKEOVER),  # expiry is the first instant free
        (_lease("other", T0 + 5), T0 + 3600, Verdict.TAKEOVER),
        (_lease("other", T0 + 5, released=True), T0, Verdict.TAKEOVER),
        (_lease("me", T0 + 5), T0, Verdict.RENEW),
        (_lease("me", T0 + 5), T0 + 6, Verdict.TAKEOVER),  # ours but lapsed: win it again
    ],
)
def test_decide(lease, now, verdict):
    assert decide(lease, now, "me") is verdict


def test_lease_round_trips_and_garbage_is_none():
    lease = _lease("host:1:ab", T0 + 30)
    assert Lease.from_bytes(lease.to_bytes()) == lease
    assert Lease.from_bytes(b"not json") is None
    assert Lease.from_bytes(b'{"owner": "x"}') is None


# --- through stores -------------------------------------------------------------------------
@pytest.fixture(params=["local", "moto", "seaweedfs"])
def store(request, tmp_path) -> Iterator:
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
        return
    bucket = request.getfixturevalue(f"{request.param}_bucket")
    s3 = bucket.store()
    try:
        yield s3
    finally:
        s3.close()


def test_claim_renew_takeover_release(store):
    ttl = 30.0
    a = claim(store, JOB, "A", ttl_s=ttl, now=T0)
    assert a is not None and a.lease.expires_at == T0 + ttl and a.lapsed is None
    # B cannot take a live lease, at any time before it expires.
    assert claim(store, JOB, "B", ttl_s=ttl, now=T0 + 1) is None
    assert claim(store, JOB, "B", ttl_s=ttl, now=T0 + ttl - 0.01) is None
    # A renews; B is still kept out past the first term.
    a2 = renew(store, a, ttl_s=ttl, now=T0 + 10)
    assert a2.etag != a.etag
    assert claim(store, JOB, "B", ttl_s=ttl, now=T0 + ttl + 1) is None
    # After the renewed term, B takes over; A's next renewal finds out.
    b = claim(store, JOB, "B", ttl_s=ttl, now=T0 + 10 + ttl)
    assert b is not None
    # B took over a lease that ran out unreleased: it names it (A's attempt was cut off).
    assert b.lapsed is not None and b.lapsed.owner == "A" and b.lapsed.renewed_at == T0 + 10
    with pytest.raises(LeaseLost):
        renew(store, a2, ttl_s=ttl, now=T0 + 10 + ttl + 1)
    assert release(store, a2, now=T0 + 60) is False  # not A's to release
    lease, _, exists = read_lease(store, JOB)
    assert exists and lease.owner == "B" and not lease.released
    # B releases: A may claim again at once, long before B's term would end.
    assert release(store, b, now=T0 + 41) is True
    lease, _, _ = read_lease(store, JOB)
    assert lease.released
    again = claim(store, JOB, "A", ttl_s=ttl, now=T0 + 42)
    assert again is not None and again.lapsed is None  # a released lease tells of no loss


def test_an_unreadable_lease_counts_as_expired(store):
    store.put_bytes(keys.lease_key(JOB), b"\x00garbage")
    assert claim(store, JOB, "A", ttl_s=30, now=T0) is not None
    assert claim(store, JOB, "B", ttl_s=30, now=T0 + 1) is None


@pytest.mark.parametrize("store", ["local", "seaweedfs"], indirect=True)
def test_racing_claims_have_one_winner(store):
    """Eight threads claim one job at the same instant, three times over: one wins each
    round. (moto is left out: its condition check and write are not one atomic step.)"""
    for round_ in range(3):
        job = f"01JD3ZZZZZZZZZZZZZZZZZZZ{round_:02d}"
        barrier = threading.Barrier(8)
        winners: list[str] = []

        def contend(name: str, job=job, barrier=barrier, winners=winners) -> None:
            barrier.wait()
            if claim(store, job, name, ttl_s=30, now=T0) is not None:
                winners.append(name)

        threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1, winners
        lease, _, _ = read_lease(store, job)
        assert lease.owner == winners[0]
