"""What a bucket poll, a restart and a full sweep cost, counted as the bucket bills them: a
botocore ``before-call`` hook of the test's own on the store's S3 client counts every
request (moto and SeaweedFS on loopback). The scanner's own counts (its metrics) are checked
against the test's."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ulid import ULID

from vidwatch import metrics
from vidwatch.daemon.intake_bucket import ORPHAN_MARKER_GRACE_S
from vidwatch.daemon.retention import Retention
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.r2 import keys

from .helpers import Submitted, local_settings, make_scanner, running_with_lease

DAY_S = 24 * 3600.0


def _settings(tmp_path: Path, **extra):
    return local_settings(
        tmp_path,
        {"BUCKET_POLL_S": "0.5", "BUCKET_WINDOW_S": "1800", "BUCKET_SWEEP_READS_PER_S": "0"},
        **extra,
    )


class Requests:
    """Every request the store's client makes while counting, by operation."""

    def __init__(self, store) -> None:
        self.by_op: Counter[str] = Counter()
        self.on = False
        self._lock = threading.Lock()
        store.client.meta.events.register("before-call.s3", self._count)

    def _count(self, model=None, **_):
        if self.on:
            with self._lock:
                self.by_op[model.name] += 1

    def __enter__(self):
        self.by_op.clear()
        self.on = True
        return self

    def __exit__(self, *exc):
        self.on = False

    @property
    def lists(self) -> int:
        return self.by_op["ListObjectsV2"]

    @property
    def reads(self) -> int:
        return self.by_op["GetObject"] + self.by_op["HeadObject"]


def _id_at(epoch_s: float) -> str:
    return str(ULID.from_timestamp(epoch_s))


def _finished_doc(job_id: str) -> bytes:
    return json.dumps(
        Manifest(job_id=job_id, state="completed", stage="done", origin="bucket").to_json()
    ).encode()


def seed_finished(bucket, ids: list[str]) -> None:
    """Finished job folders as a poll or a sweep sees them: a status.json each (the folder's
    other objects are never read), put 16 at a time."""
    client = bucket.client()
    try:
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda j: client.put_object(
                        Bucket=bucket.name, Key=keys.status_key(j), Body=_finished_doc(j)
                    ),
                    ids,
                )
            )
    finally:
        client.close()


def _old_ids(n: int, now: float) -> list[str]:
    """Ids spread over the last week, all older than a day (outside any window)."""
    return [_id_at(now - DAY_S - (6 * DAY_S) * i / n) for i in range(n)]


def _upload(store, job_id: str) -> None:
    store.put_bytes(keys.source_key(job_id, "mp4"), b"video")


def _crashed_job(store, job_id: str, *, marker: bool) -> None:
    """A job that was running when its host died: source, manifest, an expired lease."""
    _upload(store, job_id)
    write_manifest(
        store,
        Manifest(
            job_id=job_id,
            state="queued",
            origin="inbox",
            source_key=keys.source_key(job_id, "mp4"),
        ),
    )  # intake: marker, then manifest
    running_with_lease(store, job_id, "dead-host", claimed_at=time.time() - 120)
    if not marker:
        store.delete(keys.pending_key(job_id))


# --- polls --------------------------------------------------------------------------------
def test_an_idle_poll_costs_two_lists_and_no_read_whatever_the_bucket_holds(s3_bucket, tmp_path):
    settings = _settings(tmp_path)
    store = s3_bucket.store()
    now = time.time()
    calls = Requests(store)
    seed_finished(s3_bucket, [*_old_ids(3, now), _id_at(now - 60)])
    with calls:
        make_scanner(settings, store, Submitted()).poll_once(startup=True)
    small_restart = dict(calls.by_op)

    # 1,500 more finished folders outside the window (more than one listing page), and 20
    # made in the last half hour.
    recent = [_id_at(now - 1500 + i) for i in range(20)]
    seed_finished(s3_bucket, _old_ids(1500, now) + recent)
    sub = Submitted()
    scanner = make_scanner(settings, store, sub)
    with calls:
        assert scanner.poll_once(startup=True) == 0
    restart = dict(calls.by_op)
    # The restart reads the record of ended jobs (none yet: no sweep ran) and each folder
    # of the window once (21 here), nothing older.
    assert calls.lists == 2 and calls.by_op["GetObject"] == 1 + 21, restart
    for _ in range(3):
        with calls:
            assert scanner.poll_once() == 0
        assert calls.lists <= 2 and calls.reads == 0, dict(calls.by_op)
        assert sum(calls.by_op.values()) == calls.lists
        assert scanner.last_poll.calls.as_dict() == {"list": calls.lists}
        assert scanner.last_poll.folders == 21
    sample = metrics.REGISTRY.get_sample_value
    assert sample("vidwatch_bucket_poll_store_calls", {"op": "list"}) == calls.lists
    assert sample("vidwatch_bucket_poll_store_calls", {"op": "get"}) == 0
    assert sample("vidwatch_bucket_pending_markers") == 0
    assert sample("vidwatch_bucket_poll_seconds_count") >= 5
    print(f"{s3_bucket.server.name}: restart of 4 folders {small_restart}, of 1,524 {restart}")
    store.close()


