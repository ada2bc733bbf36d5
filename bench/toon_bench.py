"""Per-frame JSON -> TOON cost: the long-lived helper against one Node process per frame.

    python -m bench.toon_bench [--frames 200] [--baseline-frames 200] [--repeats 3]
                               [--threads 4] [--json PATH] [--check]

Both ways convert the same realistic frame documents with the same script
(``vidwatch/toon_bridge/runtime/convert_toon.mjs``) and library, and must produce identical
TOON text. The baseline runs ``node convert_toon.mjs --once`` per frame (what a naive pipeline
does); the long-lived helper is measured as the pipeline uses it, one ``encode()`` call per
frame, and also as one ``encode_many()`` batch and from several writer threads. The headline
ratio is baseline ms/frame over per-call ms/frame (helper start-up excluded; it is reported,
and a ratio with start-up amortised over the frames is given too). Target: at least 20x.

Prints a JSON report, then one markdown line. ``--check`` exits 1 below the target.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from vidwatch.toon_bridge import RUNTIME_DIR, ToonBridge
from vidwatch.toon_bridge.client import SCRIPT_NAME
from vidwatch.toon_bridge.samples import frame_documents

TARGET_RATIO = 20.0


def _ms_per_frame(seconds: float, frames: int) -> float:
    return round(seconds * 1000 / frames, 4)


def per_process(node: str, docs: list[Any]) -> tuple[float, list[str]]:
    """One ``node convert_toon.mjs --once`` per document: seconds in all, outputs."""
    script = str(RUNTIME_DIR / SCRIPT_NAME)
    outputs = []
    started = time.perf_counter()
    for doc in docs:
        proc = subprocess.run(
            [node, script, "--once"],
            input=json.dumps(doc).encode(),
            capture_output=True,
            check=True,
        )
        outputs.append(proc.stdout.decode("utf-8"))
    return time.perf_counter() - started, outputs


def per_call(bridge: ToonBridge, docs: list[Any]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    outputs = [bridge.encode(doc) for doc in docs]
    return time.perf_counter() - started, outputs


def one_batch(bridge: ToonBridge, docs: list[Any]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    outputs = bridge.encode_many(docs)
    return time.perf_counter() - started, outputs


def threaded(bridge: ToonBridge, docs: list[Any], threads: int) -> tuple[float, list[str]]:
    outputs: list[str] = [""] * len(docs)
    barrier = threading.Barrier(threads + 1)

    def work(part: int) -> None:
        barrier.wait()
        for i in range(part, len(docs), threads):
            outputs[i] = bridge.encode(docs[i])

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(work, p) for p in range(threads)]
        barrier.wait()
        started = time.perf_counter()
        for f in futures:
            f.result()
        elapsed = time.perf_counter() - started
    return elapsed, outputs


def run(frames: int, baseline_frames: int, repeats: int, threads: int) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node not found on PATH")
    docs = json.loads(json.dumps(frame_documents(frames)))  # as the frame JSON files hold them
    sizes = [len(json.dumps(d)) for d in docs]

    bridge = ToonBridge(node_binary=node)
    bridge.start()  # installs the runtime if needed, outside the timing
    bridge.close()
    started = time.perf_counter()
    bridge.start()
    startup_s = time.perf_counter() - started
    try:
        per_call(bridge, docs[:20])  # warm-up (JIT, page cache)
        call_runs = [per_call(bridge, docs) for _ in range(repeats)]
        batch_runs = [one_batch(bridge, docs) for _ in range(repeats)]
        thread_runs = [threaded(bridge, docs, threads) for _ in range(repeats)]
        version = bridge.version
    finally:
        bridge.close()

    per_process(node, docs[:2])  # warm-up
    base_s, base_out = per_process(node, docs[:baseline_frames])

    reference = call_runs[0][1]
    for name, runs in (("per_call", call_runs), ("batch", batch_runs), ("threads", thread_runs)):
        if any(out != reference for _, out in runs):
            raise SystemExit(f"long-lived {name} output differs from per-call output")
    if base_out != reference[:baseline_frames]:
        raise SystemExit("one-process-per-frame output differs from the long-lived helper's")

    call_ms = _ms_per_frame(statistics.median(s for s, _ in call_runs), frames)
    batch_ms = _ms_per_frame(statistics.median(s for s, _ in batch_runs), frames)
    thread_ms = _ms_per_frame(statistics.median(s for s, _ in thread_runs), frames)
    base_ms = _ms_per_frame(base_s, baseline_frames)
    amortised_ms = call_ms + startup_s * 1000 / frames
    return {
        "benchmark": "toon_bridge",
        "library": f"@toon-format/toon@{version}",
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip(),
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "frames": frames,
        "baseline_frames": baseline_frames,
        "repeats": repeats,
        "frame_json_bytes": {"mean": round(statistics.mean(sizes)), "max": max(sizes)},
        "ms_per_frame": {
            "one_process_per_frame": base_ms,
            "long_lived_per_call": call_ms,
            "long_lived_batch": batch_ms,
            f"long_lived_{threads}_threads": thread_ms,
            "long_lived_per_call_with_startup": round(amortised_ms, 4),
        },
        "helper_startup_ms": round(startup_s * 1000, 1),
        "ratio": round(base_ms / call_ms, 1),
        "ratio_batch": round(base_ms / batch_ms, 1),
        "ratio_with_startup": round(base_ms / amortised_ms, 1),
        "target_ratio": TARGET_RATIO,
        "outputs_identical": True,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--baseline-frames", type=int, default=None, help="default: --frames")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--check", action="store_true", help=f"exit 1 below {TARGET_RATIO}x")
    args = parser.parse_args(argv)
    # keep stdout for the report: the bridge's warnings and errors go to stderr
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    baseline = min(args.baseline_frames or args.frames, args.frames)
    report = run(args.frames, baseline, args.repeats, args.threads)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    ms = report["ms_per_frame"]
    print(
        f"| TOON, {args.frames} frames | one process per frame: "
        f"{ms['one_process_per_frame']:.2f} ms/frame | long-lived helper: "
        f"{ms['long_lived_per_call']:.3f} ms/frame (batch {ms['long_lived_batch']:.3f}) | "
        f"ratio {report['ratio']}x (target >= {TARGET_RATIO:g}x) |"
    )
    if args.check and report["ratio"] < TARGET_RATIO:
        print(f"below target: {report['ratio']}x < {TARGET_RATIO:g}x", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
