"""Where a job's source is: in the store (``jobs/<job_id>/input/source.<ext>``) or staged
under ``TEMP_MEDIA_DIR`` (``<job_id>/input/source.<ext>``), for the bucket scanner and
retention."""

from __future__ import annotations

import os
import re
from pathlib import Path

import structlog

from vidwatch.config import Settings
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectStore

log = structlog.get_logger("vidwatch.intake.bucket")

_STAGED_SOURCE = re.compile(r"^source\.[a-z0-9]{1,8}$")


def _scandir(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return list(entries)


def find_source_key(store: ObjectStore, job_id: str) -> str | None:
    """The job's ``input/source.<ext>`` in the store (``<ext>`` one a source may keep:
    ``keys.SOURCE_EXTS``), or None."""
    found = [
        info.key
        for info in store.list(keys.input_prefix(job_id))
        if keys.is_accepted_source_key(info.key)
    ]
    if len(found) > 1:
        log.warning("bucket_several_sources", job_id=job_id, keys=found, used=found[0])
    return found[0] if found else None


def staged_job_ids(settings: Settings) -> set[str]:
    """The job ids with a folder in staging."""
    root = Path(settings.temp_media_dir)
    try:
        return {e.name for e in _scandir(root) if e.is_dir() and keys.is_job_id(e.name)}
    except FileNotFoundError:
        return set()


def staged_source(settings: Settings, job_id: str) -> Path | None:
    """The complete staged source of a job (``source.<ext>``; never a partial file)."""
    folder = Path(settings.temp_media_dir) / job_id / "input"
    try:
        names = sorted(
            entry.name
            for entry in _scandir(folder)
            if entry.is_file() and _STAGED_SOURCE.match(entry.name)
        )
    except (FileNotFoundError, NotADirectoryError):
        return None
    return folder / names[0] if names else None
