"""``vidwatch analyze VIDEO``: one job on the configured store, with a progress bar.

The job's lease is held (claimed before its source is staged, renewed while it runs,
released at its end) as a daemon's runner holds it: a daemon running on the same folders
finds the job's staged source, its manifest and its folder, and leaves them alone while the
lease lives. Every write goes through the fenced store, so a CLI that lost its lease (stalled
past its time to live) writes nothing more."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from vidwatch.config import ConfigError, Settings
from vidwatch.logs import configure_logging

if TYPE_CHECKING:
    from vidwatch.jobs.manifest import Manifest


def run_analyze(args: argparse.Namespace, settings: Settings) -> int:  # noqa: C901 - one exit code per start-up failure
    configure_logging(
        "console" if sys.stderr.isatty() else "json", "info" if args.verbose else "warning"
    )
    video: Path = args.video
    if not video.is_file():
        print(f"vidwatch: no such file: {video}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    from vidwatch.detectors.registry import load_models
    from vidwatch.errors import JobInterrupted
    from vidwatch.jobs.names import clean_filename
    from vidwatch.jobs.run import run_job
    from vidwatch.jobs.staging import JobSpec, new_job_id, stage_copy
    from vidwatch.pipeline.toon import open_toon
    from vidwatch.r2 import StoreError, keys, open_store
    from vidwatch.r2.fenced import FencedStore, LeaseTaken, lease_held
    from vidwatch.r2.leases import LeaseLost, new_owner_id

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
    lost = threading.Event()
    lease = contextlib.ExitStack()
    try:
        guard = lease.enter_context(
            lease_held(store, job_id, owner=new_owner_id(), settings=settings, on_lost=lost.set)
        )
    except (StoreError, LeaseTaken) as exc:
        print(f"vidwatch: could not take the job's lease: {exc}", file=sys.stderr)
        if toon is not None:
            toon.close()
        store.close()
        return 2
    try:
        staged = stage_copy(settings, job_id, video)
        name = clean_filename(video.name, path_allowed=False)
        spec = JobSpec(
            job_id=job_id,
            staged_source=staged,
            origin="cli",
            filename=name.name,
            cleanup_override=False if args.keep_local_source else None,
            warnings=name.warnings(),
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

        shown: dict[str, str | None] = {"stage": None}

        def on_progress(manifest: Manifest) -> None:
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
                store=FencedStore(store, guard),
                settings=settings,
                models=models,
                toon=toon,
                on_progress=on_progress,
                stop=lost,
            )
        except (JobInterrupted, LeaseLost):
            print(
                f"vidwatch: job {job_id} stopped: its lease was lost (this process stalled "
                "past LEASE_TTL_S, or another worker took the job over)",
                file=sys.stderr,
            )
            return 1
        finally:
            bar.close()
    finally:
        lease.close()  # released before the store closes
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
