"""Helpers of the in-process daemon tests (runner, job scanner, retention, inbox): settings on
a test's own folders, a recording ``submit``, job scanners wired to it or to a runner, and
a running job under a lease."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vidwatch.config import Settings, load_settings
from vidwatch.daemon.intake_bucket import JobScanner
from vidwatch.daemon.runner import Runner
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.r2 import keys
from vidwatch.r2.leases import claim

MODELS_OFF = {"DETECT_MODEL": "none", "SEGMENT_MODEL": "none", "FACES_ENABLED": "false"}
"""A daemon or job that loads no model (tests of its plumbing, not of analysis)."""


def local_settings(tmp_path: Path, defaults: Mapping[str, Any], **extra: Any) -> Settings:
    """Settings on folders under ``tmp_path`` (``tmp`` for TEMP_MEDIA_DIR, ``store`` for
    LOCAL_STORE_DIR), TOON off, then the test file's ``defaults``, then ``extra``; values are
    given to the settings as strings."""
    env = {
        "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
        "LOCAL_STORE_DIR": str(tmp_path / "store"),
        "TOON_ENABLED": "false",
    }
    env.update({k: str(v) for k, v in {**defaults, **extra}.items()})
    return load_settings(env)


class Submitted:
    """A ``submit`` that takes each job once and records when; ``is_active`` for its jobs."""

    def __init__(self) -> None:
        self.specs: dict[str, Any] = {}
        self.at: dict[str, float] = {}

    def submit(self, spec) -> bool:
        if spec.job_id in self.specs:
            return False
        self.specs[spec.job_id] = spec
        self.at[spec.job_id] = time.monotonic()
        return True

    def is_active(self, job_id: str) -> bool:
        return job_id in self.specs


def make_scanner(
    settings: Settings,
    store,
    sub: Submitted,
    *,
    new_sources: bool = True,
    clock: Callable[[], float] = time.time,
    page_size: int = 1000,
) -> JobScanner:
    """A job scanner owned by ``me`` that submits to ``sub`` and always has room."""
    return JobScanner(
        settings,
        store,
        submit=sub.submit,
        is_active=sub.is_active,
        has_room=lambda: True,
        owner="me",
        new_sources=new_sources,
        clock=clock,
        page_size=page_size,
    )


def runner_scanner(settings: Settings, store, runner: Runner) -> JobScanner:
    """A job scanner that submits to ``runner``, as the daemon wires them."""
    return JobScanner(
        settings,
        store,
        submit=runner.submit,
        is_active=runner.is_active,
        has_room=runner.has_room,
        owner=runner.owner,
        new_sources=True,
        retry_at=runner.retry_at,
    )


def running_with_lease(
    store, job_id: str, owner: str, *, claimed_at: float, filename: str | None = None
) -> None:
    """A job ``running`` from the inbox on its source in the store, its lease claimed by
    ``owner`` at ``claimed_at`` for 30 s (long expired when ``claimed_at`` is old)."""
    write_manifest(
        store,
        Manifest(
            job_id=job_id,
            state="running",
            stage="analyzing",
            origin="inbox",
            filename=filename,
            source_key=keys.source_key(job_id, "mp4"),
        ),
    )
    claim(store, job_id, owner, ttl_s=30, now=claimed_at)
