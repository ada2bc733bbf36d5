"""The runner in-process, on a real local store with real leases. The analysis is replaced
by a small job function that writes manifests as run_job does (``runner_fakes``), so these
tests are quick and can hold a job at any point; the daemon tests run the real analysis."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from vidwatch.daemon.runner import Runner
from vidwatch.errors import QueueFull
from vidwatch.jobs.manifest import Manifest, read_manifest, write_manifest
from vidwatch.jobs.staging import JobSpec, new_job_id
from vidwatch.r2 import keys
from vidwatch.r2.leases import Lease, LeaseLost, read_lease
from vidwatch.r2.local import LocalStore

from .helpers import local_settings
from .runner_fakes import FakeJobs


def _settings(tmp_path: Path, **extra):
    return local_settings(
        tmp_path, {"LEASE_TTL_S": "2", "LEASE_RENEW_S": "0.5", "QUEUE_MAX": "20"}, **extra
    )


def _spec(settings, job_id: str | None = None) -> JobSpec:
    job_id = job_id or new_job_id()
    staged = Path(settings.temp_media_dir) / job_id / "input" / "source.mp4"
    return JobSpec(job_id=job_id, staged_source=staged, origin="inbox", filename="x.mp4")


def _runner(settings, store, jobs, **kw) -> Runner:
    runner = Runner(settings=settings, store=store, models=None, toon=None, job_fn=jobs, **kw)
    runner.start()
    return runner


def test_two_runners_on_one_store_run_each_job_once(tmp_path):
    settings = _settings(tmp_path, JOB_CONCURRENCY=2)
    store = LocalStore(settings.local_store_dir)
    jobs = FakeJobs(seconds=0.05)
    a = _runner(settings, store, jobs, owner="A")
    b = _runner(settings, store, jobs, owner="B")
    specs = [_spec(settings) for _ in range(10)]
    try:
        for spec in specs:  # both runners are offered every job, as two pollers would
            a.submit(spec)
            b.submit(JobSpec(**spec.__dict__))
        assert a.wait_idle(30) and b.wait_idle(30)
    finally:
        a.shutdown(5)
        b.shutdown(5)
    assert jobs.runs == Counter({s.job_id: 1 for s in specs})
    for spec in specs:
        assert read_manifest(store, spec.job_id).state == "completed"
        lease, _, _ = read_lease(store, spec.job_id)
        assert lease.released  # the next claimer need not wait out the term


def test_a_job_completed_elsewhere_is_not_run_again(tmp_path):
    settings = _settings(tmp_path)
    store = LocalStore(settings.local_store_dir)
    done = Manifest(job_id=new_job_id(), state="completed", stage="done")
    write_manifest(store, done)
    jobs = FakeJobs()
    runner = _runner(settings, store, jobs)
    try:
        runner.submit(_spec(settings, done.job_id))
        assert runner.wait_idle(10)
    finally:
        runner.shutdown(5)
    assert jobs.runs[done.job_id] == 0


@pytest.mark.expect_error_logs("runner_error")
def test_failed_and_crashing_jobs_do_not_stop_the_runner(tmp_path):
    settings = _settings(tmp_path)
    store = LocalStore(settings.local_store_dir)
    bad, buggy, good = (_spec(settings) for _ in range(3))
    jobs = FakeJobs(fail={bad.job_id}, crash={buggy.job_id})
    runner = _runner(settings, store, jobs)
    try:
        for spec in (bad, buggy, good):
            runner.submit(spec)
        assert runner.wait_idle(10)
        assert runner.alive()
    finally:
        runner.shutdown(5)
    assert read_manifest(store, bad.job_id).state == "failed"
    assert read_manifest(store, good.job_id).state == "completed"
    assert runner.health()["runner_alive"]


def test_queue_is_bounded_and_duplicates_are_ignored(tmp_path):
    settings = _settings(tmp_path, QUEUE_MAX=2)
    store = LocalStore(settings.local_store_dir)
    hold = threading.Event()
    jobs = FakeJobs(hold=hold)
    runner = _runner(settings, store, jobs)
    try:
        first = _spec(settings)
        assert runner.submit(first)
        assert jobs.started.wait(5)  # the worker holds the first job; the queue is empty
        second, third = _spec(settings), _spec(settings)
        assert runner.submit(second) and runner.submit(third)
        assert runner.submit(second) is False  # already queued: not twice
        assert not runner.has_room()
        with pytest.raises(QueueFull):
            runner.submit(_spec(settings))
        hold.set()
        assert runner.wait_idle(10)
    finally:
        hold.set()
        runner.shutdown(5)
    assert set(jobs.runs.values()) == {1} and len(jobs.runs) == 3


@pytest.mark.expect_error_logs("lease_lost")
def test_a_job_that_loses_its_lease_stops_and_writes_nothing_more(tmp_path):
    settings = _settings(tmp_path)
    store = LocalStore(settings.local_store_dir)
    jobs = FakeJobs(hold=threading.Event())  # runs until stopped
    runner = _runner(settings, store, jobs, owner="A")
    spec = _spec(settings)
    try:
        runner.submit(spec)
        assert jobs.started.wait(5)
        # Another worker takes the lease over (as after an expiry it would) and records
        # the job as its own.
        store.put_bytes(
            keys.lease_key(spec.job_id),
            b'{"job_id": "x", "owner": "B", "acquired_at": 0, "renewed_at": 0, "expires_at": 9e12}',
        )
        theirs = read_manifest(store, spec.job_id)
        theirs.stage = "scenes"
        write_manifest(store, theirs)
        assert runner.wait_idle(10)
    finally:
        runner.shutdown(5)
    # The first runner noticed at its next renewal, stopped, and its "queued" write was
    # refused: the other worker's manifest stands.
    assert jobs.write_errors and isinstance(jobs.write_errors[0], LeaseLost)
    assert read_manifest(store, spec.job_id).stage == "scenes"
    lease, _, _ = read_lease(store, spec.job_id)
    assert lease.owner == "B" and not lease.released


def test_shutdown_lets_a_short_job_finish(tmp_path):
    settings = _settings(tmp_path)
    store = LocalStore(settings.local_store_dir)
    jobs = FakeJobs(seconds=0.5)
    runner = _runner(settings, store, jobs)
    spec = _spec(settings)
    runner.submit(spec)
    assert jobs.started.wait(5)
    started = time.monotonic()
    runner.shutdown(grace_s=10)
    assert time.monotonic() - started < 5
    assert read_manifest(store, spec.job_id).state == "completed"


def test_shutdown_interrupts_a_long_job_after_the_grace_and_loses_nothing(tmp_path):
    settings = _settings(tmp_path)
    store = LocalStore(settings.local_store_dir)
    jobs = FakeJobs(hold=threading.Event())
    runner = _runner(settings, store, jobs)
    spec, waiting = _spec(settings), _spec(settings)
    runner.submit(spec)
    assert jobs.started.wait(5)
    runner.submit(waiting)
    started = time.monotonic()
    runner.shutdown(grace_s=0.5)
    took = time.monotonic() - started
    assert 0.5 <= took < 3
    assert read_manifest(store, spec.job_id).state == "queued"  # back in line
    lease, _, _ = read_lease(store, spec.job_id)
    assert lease.released  # whoever starts next takes it at once
    assert jobs.runs[waiting.job_id] == 0  # still waiting: left for the next start
    with pytest.raises(QueueFull):
        runner.submit(_spec(settings))


class _StuckRenewals(LocalStore):
    """A store whose lease writes, after the claim, hang as a renewal in a minute of retries
    would, until ``unstick`` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.claimed = False
        self.stuck = threading.Event()
        self.unstick = threading.Event()

    def put_bytes(self, key: str, data: bytes, **kwargs):
        if key.endswith("/lease.json") and self.claimed:
            self.stuck.set()
            self.unstick.wait(60)
        return super().put_bytes(key, data, **kwargs)