def test_a_restart_reads_the_pending_jobs_and_a_constant(moto_bucket, tmp_path):
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    now = time.time()
    seed_finished(moto_bucket, _old_ids(1050, now))
    pending = [_id_at(now - 3 * DAY_S + i) for i in range(4)]  # old ids: no window sees them
    for job_id in pending:
        _crashed_job(store, job_id, marker=True)
    calls = Requests(store)
    sub = Submitted()
    with calls:
        assert make_scanner(settings, store, sub).poll_once(startup=True) == 4
    assert set(sub.specs) == set(pending)
    # The record of ended jobs; per pending job: its manifest, its lease (HEAD + GET), its
    # source (HEAD).
    assert calls.by_op["GetObject"] <= 1 + 2 * len(pending), dict(calls.by_op)
    assert calls.reads <= 1 + 4 * len(pending) and calls.lists == 2, dict(calls.by_op)
    store.close()


def test_a_new_upload_is_taken_within_the_poll_interval(moto_bucket, tmp_path):
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    seed_finished(moto_bucket, _old_ids(50, time.time()))
    sub = Submitted()
    scanner = make_scanner(settings, store, sub)
    polls: list[tuple[float, set[str]]] = []  # (start, submitted) of each poll
    real_poll = scanner.poll_once

    def recorded_poll(**kw):
        started = time.monotonic()
        n = real_poll(**kw)
        polls.append((started, set(scanner.last_found)))
        return n

    scanner.poll_once = recorded_poll
    scanner.poll_once(startup=True)
    scanner.start(sweep=False)
    try:
        for _ in range(3):
            job_id = _id_at(time.time())
            _upload(store, job_id)
            put_at = time.monotonic()
            deadline = put_at + 10
            while time.monotonic() < deadline and not any(job_id in f for _, f in polls):
                time.sleep(0.02)
            assert job_id in sub.at, "the upload was not taken"
            assert sub.specs[job_id].origin == "bucket"
            assert store.head(keys.pending_key(job_id)) is not None  # marked when found
            # Taken by the first poll that started after the upload; polls start
            # BUCKET_POLL_S after the previous one ended.
            after = [found for started, found in polls if started >= put_at]
            assert after and job_id in after[0], (put_at, polls[-3:])
            assert sub.at[job_id] - put_at <= settings.bucket_poll_s + 2.0
    finally:
        scanner.stop()
    store.close()


# --- full sweeps -----------------------------------------------------------------------------
def test_an_upload_under_an_old_id_is_taken_by_the_next_full_sweep(moto_bucket, tmp_path):
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    now = time.time()
    seed_finished(moto_bucket, _old_ids(30, now))
    old = _id_at(now - 2 * settings.bucket_window_s)
    _upload(store, old)
    sub = Submitted()
    scanner = make_scanner(settings, store, sub)
    assert scanner.poll_once(startup=True) == 0 and scanner.poll_once() == 0
    calls = Requests(store)
    with calls:
        report = scanner.sweep_once()
    assert report.submitted == 1 and set(sub.specs) == {old}
    assert sub.specs[old].origin == "bucket"
    assert report.folders == 31 and report.calls.as_dict() == {
        op: n
        for op, n in {
            "list": calls.lists,
            "get": calls.by_op["GetObject"],
            "head": calls.by_op["HeadObject"],
            "put": calls.by_op["PutObject"],
        }.items()
        if n
    }
    # Every folder's manifest (the upload has none), and the record of ended jobs once,
    # just before the sweep writes it.
    assert calls.by_op["GetObject"] == 31 + 1, dict(calls.by_op)
    assert store.head(keys.pending_key(old)) is not None
    # The next sweep reads no manifest of a job it saw end.
    sub.specs.clear()
    with calls:
        again = scanner.sweep_once()
    assert again.submitted == 0 and calls.by_op["GetObject"] == 0, dict(calls.by_op)
    store.close()


