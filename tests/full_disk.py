"""A real full disk for the tests: a small tmpfs mounted for the test and unmounted after
it. Mounting needs root (or CAP_SYS_ADMIN); where it is impossible the test is skipped
with the reason."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(folder: Path, size_bytes: int) -> Iterator[Path]:
    """``folder`` (created) backed by a tmpfs of ``size_bytes``, unmounted at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {exc}")
    if done.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs for the full-disk test (needs root or CAP_SYS_ADMIN): "
            + (done.stderr or done.stdout).strip()
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)