def test_stopping_a_lease_guard_does_not_wait_for_a_stuck_renewal(tmp_path):
    from vidwatch.r2.fenced import LEASE_STOP_WAIT_S, LeaseGuard
    from vidwatch.r2.leases import claim

    store = _StuckRenewals(tmp_path)
    job_id = new_job_id()
    held = claim(store, job_id, "A", ttl_s=30, now=time.time())
    store.claimed = True
    guard = LeaseGuard(store, held, ttl_s=30, renew_s=0.05, clock=time.time, on_lost=lambda: None)
    guard.start()
    try:
        assert store.stuck.wait(5)  # a renewal is in its retries
        stopper = threading.Thread(target=guard.stop)
        started = time.monotonic()
        stopper.start()
        stopper.join(LEASE_STOP_WAIT_S + 3)
        assert not stopper.is_alive(), "stop() waited for the stuck renewal"
        assert time.monotonic() - started < LEASE_STOP_WAIT_S + 1
        assert not guard.lost.is_set()
    finally:
        store.unstick.set()


def test_a_job_whose_renewal_is_stuck_at_its_end_frees_its_worker(tmp_path):
    settings = _settings(tmp_path, LEASE_RENEW_S="0.05", LEASE_TTL_S="30")
    store = _StuckRenewals(settings.local_store_dir)
    jobs = FakeJobs(hold=threading.Event())
    runner = _runner(settings, store, jobs)
    spec = _spec(settings)
    try:
        runner.submit(spec)
        assert jobs.started.wait(5)
        store.claimed = True
        assert store.stuck.wait(5)
        jobs.hold.set()  # the job ends while its lease keeper is stuck
        assert runner.wait_idle(8), "the worker waited for the stuck renewal"
        assert read_manifest(store, spec.job_id).state == "completed"
    finally:
        store.unstick.set()
        runner.shutdown(5)


