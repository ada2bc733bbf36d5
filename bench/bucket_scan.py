"""What a bucket poll, a restart and a full sweep cost as the bucket grows, on SeaweedFS.

    python -m bench.bucket_scan [--sizes 10000 100000] [--pending 5] [--seed-workers 64]
                                [--sequential-max 10000] [--json PATH]

For each size a fresh bucket gets that many finished job folders, with ids spread over the
last seven days as a bucket with 7-day retention holds them (so about 0.3% of them fall into
the default 30-minute window), plus ``--pending`` jobs left running by a crashed host (old
ids, markers, expired leases) and one new upload waiting. Seeding writes only what a poll or
a sweep reads: one ``status.json`` per finished folder (a listing by folder sees a folder
with one object as it sees one with a thousand), put straight into SeaweedFS's filer 32 at
a time; its time is reported.

Measured with the daemon's own ``JobScanner`` and ``S3Store`` (a recording runner stands in
for the models), each request counted by a botocore ``before-call`` hook of the bench's own
and checked against the scanner's own counts:

- first start: a fresh scanner's start-up poll on a bucket without a record of ended jobs,
  until the new upload and the pending jobs are submitted (time to the first new job
  taken, and the poll's requests);
- idle poll: the next polls, with nothing new (median time, requests);
- full sweep: a fresh scanner's first sweep without a record (every manifest read, 8 at a
  time, unpaced; the daemon paces it at ``BUCKET_SWEEP_READS_PER_S``), which writes the
  record of ended jobs, then a second sweep (manifests of ended jobs are remembered:
  listing only);
- restart: a fresh scanner after that sweep, its start-up poll and its first full sweep
  together; they must read at most the pending jobs (manifest and lease each) plus a
  constant, and its idle polls at most 2 LISTs and no GET (the bench fails otherwise);
- before: the previous daemon's start-up, one manifest after another over every folder
  (what a sweep does with one worker), for sizes up to ``--sequential-max``;
- a first sweep of ``--rtt-folders`` folders with one worker and with eight, through a
  proxy adding a simulated ``--rtt-ms`` round trip (on loopback a request costs CPU, not
  waiting, and two busy cores overlap little; over a network the workers overlap the
  waits).

Loopback SeaweedFS answers in about a millisecond; R2 in tens. Request counts carry over to
R2 unchanged; times scale with the round trip where calls are sequential.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

WEEK_S = 7 * 24 * 3600.0
RESTART_CONSTANT_GETS = 2
"""What a restart reads beyond its pending jobs: the record of ended jobs (one GET)."""


class Requests:
    """Requests of one S3 client by operation, counted by a botocore hook."""

    def __init__(self, client: Any) -> None:
        self.by_op: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-call.s3", self._count)

    def _count(self, model: Any = None, **_: Any) -> None:
        with self._lock:
            self.by_op[model.name] += 1

    def take(self) -> dict[str, int]:
        with self._lock:
            out = dict(sorted(self.by_op.items()))
            self.by_op.clear()
        return out


def _short(by_op: dict[str, int]) -> dict[str, int]:
    from vidwatch.r2.calls import OPS

    out: Counter[str] = Counter()
    for op, n in by_op.items():
        out[OPS.get(op, op.lower())] += n
    return dict(sorted(out.items()))


class Recorder:
    """The runner's intake side: records what is submitted and when."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def submit(self, spec: Any) -> bool:
        if spec.job_id in self.at:
            return False
        self.at[spec.job_id] = time.perf_counter()
        return True

    def is_active(self, job_id: str) -> bool:
        return job_id in self.at


def seed(server: Any, bucket: str, size: int, pending: int, workers: int) -> dict[str, Any]:
    """``size`` finished folders over the last week, ``pending`` crashed jobs; seconds.

    The finished folders' ``status.json`` objects are put straight into SeaweedFS's filer
    (the bucket's folder, ``/buckets/<bucket>/``) by ``workers`` threads over kept-alive
    HTTP connections: without the S3 gateway's request signing, about four times the rate
    of boto3 puts here. The S3 listing and reads see them as any object. The crashed jobs
    go through S3."""
    import http.client

    import boto3
    from botocore.config import Config
    from ulid import ULID

    from vidwatch.jobs.manifest import Manifest
    from vidwatch.r2 import keys
    from vidwatch.r2.leases import Lease

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        region_name="auto",
        config=Config(
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 5, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )
    client.create_bucket(Bucket=bucket)
    now = time.time()
    started = time.perf_counter()
    port = server.proc.ports["filer.port"]
    local = threading.local()

    def put_finished(i: int) -> None:
        job_id = str(ULID.from_timestamp(now - 60 - (WEEK_S - 120) * i / size))
        doc = Manifest(job_id=job_id, state="completed", stage="done", origin="bucket")
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request(
            "PUT",
            f"/buckets/{bucket}/{keys.status_key(job_id)}",
            body=json.dumps(doc.to_json()).encode(),
            headers={"Content-Type": "application/json"},
        )
        answer = conn.getresponse()
        answer.read()
        if answer.status >= 300:
            raise SystemExit(f"filer PUT answered {answer.status}")

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put_finished, range(size), chunksize=256))
    crashed = []
    for i in range(pending):
        job_id = str(ULID.from_timestamp(now - 3 * 24 * 3600 + i))
        crashed.append(job_id)
        source = keys.source_key(job_id, "mp4")
        doc = Manifest(job_id=job_id, state="running", stage="analyzing", source_key=source)
        lease = Lease(job_id, "dead-host", now - 300, now - 300, now - 270)
        for key, body in (
            (source, b"video"),
            (keys.status_key(job_id), json.dumps(doc.to_json()).encode()),
            (keys.lease_key(job_id), lease.to_bytes()),
            (keys.pending_key(job_id), b"{}"),
        ):
            client.put_object(Bucket=bucket, Key=key, Body=body)
    seconds = time.perf_counter() - started
    listed = sum(
        len(page.get("CommonPrefixes", []))
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=keys.JOBS_PREFIX, Delimiter="/"
        )
    )
    client.close()
    if listed != size + pending:
        raise SystemExit(f"seeded {listed} job folders, not {size + pending}")
    return {"seconds": seconds, "objects": size + 4 * pending, "crashed": crashed}


