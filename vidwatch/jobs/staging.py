"""A job's staged source and its spec: ids, staging paths, the local cleanup policy.

Light on purpose: the API and the intake sources import it without the pipeline.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ulid import ULID

from vidwatch.config import Settings
from vidwatch.jobs.manifest import Manifest, Origin
from vidwatch.r2 import keys

if TYPE_CHECKING:
    from vidwatch.r2.leases import Lease


def new_job_id() -> str:
    return str(ULID())


def doubling_wait_s(failures: int, first_s: float, max_s: float) -> float:
    """The wait after ``failures`` failed tries to stage a source (1 or more): ``first_s``,
    doubling with each further try, at most ``max_s``. The inbox's and the bucket's full-disk
    waits both use it."""
    wait: float = min(max_s, first_s * 2 ** (failures - 1))
    return wait


def staging_dir(settings: Settings, job_id: str) -> Path:
    return Path(settings.temp_media_dir) / keys.job_prefix(job_id).split("/")[1]


def staged_source_path(settings: Settings, job_id: str, ext: str) -> Path:
    return staging_dir(settings, job_id) / "input" / f"source.{ext}"


def stage_copy(settings: Settings, job_id: str, source: Path) -> Path:
    """Copy ``source`` into staging as ``source.<ext>`` (``names.source_ext``: a listed
    video extension, else the sniffed container, else ``bin``); the user's file itself is
    never changed."""
    from vidwatch.jobs.names import file_head, source_ext

    dest = staged_source_path(settings, job_id, source_ext(source.name, file_head(source)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return dest


def resolve_cleanup(override: bool | None, default: bool) -> bool:
    """The effective local cleanup policy: the request's override, else the default."""
    return default if override is None else override


@dataclass
class JobSpec:
    job_id: str
    staged_source: Path
    origin: Origin
    filename: str | None = None
    cleanup_override: bool | None = None
    source_in_store: bool = False
    """Bucket jobs: the source is already in the store (it was downloaded into staging)."""
    source_key: str | None = None
    """The source's key where it is already in the store (default: the layout's key)."""
    reanalyze: bool = False
    """Analyse afresh even when a job of the same content exists."""
    warnings: list[dict[str, Any]] = field(default_factory=list)
    """What intake met and lived with (a ``filename_changed`` warning): status.json keeps
    them whatever the attempt."""
    lapsed_lease: Lease | None = None
    """Set by the runner: the lease its claim took over after it ran out unreleased (an
    earlier attempt stopped before its end, maybe before status.json heard of it)."""


class Arriving:
    """The jobs whose staging folder is being written in this process right now (an upload
    streaming in, an inbox file being copied), so that the staging sweep never takes a file
    from under its writer. TEMP_MEDIA_DIR belongs to one daemon: what no writer of this
    process holds is nobody's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    @contextmanager
    def hold(self, job_id: str) -> Iterator[None]:
        with self._lock:
            self._held[job_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._held[job_id] -= 1
                if self._held[job_id] <= 0:
                    del self._held[job_id]

    def __contains__(self, job_id: object) -> bool:
        with self._lock:
            return job_id in self._held


ARRIVING = Arriving()
"""The process's registry of staging folders being written."""


def job_spec_for_store_source(
    settings: Settings, job_id: str, key: str, *, manifest: Manifest | None
) -> JobSpec:
    """A job whose source is already in the store: a new bucket job (no manifest) or one
    resumed after a crash or a stop."""
    ext = key.rsplit(".", 1)[-1].lower()
    origin: Origin = manifest.origin if manifest else "bucket"
    return JobSpec(
        job_id=job_id,
        staged_source=staged_source_path(settings, job_id, ext),
        origin=origin,
        filename=manifest.filename if manifest else None,
        cleanup_override=manifest.cleanup_local_source if manifest else None,
        source_in_store=True,
        source_key=key,
    )
