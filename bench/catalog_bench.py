"""The catalog at scale: 10,000 jobs of 20 scenes each in a SeaweedFS bucket.

    python -m bench.catalog_bench [--jobs 10000] [--scenes 20] [--queries 200]
                                  [--seed-workers 32] [--json PATH]

Seeding writes, per job, a synthetic but schema-valid ``results.json`` and ``status.json``
(``bench.catalog_data``: every scene a keyframe, 1 to 4 labels from 80 drawn with a skew,
0 to 4 people per job from a library of 2,000 of whom 500 have names), put straight into
SeaweedFS's filer by ``--seed-workers`` threads (as ``bench.bucket_scan`` does). Then:

- rebuild: ``CatalogKeeper.rebuild`` on the daemon's own ``S3Store`` into a new file (the
  listing, two reads per job, 8 at a time; what a daemon does at start with no catalog);
- size: the file after a WAL checkpoint;
- five queries, ``--queries`` times each with varied values, timed two ways: in the
  catalog (``Catalog.search`` / ``Catalog.jobs``) and end to end over HTTP (``GET /search``
  and ``GET /jobs`` with ``Accept: application/json`` on the daemon's API in uvicorn,
  thumbnails presigned): one label, one person, two people together, text (two word
  prefixes), and the newest page of ``/jobs``. p50 and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.catalog_data import JobSpecDocs, SceneSpec, results_doc, status_doc

LABELS = [f"label{i:02d}" for i in range(80)]
WORDS = [
    "beach", "party", "office", "garden", "street", "concert", "kitchen", "school",
    "holiday", "wedding", "match", "river", "forest", "market", "station", "museum",
    "harbour", "festival", "meeting", "lecture", "drone", "camera", "night", "morning",
]  # fmt: skip
LIBRARY = [f"P{i:05d}" + "0" * 20 for i in range(2000)]
NAMED = {pid: f"Name{i:03d}" for i, pid in enumerate(LIBRARY[:500])}


def _skewed(rng: random.Random, items: list[str]) -> str:
    """Early items far more often (a few labels and people are everywhere, most are rare)."""
    return items[min(len(items) - 1, int(rng.paretovariate(1.2)) - 1)]


def make_job(i: int, n: int, scenes: int, now: float) -> JobSpecDocs:
    from ulid import ULID

    rng = random.Random(i)
    created = now - 7 * 86400 + 7 * 86400 * i / n
    people = sorted({LIBRARY.index(_skewed(rng, LIBRARY)) for _ in range(rng.randint(0, 4))})
    specs = []
    for _ in range(scenes):
        labels = sorted({_skewed(rng, LABELS) for _ in range(rng.randint(1, 4))})
        cast = [p for p in people if rng.random() < 0.4]
        specs.append(SceneSpec(labels, cast))
    name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{i}.mp4"
    return JobSpecDocs(
        str(ULID.from_timestamp(created)),
        name,
        created,
        specs,
        library_ids={p: LIBRARY[p] for p in people},
    )


def seed(server: Any, bucket: str, specs: list[JobSpecDocs], workers: int) -> dict[str, Any]:
    import http.client

    import boto3
    from botocore.config import Config

    from vidwatch.r2 import keys

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        region_name="auto",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=bucket)
    client.close()
    port = server.proc.ports["filer.port"]
    local = threading.local()
    written = [0]
    lock = threading.Lock()

    def put(key: str, body: bytes) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request(
            "PUT",
            f"/buckets/{bucket}/{key}",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        answer = conn.getresponse()
        answer.read()
        if answer.status >= 300:
            raise SystemExit(f"filer PUT answered {answer.status}")
        with lock:
            written[0] += len(body)

    def put_job(spec: JobSpecDocs) -> None:
        put(keys.results_key(spec.job_id), json.dumps(results_doc(spec)).encode())
        put(keys.status_key(spec.job_id), json.dumps(status_doc(spec)).encode())

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put_job, specs, chunksize=64))
    return {"seconds": round(time.perf_counter() - started, 1), "bytes": written[0]}


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[max(0, int(0.95 * len(ordered)) - 1)], 2),
        "n": len(ordered),
    }


def query_sets(specs: list[JobSpecDocs], count: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(7)
    pairs = []
    for spec in specs:
        for scene in spec.scenes:
            if len(scene.people) >= 2:
                pairs.append([spec.library_ids[p] for p in scene.people[:2]])
    return {
        "one label": [{"label": _skewed(rng, LABELS)} for _ in range(count)],
        "one person": [{"person": _skewed(rng, LIBRARY)} for _ in range(count)],
        "two people together": [{"person": rng.choice(pairs)} for _ in range(count)],
        "text": [{"q": f"{rng.choice(WORDS)[:4]} {_skewed(rng, LABELS)}"} for _ in range(count)],
        "newest page of /jobs": [{} for _ in range(count)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed-workers", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import httpx

    from bench.report import emit, quiet_logs, report_header
    from bench.upload_bench import SeaweedProcess
    from tests.api.api_harness import api_app, serve
    from vidwatch.catalog import Catalog, CatalogKeeper
    from vidwatch.catalog.query import parse_jobs, parse_search
    from vidwatch.config import load_settings
    from vidwatch.r2 import open_store

    quiet_logs()
    now = time.time()
    specs = [make_job(i, args.jobs, args.scenes, now) for i in range(args.jobs)]
    server = SeaweedProcess()
    report: dict[str, Any] = {
        **report_header(server),
        "jobs": args.jobs,
        "scenes_per_job": args.scenes,
    }
    try:
        report["seed"] = seed(server, "catalog-bench", specs, args.seed_workers)
        print(json.dumps({"seed": report["seed"]}), file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="vidwatch-bench-catalog-") as tmp:
            settings = load_settings(
                {
                    "R2_ENDPOINT_URL": server.endpoint_url,
                    "R2_BUCKET": "catalog-bench",
                    "R2_ACCESS_KEY_ID": server.access_key_id,
                    "R2_SECRET_ACCESS_KEY": server.secret_access_key,
                    "TEMP_MEDIA_DIR": str(Path(tmp) / "tmp"),
                    "LOCAL_STORE_DIR": str(Path(tmp) / "store"),
                }
            )
            store = open_store(settings)
            path = Path(tmp) / "catalog.sqlite3"
            catalog = Catalog.open(path, store_id=store.location("jobs/"))
            keeper = CatalogKeeper(catalog, store, names=lambda ids: {i: NAMED.get(i) for i in ids})
            rebuilt = keeper.rebuild()
            assert catalog.complete and rebuilt.indexed == args.jobs, rebuilt
            counts = catalog.counts()
            report["rebuild"] = {
                "seconds": round(rebuilt.seconds, 1),
                "jobs_per_s": round(rebuilt.indexed / rebuilt.seconds, 1),
                **counts,
            }
            report["catalog_bytes"] = catalog.size_bytes()
            print(json.dumps({"rebuild": report["rebuild"]}), file=sys.stderr)

            sets = query_sets(specs, args.queries)
            in_catalog: dict[str, Any] = {}
            for name, params in sets.items():
                times, found = [], []
                for p in params:
                    started = time.perf_counter()
                    if name.startswith("newest"):
                        rows, _ = catalog.jobs(parse_jobs())
                    else:
                        rows, _ = catalog.search(
                            parse_search(
                                q=p.get("q"),
                                label=[p["label"]] if "label" in p else [],
                                person=p["person"]
                                if isinstance(p.get("person"), list)
                                else ([p["person"]] if "person" in p else []),
                            )
                        )
                    times.append(time.perf_counter() - started)
                    found.append(len(rows))
                in_catalog[name] = {**percentiles(times), "hits_p50": statistics.median(found)}
            report["queries_in_catalog"] = in_catalog
            print(json.dumps({"in_catalog": in_catalog}), file=sys.stderr)

            app = api_app(settings, store, catalog=catalog)
            over_http: dict[str, Any] = {}
            with serve(app) as served, httpx.Client(base_url=served.base_url) as client:
                client.get("/jobs", headers={"Accept": "application/json"})
                for name, params in sets.items():
                    times = []
                    path_ = "/jobs" if name.startswith("newest") else "/search"
                    for p in params:
                        started = time.perf_counter()
                        resp = client.get(path_, params=p, headers={"Accept": "application/json"})
                        times.append(time.perf_counter() - started)
                        if resp.status_code != 200:
                            raise SystemExit(f"{path_} {p}: {resp.status_code} {resp.text[:200]}")
                    over_http[name] = percentiles(times)
            report["queries_over_http"] = over_http
            print(json.dumps({"over_http": over_http}), file=sys.stderr)
            keeper.stop()
            catalog.close()
            store.close()
    finally:
        server.close()
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