def measure(server: Any, size: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from ulid import ULID

    from vidwatch.config import load_settings
    from vidwatch.daemon.intake_bucket import JobScanner
    from vidwatch.r2 import keys
    from vidwatch.r2.s3 import S3Store

    bucket = f"bench-{size}"
    seeded = seed(server, bucket, size, args.pending, args.seed_workers)
    print(
        f"{size:>7} folders: seeded {seeded['objects']} objects in {seeded['seconds']:.1f} s",
        file=sys.stderr,
    )
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(tmp / f"tmp-{size}"),
            "R2_ENDPOINT_URL": server.endpoint_url,
            "R2_BUCKET": bucket,
            "R2_ACCESS_KEY_ID": server.access_key_id,
            "R2_SECRET_ACCESS_KEY": server.secret_access_key,
            "TOON_ENABLED": "false",
        }
    )
    store = S3Store.from_settings(settings)
    requests = Requests(store.client)
    new_job = str(ULID())
    store.put_bytes(keys.source_key(new_job, "mp4"), b"video")
    requests.take()

    def scanner(rec: Recorder, **overrides: Any) -> JobScanner:
        s = settings.model_copy(update=overrides) if overrides else settings
        return JobScanner(
            s,
            store,
            submit=rec.submit,
            is_active=rec.is_active,
            has_room=lambda: True,
            owner="bench",
            new_sources=True,
        )

    out: dict[str, Any] = {
        "folders": size,
        "pending": args.pending,
        "seed_s": round(seeded["seconds"], 1),
        "seed_objects": seeded["objects"],
    }

    # Restart: a fresh scanner's start-up poll.
    rec = Recorder()
    t0 = time.perf_counter()
    fresh = scanner(rec)
    fresh.poll_once(startup=True)
    restart_calls = requests.take()
    if new_job not in rec.at or not set(seeded["crashed"]) <= set(rec.at):
        raise SystemExit(f"restart missed jobs: {sorted(rec.at)}")
    if _short(restart_calls) != fresh.last_poll.calls.as_dict():
        raise SystemExit(f"counts differ: {restart_calls} {fresh.last_poll.calls.as_dict()}")
    out["restart"] = {
        "first_new_job_s": round(rec.at[new_job] - t0, 3),
        "poll_s": round(fresh.last_poll.seconds, 3),
        "window_folders": fresh.last_poll.folders,
        "calls": _short(restart_calls),
    }

    # Idle polls: nothing new.
    times, idle_calls = [], []
    for _ in range(args.idle_polls):
        fresh.poll_once()
        times.append(fresh.last_poll.seconds)
        idle_calls.append(_short(requests.take()))
    out["idle_poll"] = {
        "median_s": round(statistics.median(times), 4),
        "max_s": round(max(times), 4),
        "calls": idle_calls[-1],
        "calls_all_equal": all(c == idle_calls[-1] for c in idle_calls),
    }

    # Before: every manifest, one after another (the previous start-up); its record of ended
    # jobs is deleted after it, so that the next sweep starts as a first start.
    if size <= args.sequential_max:
        one = scanner(Recorder(), bucket_sweep_concurrency=1).sweep_once(paced=False)
        out["before_restart"] = {"seconds": round(one.seconds, 2), "calls": _short(requests.take())}
        store.delete(keys.ENDED_RECORD_KEY)
        requests.take()

    # Full sweeps: a fresh process's first (every manifest), then a second (memory warm).
    sweeper = scanner(Recorder())
    first = sweeper.sweep_once(paced=False)
    first_calls = _short(requests.take())
    second = sweeper.sweep_once(paced=False)
    second_calls = _short(requests.take())
    out["sweep_first"] = {
        "seconds": round(first.seconds, 2),
        "concurrency": settings.bucket_sweep_concurrency,
        "calls": first_calls,
        "paced_at_default_s": round((size + args.pending + 1) / settings.bucket_sweep_reads_per_s),
    }
    out["sweep_again"] = {"seconds": round(second.seconds, 2), "calls": second_calls}
    record = store.head(keys.ENDED_RECORD_KEY)
    out["record_bytes"] = record.size if record is not None else None
    requests.take()

    # Restart after a sweep: the start-up poll and the first sweep of a fresh process.
    rec = Recorder()
    t0 = time.perf_counter()
    again = scanner(rec)
    again.poll_once(startup=True)
    poll_calls = _short(requests.take())
    swept = again.sweep_once(paced=False)
    sweep_calls = _short(requests.take())
    pending = args.pending + 1  # the crashed jobs and the new upload (marked when found)
    if not set(seeded["crashed"]) | {new_job} <= set(rec.at):
        raise SystemExit(f"restart after a sweep missed jobs: {sorted(rec.at)}")
    gets = poll_calls.get("get", 0) + sweep_calls.get("get", 0)
    if gets > 2 * pending + RESTART_CONSTANT_GETS:
        raise SystemExit(f"restart read {gets} objects for {pending} pending jobs")
    idle = []
    for _ in range(args.idle_polls):
        again.poll_once()
        idle.append(_short(requests.take()))
    if any(c.get("list", 0) > 2 or c.get("get", 0) or c.get("head", 0) for c in idle):
        raise SystemExit(f"idle polls after a restart: {idle}")
    out["restart_after_sweep"] = {
        "first_new_job_s": round(rec.at[new_job] - t0, 3),
        "pending_jobs": pending,
        "poll_calls": poll_calls,
        "sweep_s": round(swept.seconds, 2),
        "sweep_calls": sweep_calls,
        "sweep_manifests_read": swept.inspected,
        "idle_poll_calls": idle[-1],
    }
    store.close()
    return out


