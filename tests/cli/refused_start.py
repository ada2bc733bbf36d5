"""``vidwatch run --once`` started in a subprocess on a test's folders, for the tests of a
start that must stop at once (exit 2, one line naming the setting)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path


def run_once(
    tmp_path: Path, env: Mapping[str, str], *, drop: Callable[[str], bool]
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The finished process and its non-blank stderr lines. ``drop`` takes out of this
    process's environment the variables the test sets or must not inherit."""
    base = {k: v for k, v in os.environ.items() if not drop(k)}
    proc = subprocess.run(
        [sys.executable, "-m", "vidwatch.cli", "run", "--once"],
        env={
            **base,
            **env,
            "TEMP_MEDIA_DIR": str(tmp_path / "t"),
            "INBOX_DIR": str(tmp_path / "i"),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, [line for line in proc.stderr.splitlines() if line.strip()]
