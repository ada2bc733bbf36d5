"""Bounded load test of the HTTP API, on loopback only.

Starts the API on 127.0.0.1 (a free port) over a local store in a temporary folder, with
the daemon's runner (one worker, as ``JOB_CONCURRENCY`` defaults); uploads one video and waits
until its job is running; then, at once, 20 clients poll ``GET /status`` of that job 200
times in all while 5 clients upload the video concurrently. Waits (bounded) for every job
to end, prints one JSON document (latency p50/p99 per kind of request, error count, the
states the polls saw) and exits 1 when any request failed or any job did not complete.

    python -m bench.api_load [--polls 200] [--clients 20] [--uploads 5] [--video FILE]
                             [--max-seconds 240]

Models: DETECT_MODEL / SEGMENT_MODEL as set in the environment; when DETECT_MODEL is not
set, random-weight YOLO models are built from Ultralytics' yaml (no download), as the
tests do. The video defaults to ``cuts_h264.mp4`` of the shared test media
(``VIDWATCH_TEST_MEDIA``, else ``../shared/media`` beside the checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of ``values``, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _summary(latencies: list[float], errors: int) -> dict[str, Any]:
    ms = [x * 1000 for x in latencies]
    return {
        "count": len(latencies),
        "errors": errors,
        "p50_ms": _round(percentile(ms, 0.50)),
        "p99_ms": _round(percentile(ms, 0.99)),
        "max_ms": _round(max(ms) if ms else None),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def _load(
    base_url: str,
    job_id: str,
    video: bytes,
    *,
    polls: int,
    clients: int,
    uploads: int,
    headers: dict[str, str],
) -> dict[str, Any]:
    poll_lat: list[float] = []
    upload_lat: list[float] = []
    errors: list[str] = []
    states: Counter[str] = Counter()
    upload_ids: list[str] = []
    timeout = httpx.Timeout(60.0)

    # Clients are made (and their SSL contexts built) before the clock starts: what is
    # measured is the server, not httpx's set-up.
    shares = [polls // clients + (1 if i < polls % clients else 0) for i in range(clients)]
    shares = [n for n in shares if n]
    poll_clients = [
        httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers) for _ in shares
    ]
    upload_clients = [
        httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers)
        for _ in range(uploads)
    ]
    start = asyncio.Event()

    async def poller(client: httpx.AsyncClient, count: int) -> None:
        await start.wait()
        for _ in range(count):
            started = time.perf_counter()
            try:
                resp = await client.get(f"/status/{job_id}")
            except httpx.HTTPError as exc:
                errors.append(f"poll: {type(exc).__name__}: {exc}")
                continue
            poll_lat.append(time.perf_counter() - started)
            if resp.status_code != 200:
                errors.append(f"poll: HTTP {resp.status_code}: {resp.text[:200]}")
            else:
                states[resp.json()["state"]] += 1

    async def uploader(client: httpx.AsyncClient, n: int) -> None:
        await start.wait()
        started = time.perf_counter()
        try:
            resp = await client.post("/analyze-video", files={"file": (f"load-{n}.mp4", video)})
        except httpx.HTTPError as exc:
            errors.append(f"upload: {type(exc).__name__}: {exc}")
            return
        upload_lat.append(time.perf_counter() - started)
        if resp.status_code != 202:
            errors.append(f"upload: HTTP {resp.status_code}: {resp.text[:200]}")
        else:
            upload_ids.append(resp.json()["job_id"])

    tasks = [asyncio.create_task(poller(c, n)) for c, n in zip(poll_clients, shares, strict=True)]
    tasks += [asyncio.create_task(uploader(c, i)) for i, c in enumerate(upload_clients)]
    await asyncio.sleep(0)
    started = time.perf_counter()
    start.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        wall = time.perf_counter() - started
        for client in poll_clients + upload_clients:
            await client.aclose()
    return {
        "polls": {
            **_summary(poll_lat, sum(e.startswith("poll") for e in errors)),
            "clients": clients,
            "states_seen": dict(states),
        },
        "uploads": {
            **_summary(upload_lat, sum(e.startswith("upload") for e in errors)),
            "concurrent": uploads,
            "bytes_each": len(video),
        },
        "errors": len(errors),
        "first_errors": errors[:5],
        "wall_s": round(wall, 3),
        "upload_job_ids": upload_ids,
    }


def run_load(
    base_url: str,
    job_id: str,
    video: bytes,
    *,
    polls: int = 200,
    clients: int = 20,
    uploads: int = 5,
    headers: dict[str, str] | None = None,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """``polls`` GET /status/{job_id} from ``clients`` concurrent clients while ``uploads``
    clients upload ``video`` at the same time; latencies and errors. Bounded by
    ``timeout_s`` (asyncio.TimeoutError past it)."""
    return asyncio.run(
        asyncio.wait_for(
            _load(
                base_url,
                job_id,
                video,
                polls=polls,
                clients=clients,
                uploads=uploads,
                headers=headers or {},
            ),
            timeout_s,
        )
    )


# --- the standalone run ---------------------------------------------------------------------
def _media_dir() -> Path:
    return Path(os.environ.get("VIDWATCH_TEST_MEDIA", REPO.parent / "shared" / "media"))


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument(
        "--max-seconds", type=float, default=240.0, help="the whole run stops (and fails) past this"
    )
    args = parser.parse_args(argv)
    for name in ("polls", "clients", "uploads"):
        if not 1 <= getattr(args, name) <= 10_000:
            parser.error(f"--{name} must be 1..10000")
    video_path = args.video or _media_dir() / "cuts_h264.mp4"
    if not video_path.is_file():
        parser.error(f"no video at {video_path}; pass --video or set VIDWATCH_TEST_MEDIA")
    deadline = time.monotonic() + args.max_seconds

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the load test ran over --max-seconds={args.max_seconds:g}")
        return left

    os.environ.setdefault("YOLO_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="vidwatch-api-load-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("YOLO_CONFIG_DIR", str(root / "ultralytics"))
        return _run(args, root, video_path.read_bytes(), remaining)


def _models(root: Path):
    from vidwatch.config import load_settings
    from vidwatch.detectors.registry import load_models

    env = {k: v for k, v in os.environ.items() if not k.startswith("R2_")}
    if not env.get("DETECT_MODEL"):
        from ultralytics import YOLO

        for var, yaml in (("DETECT_MODEL", "yolo11n.yaml"), ("SEGMENT_MODEL", "yolo11n-seg.yaml")):
            path = root / yaml.replace(".yaml", "-random.pt")
            YOLO(yaml).save(str(path))
            env[var] = str(path)
        env["ALLOW_MODEL_DOWNLOAD"] = "false"
    env.update(
        {
            "TEMP_MEDIA_DIR": str(root / "tmp_media"),
            "LOCAL_STORE_DIR": str(root / "store"),
            "TOON_ENABLED": "false",
            "HTTP_HOST": LOOPBACK,
            "HTTP_PORT": "0",
            "API_TOKEN": "",
            "PUBLIC_BASE_URL": "",
        }
    )
    settings = load_settings(env)
    models = load_models(settings)
    return settings, models


def _run(args, root: Path, video: bytes, remaining) -> int:
    import uvicorn

    from vidwatch.api.app import create_app
    from vidwatch.api.context import ApiContext
    from vidwatch.api.links import FileLinkSigner
    from vidwatch.daemon.runner import Runner
    from vidwatch.jobs.manifest import TERMINAL, read_manifest
    from vidwatch.logs import configure_logging
    from vidwatch.r2.local import LocalStore

    configure_logging("console", "warning", stream=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):  # Ultralytics prints; stdout is the report
        settings, models = _models(root)
    signer = FileLinkSigner.from_settings(settings)
    store = LocalStore(settings.local_store_dir, url_signer=signer)
    runner = Runner(settings=settings, store=store, models=models, toon=None)
    runner.start()

    def final_state(job_id: str) -> str | None:
        manifest = read_manifest(store, job_id)
        return manifest.state if manifest is not None and manifest.state in TERMINAL else None

    app = create_app(
        ApiContext(
            settings=settings,
            store=store,
            submit=runner.submit,
            health=lambda: {"ok": runner.alive()},
            signer=signer,
        )
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=LOOPBACK, port=0, log_level="warning", access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, min(30, remaining()), "uvicorn to start", 0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        base_url = f"http://{LOOPBACK}:{port}"
        with httpx.Client(base_url=base_url, timeout=60) as client:
            first = client.post("/analyze-video", files={"file": ("first.mp4", video)})
            first.raise_for_status()
            job_id = first.json()["job_id"]

            def state() -> str:
                return client.get(f"/status/{job_id}").json()["state"]

            _wait(lambda: state() == "running", min(60, remaining()), "the first job to run")
            # The clients run in a process of their own, so that their Python work does not
            # share the server's GIL (nor the job's): the latencies are the server's.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                report = pool.submit(
                    run_load,
                    base_url,
                    job_id,
                    video,
                    polls=args.polls,
                    clients=args.clients,
                    uploads=args.uploads,
                    timeout_s=remaining() - 5,
                ).result(timeout=remaining())
            report["polled_job_state_after"] = state()
            ids = [job_id, *report.pop("upload_job_ids")]
            try:
                _wait(
                    lambda: all(final_state(i) for i in ids), remaining(), "every job to end", 0.25
                )
            except TimeoutError as exc:
                report["first_errors"].append(str(exc))
            report["jobs"] = dict(Counter(final_state(i) or "unfinished" for i in ids))
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        runner.shutdown(grace_s=60)
    failed_jobs = sum(n for s, n in report["jobs"].items() if s != "completed")
    print(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 and failed_jobs == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