def measure_rtt(server: Any, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """A first sweep with one worker and with ``BUCKET_SWEEP_CONCURRENCY`` workers, through
    a proxy that adds a simulated round trip: what the concurrency buys over a network."""
    from bench.upload_bench import LatencyProxy
    from vidwatch.config import load_settings
    from vidwatch.daemon.intake_bucket import JobScanner
    from vidwatch.r2.s3 import S3Store

    size = args.rtt_folders
    bucket = f"bench-rtt-{size}"
    seeded = seed(server, bucket, size, 0, args.seed_workers)
    proxy = LatencyProxy(int(server.endpoint_url.rsplit(":", 1)[1]), args.rtt_ms)
    try:
        settings = load_settings(
            {
                "TEMP_MEDIA_DIR": str(tmp / "tmp-rtt"),
                "R2_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
                "R2_BUCKET": bucket,
                "R2_ACCESS_KEY_ID": server.access_key_id,
                "R2_SECRET_ACCESS_KEY": server.secret_access_key,
            }
        )
        store = S3Store.from_settings(settings)
        out: dict[str, Any] = {
            "folders": size,
            "rtt_ms": args.rtt_ms,
            "seed_s": round(seeded["seconds"], 1),
        }
        for workers in (1, settings.bucket_sweep_concurrency):
            rec = Recorder()
            scanner = JobScanner(
                settings.model_copy(update={"bucket_sweep_concurrency": workers}),
                store,
                submit=rec.submit,
                is_active=rec.is_active,
                has_room=lambda: True,
                owner="bench",
                new_sources=True,
            )
            report = scanner.sweep_once(paced=False)
            out[f"sweep_{workers}_workers_s"] = round(report.seconds, 2)
            out[f"sweep_{workers}_workers_calls"] = report.calls.as_dict()
        store.close()
        return out
    finally:
        proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--pending", type=int, default=5)
    parser.add_argument("--seed-workers", type=int, default=32)
    parser.add_argument("--idle-polls", type=int, default=5)
    parser.add_argument("--sequential-max", type=int, default=10_000)
    parser.add_argument(
        "--rtt-ms", type=float, default=20.0, help="simulated round trip of the sweep run (0: none)"
    )
    parser.add_argument("--rtt-folders", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from bench.report import emit, quiet_logs, report_header
    from bench.upload_bench import SeaweedProcess

    quiet_logs()
    server = SeaweedProcess()
    report: dict[str, Any] = {
        **report_header(server),
        "runs": [],
    }
    try:
        with tempfile.TemporaryDirectory(prefix="vidwatch-bench-scan-") as tmp:
            for size in args.sizes:
                run = measure(server, size, args, Path(tmp))
                report["runs"].append(run)
                print(json.dumps(run), file=sys.stderr)
            if args.rtt_ms:
                report["sweep_over_rtt"] = measure_rtt(server, args, Path(tmp))
                print(json.dumps(report["sweep_over_rtt"]), file=sys.stderr)
    finally:
        server.close()
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
