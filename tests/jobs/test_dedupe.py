"""One analysis per content: the content key, the claim rule, the index and Idempotency-Key
records on a real local store (conditional writes), with fixed times."""

from __future__ import annotations

import json
import threading
import time

import pytest

from vidwatch.config import load_settings
from vidwatch.jobs.dedupe import (
    IDEMPOTENCY_TTL_S,
    ContentIndex,
    content_key,
    decide_claim,
    forget_idempotency,
    index_key,
    remember_idempotency,
)
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.leases import claim as claim_lease
from vidwatch.r2.local import LocalStore

MODELS = {"detect": {"name": "a.pt", "sha256": "11"}, "segment": {"name": "b.pt", "sha256": "22"}}


def test_the_content_key_follows_bytes_models_and_result_changing_settings_only():
    base = load_settings({})
    key = content_key("ab" * 32, base, MODELS)
    assert key == content_key("ab" * 32, load_settings({"HTTP_PORT": "9000"}), MODELS)
    assert key == content_key("ab" * 32, load_settings({"JOB_CONCURRENCY": "4"}), MODELS)
    assert key != content_key("cd" * 32, base, MODELS)
    assert key != content_key("ab" * 32, load_settings({"SAMPLE_FPS": "2"}), MODELS)
    assert key != content_key("ab" * 32, load_settings({"OBJECT_MIN_CONFIDENCE": "0.5"}), MODELS)
    assert key != content_key("ab" * 32, load_settings({"FACES_ENABLED": "false"}), MODELS)
    other = {**MODELS, "detect": {"name": "a.pt", "sha256": "99"}}
    assert key != content_key("ab" * 32, base, other)


@pytest.mark.parametrize(
    ("entry_state", "original_state", "results", "running", "verdict"),
    [
        ("completed", "completed", True, False, "duplicate"),
        ("completed", "completed", False, False, "takeover"),  # results expired
        ("running", "completed", True, False, "duplicate"),  # index not updated yet
        ("running", "running", False, True, "wait"),
        ("running", "queued", False, True, "wait"),
        ("running", "running", False, False, "takeover"),  # crashed, lease ran out
        ("running", "queued", False, False, "takeover"),  # stopped, lease released
        ("running", None, False, False, "takeover"),  # no manifest any more
        ("running", None, False, True, "wait"),  # leased, manifest not written yet
        ("failed", "failed", False, False, "takeover"),
    ],
)
def test_claim_rule(entry_state, original_state, results, running, verdict):
    entry = {"job_id": "A", "state": entry_state}
    assert (
        decide_claim(
            entry,
            "B",
            original_state=original_state,
            results_exist=results,
            original_running=running,
        )
        == verdict
    )
    assert (
        decide_claim(entry, "A", original_state=None, results_exist=False, original_running=True)
        == "takeover"
    )


def _finish(store, job_id, state="completed"):
    write_manifest(store, Manifest(job_id=job_id, state=state))
    if state == "completed":
        store.put_bytes(keys.results_key(job_id), b"{}")


def test_index_claims_waits_and_duplicates_on_a_store(tmp_path):
    store = LocalStore(tmp_path / "store")
    index = ContentIndex(store, clock=lambda: 1000.0)
    a, b, c = new_job_id(), new_job_id(), new_job_id()
    first = index.claim("k", a)
    assert first.outcome == "claimed"
    write_manifest(store, Manifest(job_id=a, state="running"))
    claim_lease(store, a, "host-a", ttl_s=30, now=1000.0)
    assert index.claim("k", b).outcome == "wait"
    assert index.claim("k", a).outcome == "claimed"  # a resumed run of the same job
    _finish(store, a)
    index.settle("k", a, "completed", None)
    dup = index.claim("k", b)
    assert (dup.outcome, dup.original) == ("duplicate", a)
    forced = index.claim("k", c, force=True)
    assert forced.outcome == "claimed"
    assert json.loads(store.get_bytes(index_key("k")))["job_id"] == c


def test_a_failed_or_dead_original_is_taken_over(tmp_path):
    store = LocalStore(tmp_path / "store")
    index = ContentIndex(store, clock=lambda: 1000.0)
    a, b, c = new_job_id(), new_job_id(), new_job_id()
    held = index.claim("k", a)
    write_manifest(store, Manifest(job_id=a, state="running"))  # no lease: it crashed
    assert index.claim("k", b).outcome == "claimed"
    index.settle("k", a, "failed", held.etag)  # a's late end does not undo b's claim
    assert json.loads(store.get_bytes(index_key("k")))["job_id"] == b
    _finish(store, b, "failed")
    index.settle("k", b, "failed", None)
    assert index.claim("k", c).outcome == "claimed"


def test_racing_claims_have_one_winner(tmp_path):
    store = LocalStore(tmp_path / "store")
    jobs = [new_job_id() for _ in range(8)]
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(len(jobs))

    def go(job_id):
        claim_lease(store, job_id, f"worker-{job_id}", ttl_s=30, now=time.time())  # as runners do
        barrier.wait()
        outcomes[job_id] = ContentIndex(store).claim("k", job_id).outcome

    threads = [threading.Thread(target=go, args=(j,)) for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert list(outcomes.values()).count("claimed") == 1, outcomes


def test_idempotency_records(tmp_path):
    store = LocalStore(tmp_path / "store")
    a, b = new_job_id(), new_job_id()
    assert remember_idempotency(store, "key-1", job_id=a, sha256="s1", now=0).outcome == "new"
    replay = remember_idempotency(store, "key-1", job_id=b, sha256="s1", now=3600)
    assert (replay.outcome, replay.job_id) == ("replay", a)
    conflict = remember_idempotency(store, "key-1", job_id=b, sha256="s2", now=3600)
    assert (conflict.outcome, conflict.job_id) == ("conflict", a)
    later = remember_idempotency(store, "key-1", job_id=b, sha256="s2", now=IDEMPOTENCY_TTL_S)
    assert (later.outcome, later.job_id) == ("new", b)  # 24 h on, the key is free again
    forget_idempotency(store, "key-1", b)
    assert remember_idempotency(store, "key-1", job_id=a, sha256="s3", now=0).outcome == "new"