@pytest.mark.parametrize("released", [False, True])
def test_an_attempt_that_lost_its_lease_before_its_first_write_is_counted(
    tmp_path, media, released
):
    """An attempt can lose its lease (the store gone for longer than LEASE_TTL_S) before its
    first status.json write lands, and writes after the loss are refused. The lease it held
    is all that is left of it: the next attempt, which takes that lease over once it ran out
    unreleased, records it as abandoned, with its worker. A released lease (the daemon put
    the job back) tells of no loss."""
    from vidwatch.detectors.registry import load_models
    from vidwatch.jobs.staging import stage_copy

    settings = _settings(tmp_path, DETECT_MODEL="none", SEGMENT_MODEL="none", FACES_ENABLED="false")
    store = LocalStore(settings.local_store_dir)
    job_id = new_job_id()
    now = time.time()
    store.put_bytes(
        keys.lease_key(job_id),
        Lease(
            job_id=job_id,
            owner="lost-host:4242:ab12cd34",
            acquired_at=now - 30,
            renewed_at=now - 20,
            expires_at=now - 18,
            released=released,
        ).to_bytes(),
    )
    staged = stage_copy(settings, job_id, media / "cuts_h264.mp4")
    spec = JobSpec(job_id=job_id, staged_source=staged, origin="inbox", filename="c.mp4")
    runner = Runner(settings=settings, store=store, models=load_models(settings), toon=None)
    runner.start()
    try:
        runner.submit(spec)
        assert runner.wait_idle(120)
    finally:
        runner.shutdown(5)
    status = read_manifest(store, job_id)
    assert status.state == "completed"
    if released:
        assert status.attempts == 1 and [h["outcome"] for h in status.attempt_history] == [
            "completed"
        ]
        assert not [w for w in status.warnings if w["code"] == "attempt_abandoned"]
        return
    assert status.attempts == 2
    first, second = status.attempt_history
    assert (first["attempt"], first["outcome"]) == (1, "abandoned")
    assert first["worker"] == {"host": "lost-host", "pid": 4242}
    assert (second["attempt"], second["outcome"]) == (2, "completed")
    abandoned = [w for w in status.warnings if w["code"] == "attempt_abandoned"]
    assert len(abandoned) == 1 and "lost-host:4242" in abandoned[0]["message"]
