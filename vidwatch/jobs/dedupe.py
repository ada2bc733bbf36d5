"""One analysis per content: the content key, the index in the store, Idempotency-Key records.

A job's content key is the sha256 over its source's sha256, every setting declared to change
results (``vidwatch.config.settings.result_settings``: sample rate, thresholds, scene and face
identity settings, faces on/off, JPEG quality, TOON on/off), each model's name and weights
sha256, and vidwatch's version. ``index/content/<key>.json``
names the job that analyses (``running``), analysed (``completed``) or failed that content.
It is claimed with a conditional write (If-None-Match for a new key, If-Match to take over a
stale one), so inbox, bucket and API jobs, restarted daemons and several daemons on one
bucket agree on one analysis.

``decide_claim`` is the pure rule; ``ContentIndex.claim`` applies it with the store's
answers. A job that finds the content:

- completed, its results.json still there: it is a duplicate of that job;
- being analysed by a job whose lease is live: it waits for that job;
- failed, gone, or with a job that is no longer running anywhere: it takes the key over and
  analyses itself.

``Idempotency-Key`` records (``index/idempotency/<sha256 of the key>.json``) map a client's
key to the job and the bytes it was first used with, for 24 hours.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vidwatch import __version__
from vidwatch.config import Settings
from vidwatch.config.settings import result_settings
from vidwatch.jobs.manifest import read_manifest
from vidwatch.r2 import keys
from vidwatch.r2.leases import Verdict, decide, read_lease
from vidwatch.r2.store import ObjectNotFound, ObjectStore, PreconditionFailed

INDEX_PREFIX = "index/content/"
IDEMPOTENCY_PREFIX = "index/idempotency/"
IDEMPOTENCY_TTL_S = 24 * 3600.0
CLAIM_TRIES = 8
REANALYZE_MARKER = ".reanalyze."
"""An inbox file named ``<name>.reanalyze.<ext>`` is analysed afresh."""
REANALYZE_METADATA = "reanalyze"
"""A bucket source uploaded with the metadata ``reanalyze: true`` is analysed afresh."""


def content_key(
    source_sha256: str, settings: Settings, models: Mapping[str, Mapping[str, Any]]
) -> str:
    """sha256 of the source's sha256 and the result-changing settings; ``models`` maps each
    role to its provenance (``name``, ``sha256``)."""
    payload = {
        "v": 2,
        "source_sha256": source_sha256,
        "vidwatch": __version__,
        "settings": result_settings(settings),
        "models": {
            role: {"name": info.get("name"), "sha256": info.get("sha256")}
            for role, info in sorted(models.items())
        },
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def index_key(key: str) -> str:
    return f"{INDEX_PREFIX}{key}.json"


@dataclass(frozen=True)
class Claim:
    outcome: str  # claimed | duplicate | wait
    original: str | None = None
    etag: str | None = None


def decide_claim(
    entry: Mapping[str, Any],
    job_id: str,
    *,
    original_state: str | None,
    results_exist: bool,
    original_running: bool,
) -> str:
    """What a job does about an index entry naming another job (or itself):
    ``duplicate``, ``wait`` or ``takeover``. ``original_state`` is the named job's
    status.json state (None when it has none), ``original_running`` whether its lease is
    live."""
    if entry.get("job_id") == job_id:
        return "takeover"  # ours: a resumed run of the same job
    state = entry.get("state")
    if state == "completed" or original_state == "completed":
        return "duplicate" if results_exist else "takeover"
    if state == "failed" or original_state == "failed":
        return "takeover"
    # Its lease says whether it is being analysed anywhere now (a job holds its lease
    # before it claims the content).
    return "wait" if original_running else "takeover"


class ContentIndex:
    def __init__(self, store: ObjectStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def _entry(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        info = self.store.head(index_key(key))
        if info is None:
            return None, None
        try:
            return json.loads(self.store.get_bytes(index_key(key))), info.etag
        except ObjectNotFound:
            return None, None
        except ValueError:
            return {}, info.etag  # unreadable: taken over

    def _body(self, job_id: str, state: str) -> bytes:
        return json.dumps(
            {"job_id": job_id, "state": state, "updated_at": self.clock()}, indent=1
        ).encode()

    def _running(self, job_id: str) -> bool:
        lease, _, exists = read_lease(self.store, job_id)
        if not exists or lease is None:
            return False
        # Held by anyone (another daemon, or a worker of this one) and not run out.
        return decide(lease, self.clock(), owner="") is Verdict.WAIT

    def claim(self, key: str, job_id: str, *, force: bool = False) -> Claim:
        """Claim the content for ``job_id``, or learn that it is a duplicate or must wait.
        ``force`` (re-analysis asked for): claim whatever the entry says."""
        for _ in range(CLAIM_TRIES):
            entry, etag = self._entry(key)
            if entry is None:
                try:
                    info = self.store.put_bytes(
                        index_key(key),
                        self._body(job_id, "running"),
                        content_type="application/json",
                        if_none_match=True,
                    )
                    return Claim("claimed", etag=info.etag)
                except PreconditionFailed:
                    continue
            original = str(entry.get("job_id") or "")
            verdict = "takeover"
            if not force and keys.is_job_id(original):
                manifest = read_manifest(self.store, original) if original != job_id else None
                verdict = decide_claim(
                    entry,
                    job_id,
                    original_state=manifest.state if manifest else None,
                    results_exist=self.store.head(keys.results_key(original)) is not None,
                    original_running=original != job_id and self._running(original),
                )
            if verdict == "duplicate":
                return Claim("duplicate", original=original)
            if verdict == "wait":
                return Claim("wait", original=original)
            try:
                info = self.store.put_bytes(
                    index_key(key),
                    self._body(job_id, "running"),
                    content_type="application/json",
                    if_match=etag,
                )
                return Claim("claimed", etag=info.etag)
            except PreconditionFailed:
                continue
        return Claim("wait", original=None)

    def settle(self, key: str, job_id: str, state: str, etag: str | None) -> None:
        """Record the claimed analysis' end (``completed`` or ``failed``); a key taken over
        meanwhile (our lease ran out) is left to its new holder."""
        try:
            self.store.put_bytes(
                index_key(key),
                self._body(job_id, state),
                content_type="application/json",
                if_match=etag,
            )
        except PreconditionFailed:
            entry, _ = self._entry(key)
            if entry is not None and entry.get("job_id") == job_id:
                self.store.put_bytes(
                    index_key(key), self._body(job_id, state), content_type="application/json"
                )


# --- Idempotency-Key ------------------------------------------------------------------------------
def idempotency_key(client_key: str) -> str:
    return f"{IDEMPOTENCY_PREFIX}{hashlib.sha256(client_key.encode()).hexdigest()}.json"


@dataclass(frozen=True)
class Idempotent:
    outcome: str  # new | replay | conflict
    job_id: str


def remember_idempotency(
    store: ObjectStore, client_key: str, *, job_id: str, sha256: str, now: float
) -> Idempotent:
    """Bind ``client_key`` to (``job_id``, ``sha256``) unless it is bound already within
    24 h: then ``replay`` (same bytes: the earlier job) or ``conflict`` (other bytes)."""
    key = idempotency_key(client_key)
    body = json.dumps({"job_id": job_id, "sha256": sha256, "created_at": now}).encode()
    for _ in range(CLAIM_TRIES):
        info = store.head(key)
        if info is None:
            try:
                store.put_bytes(key, body, content_type="application/json", if_none_match=True)
                return Idempotent("new", job_id)
            except PreconditionFailed:
                continue
        try:
            doc = json.loads(store.get_bytes(key))
        except ObjectNotFound:
            continue
        except ValueError:
            doc = {}
        if now - float(doc.get("created_at") or 0) < IDEMPOTENCY_TTL_S and keys.is_job_id(
            str(doc.get("job_id"))
        ):
            outcome = "replay" if doc.get("sha256") == sha256 else "conflict"
            return Idempotent(outcome, str(doc["job_id"]))
        try:  # expired: the key is free again
            store.put_bytes(key, body, content_type="application/json", if_match=info.etag)
            return Idempotent("new", job_id)
        except PreconditionFailed:
            continue
    raise PreconditionFailed(f"Idempotency-Key record {key} keeps changing")


def forget_idempotency(store: ObjectStore, client_key: str, job_id: str) -> None:
    """Undo ``remember_idempotency`` for a job that was not accepted after all."""
    key = idempotency_key(client_key)
    try:
        doc = json.loads(store.get_bytes(key))
    except (ObjectNotFound, ValueError):
        return
    if doc.get("job_id") == job_id:
        store.delete(key)
