"""Job leases: how several daemons on several hosts share one bucket without analysing a job
twice.

A lease is a small object, ``jobs/<job_id>/lease.json``, naming its owner and when it
expires. It is created with ``If-None-Match: *`` (only one creator wins), renewed with
``If-Match`` on the ETag the owner last wrote (a renewal fails once anyone else wrote), and
taken over, again with ``If-Match``, only after it expired or was released. R2, S3 and moto
support these writes; the local store makes them atomic with ``link()`` and a file lock.

Whether a lease may be taken is a pure function of the lease, the time and who asks
(``decide``); the rest is the three writes. Times are epoch seconds from the writer's clock,
so hosts sharing a bucket need synchronised clocks (NTP): a host whose clock runs ahead by
more than the lease's time to live could take a live lease over.

A lease is never deleted (R2 has no conditional delete, so a delete could remove somebody
else's fresh lease): releasing writes it back as expired, with ``If-Match``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectNotFound, ObjectStore, PreconditionFailed, StoreError
from vidwatch.times import utc_time


class LeaseLost(StoreError):
    """The lease was taken over or could not be renewed in time: stop writing for the job."""

    code = "lease_lost"


class Verdict(StrEnum):
    ACQUIRE = "acquire"
    """No lease exists: create one with If-None-Match."""
    TAKEOVER = "takeover"
    """The lease expired or was released: replace it with If-Match on its ETag."""
    RENEW = "renew"
    """The lease is ours: extend it with If-Match on its ETag."""
    WAIT = "wait"
    """Someone else holds a live lease: leave the job alone."""


@dataclass(frozen=True)
class Lease:
    job_id: str
    owner: str
    acquired_at: float
    renewed_at: float
    expires_at: float
    released: bool = False

    def to_bytes(self) -> bytes:
        doc = asdict(self)
        doc["expires"] = utc_time(self.expires_at)
        return json.dumps(doc).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Lease | None:
        """The lease in ``data``, or None when it is not one (then it counts as expired)."""
        try:
            doc = json.loads(data)
            return cls(
                job_id=str(doc["job_id"]),
                owner=str(doc["owner"]),
                acquired_at=float(doc["acquired_at"]),
                renewed_at=float(doc["renewed_at"]),
                expires_at=float(doc["expires_at"]),
                released=bool(doc.get("released", False)),
            )
        except (ValueError, KeyError, TypeError):
            return None


def decide(lease: Lease | None, now: float, owner: str) -> Verdict:
    """What ``owner`` may do with the job's lease at ``now`` (epoch seconds)."""
    if lease is None:
        return Verdict.ACQUIRE
    if lease.released or now >= lease.expires_at:
        return Verdict.TAKEOVER
    if lease.owner == owner:
        return Verdict.RENEW
    return Verdict.WAIT


def new_owner_id() -> str:
    """Unique per process start: a restarted daemon (same host, maybe the same pid in a
    container) must not mistake its predecessor's lease for its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_worker(owner: str) -> dict[str, str | int]:
    """The host and pid in an owner id of ``new_owner_id`` (status.json's ``worker``)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return {"host": host, "pid": int(pid) if pid.isdigit() else pid}


@dataclass(frozen=True)
class HeldLease:
    lease: Lease
    etag: str
    lapsed: Lease | None = None
    """The lease this claim took over when it had run out without being released: the
    attempt that held it stopped before its end (its daemon died, or lost the lease)."""


def read_lease(store: ObjectStore, job_id: str) -> tuple[Lease | None, str | None, bool]:
    """``(lease, etag, exists)``. HEAD comes before GET: if the object changes in between,
    the body read is the newer one and the ETag the older, so a takeover based on them fails
    its If-Match instead of replacing a lease just renewed."""
    key = keys.lease_key(job_id)
    info = store.head(key)
    if info is None:
        return None, None, False
    try:
        body = store.get_bytes(key)
    except ObjectNotFound:
        return None, None, False
    return Lease.from_bytes(body), info.etag, True


def claim(
    store: ObjectStore, job_id: str, owner: str, *, ttl_s: float, now: float
) -> HeldLease | None:
    """Take the job's lease for ``ttl_s`` seconds, or None when someone else holds it."""
    current, etag, exists = read_lease(store, job_id)
    verdict = decide(current, now, owner) if exists else Verdict.ACQUIRE
    if exists and current is None:
        verdict = Verdict.TAKEOVER  # an unreadable lease object counts as expired
    if verdict is Verdict.WAIT:
        return None
    lease = Lease(
        job_id=job_id, owner=owner, acquired_at=now, renewed_at=now, expires_at=now + ttl_s
    )
    try:
        if verdict is Verdict.ACQUIRE:
            info = store.put_bytes(
                keys.lease_key(job_id),
                lease.to_bytes(),
                content_type="application/json",
                if_none_match=True,
            )
        else:
            info = store.put_bytes(
                keys.lease_key(job_id),
                lease.to_bytes(),
                content_type="application/json",
                if_match=etag,
            )
    except PreconditionFailed:
        return None
    # Read our claim back: a store whose condition check and write are not one atomic step
    # (moto) can let two racing claims both "win"; only the one whose write stayed proceeds.
    after = store.head(keys.lease_key(job_id))
    if after is None or after.etag.strip('"') != info.etag.strip('"'):
        return None
    lapsed = current if verdict is Verdict.TAKEOVER and current and not current.released else None
    return HeldLease(lease=lease, etag=info.etag, lapsed=lapsed)


def renew(store: ObjectStore, held: HeldLease, *, ttl_s: float, now: float) -> HeldLease:
    """Extend the lease; LeaseLost when anyone else wrote it since."""
    lease = replace(held.lease, renewed_at=now, expires_at=now + ttl_s)
    try:
        info = store.put_bytes(
            keys.lease_key(lease.job_id),
            lease.to_bytes(),
            content_type="application/json",
            if_match=held.etag,
        )
    except PreconditionFailed:
        raise LeaseLost(f"lease of job {lease.job_id} was taken over") from None
    return HeldLease(lease=lease, etag=info.etag)


def release(store: ObjectStore, held: HeldLease, *, now: float) -> bool:
    """Mark the lease expired so the next claimer need not wait out its time to live.
    False when it was no longer ours (nothing is written then)."""
    lease = replace(held.lease, renewed_at=now, expires_at=now, released=True)
    try:
        store.put_bytes(
            keys.lease_key(lease.job_id),
            lease.to_bytes(),
            content_type="application/json",
            if_match=held.etag,
        )
    except PreconditionFailed:
        return False
    return True