def test_a_marker_lost_to_a_crash_does_not_lose_its_job(moto_bucket, tmp_path):
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    now = time.time()
    seed_finished(moto_bucket, _old_ids(20, now))
    lost = _id_at(now - 2 * DAY_S)
    _crashed_job(store, lost, marker=False)
    sub = Submitted()
    scanner = make_scanner(settings, store, sub)
    assert scanner.poll_once(startup=True) == 0  # neither marked nor in the window
    report = scanner.sweep_once()
    assert report.submitted == 1 and sub.specs[lost].origin == "inbox"
    assert report.markers_written == 1 and store.head(keys.pending_key(lost)) is not None
    # From now on a restart finds it by its marker (say the run was cut short again).
    restarted = Submitted()
    assert make_scanner(settings, store, restarted).poll_once(startup=True) == 1
    assert set(restarted.specs) == {lost}
    store.close()


def test_a_restart_after_a_sweep_reads_only_the_pending_jobs(s3_bucket, tmp_path):
    """Ended jobs are remembered across restarts: the sweep (and a stop) write their ids
    into the store, and a restart's first poll and first sweep read no finished folder."""
    settings = _settings(tmp_path)
    store = s3_bucket.store()
    now = time.time()
    seed_finished(s3_bucket, _old_ids(1050, now) + [_id_at(now - 600 + i) for i in range(20)])
    pending = [_id_at(now - 3 * DAY_S + i) for i in range(3)]
    for job_id in pending:
        _crashed_job(store, job_id, marker=True)
    first = make_scanner(settings, store, Submitted())
    first.poll_once(startup=True)
    first_sweep = first.sweep_once(paced=False)
    # A first start knows nothing: the poll read the window's 20, the sweep every other.
    assert first_sweep.inspected == 1050
    # One of the jobs ends in this process's runner after the sweep; the stop records it.
    ended = pending.pop()
    write_manifest(store, Manifest(job_id=ended, state="completed", stage="done"))
    first.note_ended(ended)
    first.stop()
    assert store.head(keys.ENDED_RECORD_KEY) is not None

    calls = Requests(store)
    sub = Submitted()
    restarted = make_scanner(settings, store, sub)
    with calls:
        assert restarted.poll_once(startup=True) == len(pending)
        sweep = restarted.sweep_once(paced=False)
    assert set(sub.specs) == set(pending)
    assert sweep.folders == 1073 and sweep.inspected == 0, restarted._summary(sweep)
    # The record (one GET), then per pending job its manifest and its lease.
    assert calls.by_op["GetObject"] <= 1 + 2 * len(pending), dict(calls.by_op)
    assert calls.reads <= 1 + 4 * len(pending), dict(calls.by_op)
    assert calls.by_op["PutObject"] == 0, dict(calls.by_op)  # the record was current
    # An idle poll after it: two lists, nothing read.
    with calls:
        restarted.poll_once()
    assert calls.lists <= 2 and calls.reads == 0, dict(calls.by_op)
    store.close()


def test_the_record_drops_expired_jobs_and_jobs_queued_again(moto_bucket, tmp_path):
    from vidwatch.r2.ended import merge, read_ended

    a, b, c, late = (_id_at(time.time() - DAY_S + i) for i in range(4))
    assert merge({a, b}, {c}, not_ended={b}) == {a, c}
    assert merge({a, b}, {c}, listed={a, c}, newer_than=c) == {a, c}
    assert merge({a}, {late}, listed={a}, newer_than=c) == {a, late}  # made after listing

    settings = _settings(tmp_path)
    store = moto_bucket.store()
    seed_finished(moto_bucket, [a, b])
    scanner = make_scanner(settings, store, Submitted())
    scanner.sweep_once(paced=False)
    assert read_ended(store) == {a, b}
    # b is queued again (its marker first, as every intake writes it); a expires.
    write_manifest(store, Manifest(job_id=b, origin="api"))
    store.delete(keys.status_key(a))
    again = make_scanner(settings, store, Submitted())
    again.poll_once(startup=True)
    again.sweep_once(paced=False)
    assert read_ended(store) == frozenset()
    store.close()


def test_a_sweep_reads_concurrently_at_its_pace(moto_bucket, tmp_path):
    store = moto_bucket.store()
    now = time.time()
    seed_finished(moto_bucket, _old_ids(60, now))
    paced = _settings(tmp_path, BUCKET_SWEEP_READS_PER_S="100", BUCKET_SWEEP_CONCURRENCY="4")
    scanner = make_scanner(paced, store, Submitted())
    active, peak = [0], [0]
    lock = threading.Lock()
    real = scanner.examine

    def counting_examine(job_id):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.02)
            return real(job_id)
        finally:
            with lock:
                active[0] -= 1

    scanner.examine = counting_examine
    report = scanner.sweep_once()
    assert report.inspected == 60
    assert report.seconds >= 0.58  # 60 reads at 100 a second
    assert 2 <= peak[0] <= 4, peak
    store.close()


