"""``vidwatch analyze VIDEO``: one job on the configured store, with a progress bar."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vidwatch.config import ConfigError, Settings
from vidwatch.logs import configure_logging


def run_analyze(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(
        "console" if sys.stderr.isatty() else "json", "info" if args.verbose else "warning"
    )
    video: Path = args.video
    if not video.is_file():
        print(f"vidwatch: no such file: {video}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    from vidwatch.detectors.registry import load_models
    from vidwatch.jobs.run import run_job
    from vidwatch.jobs.staging import JobSpec, new_job_id, stage_copy
    from vidwatch.pipeline.toon import open_toon
    from vidwatch.r2 import StoreError, keys, open_store

    toon = None
    # The Node helper starts in a thread while the models load (both are start-up).
    toon_pool = ThreadPoolExecutor(1, thread_name_prefix="vidwatch-toon-start")
    toon_future = toon_pool.submit(open_toon, settings)
    toon_pool.shutdown(wait=False)
    try:
        store = open_store(settings)
        store.check()
        models = load_models(settings)
    except (ConfigError, StoreError) as exc:
        setting = getattr(exc, "setting", None)
        hint = f" (check {setting})" if setting and setting not in str(exc) else ""
        print(f"vidwatch: {exc}{hint}", file=sys.stderr)
        with contextlib.suppress(Exception):
            started = toon_future.result()
            if started is not None:
                started.close()
        return 2
    try:
        toon = toon_future.result()
    except ConfigError as exc:
        print(f"vidwatch: {exc}", file=sys.stderr)
        return 2
    job_id = new_job_id()
    try:
        staged = stage_copy(settings, job_id, video)
        spec = JobSpec(
            job_id=job_id,
            staged_source=staged,
            origin="cli",
            filename=video.name,
            cleanup_override=False if args.keep_local_source else None,
        )
        bar = tqdm(
            total=None,
            unit="frame",
            desc="analysing",
            disable=args.quiet,
            mininterval=0.5,
            file=sys.stderr,
            dynamic_ncols=True,
        )

        shown = {"stage": None}

        def on_progress(manifest) -> None:
            if manifest.frames_total and bar.total != manifest.frames_total:
                bar.total = manifest.frames_total
            if manifest.frames_done > bar.n:
                bar.update(manifest.frames_done - bar.n)
            if shown["stage"] != manifest.stage:
                shown["stage"] = manifest.stage
                bar.set_postfix_str(manifest.stage)

        try:
            manifest = run_job(
                spec,
                store=store,
                settings=settings,
                models=models,
                toon=toon,
                on_progress=on_progress,
            )
        finally:
            bar.close()
    finally:
        if toon is not None:
            toon.close()
        store.close()
    if args.json:
        print(json.dumps(manifest.to_json(), indent=2))
    where = store.location(keys.job_prefix(job_id))
    if manifest.state != "completed":
        err = manifest.error
        why = f"{err.code}: {err.message}" if err is not None else "no error recorded"
        print(f"vidwatch: job {job_id} failed: {why}", file=sys.stderr)
        print(f"status: {where}status.json", file=sys.stderr)
        return 1
    summary = manifest.summary
    if not args.json and summary is not None:
        labels = ", ".join(summary.labels) or "none"
        print(
            f"job {job_id} completed: {counted(manifest.frames_total or 0, 'frame')}, "
            f"{counted(summary.scenes, 'scene')}, "
            f"{counted(summary.frames_analyzed, 'frame')} analysed"
        )
        print(f"  labels: {labels}")
        print(
            f"  faces: in {counted(summary.faces.frames, 'frame')}, at most "
            f"{summary.faces.max_in_frame} in one; "
            f"{counted(summary.people, 'person', 'people')}"
        )
        print(f"  results: {where}analysis/results.json")
        print(f"  report:  {where}report.html")
    return 0


def counted(n: int, one: str, many: str | None = None) -> str:
    """``1 scene``, ``2 scenes``, ``0 scenes``; ``many`` where the plural is not ``one + s``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