# --- markers --------------------------------------------------------------------------------
def test_markers_follow_the_job_and_stale_ones_are_deleted(moto_bucket, tmp_path):
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    job_id = _id_at(time.time() - DAY_S)
    manifest = Manifest(job_id=job_id, origin="api")
    write_manifest(store, manifest)
    assert store.head(keys.pending_key(job_id)) is not None
    manifest.state = "completed"
    write_manifest(store, manifest)
    assert store.head(keys.pending_key(job_id)) is None

    # A crash between the last manifest and the marker's delete: the next poll deletes it.
    store.put_bytes(keys.pending_key(job_id), b"{}")
    # A marker whose job has nothing in the store (expired, or an intake cut short).
    orphan = _id_at(time.time() - DAY_S)
    store.put_bytes(keys.pending_key(orphan), b"{}")
    sub = Submitted()
    assert make_scanner(settings, store, sub).poll_once() == 0
    assert store.head(keys.pending_key(job_id)) is None
    assert store.head(keys.pending_key(orphan)) is not None  # too young to judge
    later = make_scanner(
        settings, store, sub, clock=lambda: time.time() + ORPHAN_MARKER_GRACE_S + 5
    )
    later.poll_once()
    assert store.head(keys.pending_key(orphan)) is None
    store.close()


def test_a_marker_without_a_job_is_swept_within_minutes_not_an_hour(moto_bucket, tmp_path):
    """A refused upload's marker whose delete was lost (or an intake cut short between its
    marker and its manifest): no manifest, no source, nothing staged. The first poll two
    and a half minutes later deletes it; until then polls read it (it may be an intake in
    progress)."""
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    refused = _id_at(time.time())
    store.put_bytes(keys.pending_key(refused), b'{"origin": "api"}')
    assert make_scanner(settings, store, Submitted()).poll_once() == 0
    assert store.head(keys.pending_key(refused)) is not None  # an intake may be under way
    later = make_scanner(settings, store, Submitted(), clock=lambda: time.time() + 150)
    later.poll_once()
    assert store.head(keys.pending_key(refused)) is None
    store.close()


# --- retention ------------------------------------------------------------------------------
def test_retention_on_a_bucket_lists_nothing(moto_bucket, tmp_path):
    settings = _settings(tmp_path)
    store = moto_bucket.store()
    seed_finished(moto_bucket, _old_ids(30, time.time()))
    retention = Retention(settings, store)
    # The first pass of a day also prunes the people library (one listing of jobs/ and of
    # library/people/, docs/people-library.md); every other pass lists nothing.
    retention.run()
    calls = Requests(store)
    with calls:
        retention.run()
    assert calls.lists == 0 and calls.reads == 0, dict(calls.by_op)
    store.close()


@pytest.mark.parametrize("days", [7])
def test_retention_on_the_local_store_looks_only_at_folders_old_enough(tmp_path, days):
    from vidwatch.r2.local import LocalStore

    settings = _settings(tmp_path, R2_RETENTION_DAYS=days)
    store = LocalStore(settings.local_store_dir)
    now = time.time()
    young = [_id_at(now - DAY_S * d) for d in (0.1, 1, 6.9)]
    old = _id_at(now - DAY_S * (days + 1))
    for job_id in [*young, old]:
        store.put_bytes(keys.status_key(job_id), _finished_doc(job_id))
    looked = []
    real_list = store.list

    def watching(prefix):
        looked.append(prefix)
        return real_list(prefix)

    store.list = watching
    Retention(settings, store).run(now=now)
    assert [p for p in looked if p.startswith(keys.JOBS_PREFIX)] == [keys.job_prefix(old)]
    store.close()


# --- ids and settings -----------------------------------------------------------------------
def test_job_id_floor_orders_ids_by_their_time():
    now = time.time()
    ids = [_id_at(now - s) for s in (7200, 1801, 1799, 60, 0)]
    floor = keys.job_id_floor(now - 1800)
    assert keys.is_job_id(floor)
    assert [j > floor for j in ids] == [False, False, True, True, True]
    for job_id, s in zip(ids, (7200, 1801, 1799, 60, 0), strict=True):
        assert abs(keys.job_id_time(job_id) - (now - s)) < 0.002


def test_a_window_shorter_than_two_polls_is_refused(tmp_path):
    from vidwatch.config import ConfigError

    with pytest.raises(ConfigError, match="BUCKET_WINDOW_S"):
        _settings(tmp_path, BUCKET_POLL_S=600, BUCKET_WINDOW_S=900)
