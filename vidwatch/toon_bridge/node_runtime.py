"""The Node side of the TOON helper: Node and npm found, the runtime folder's packages
(``runtime/node_modules``) installed at their locked versions, by ``npm ci`` when they are
not, and the ``@toon-format/toon`` version it pins."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from vidwatch.errors import VidwatchError

log = structlog.get_logger("vidwatch.toon")

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
SCRIPT_NAME = "convert_toon.mjs"
LIBRARY = "@toon-format/toon"
TURN_OFF = "set TOON_ENABLED=false to turn TOON output off"
NPM_CI_TIMEOUT_S = 600.0


class ToonUnavailable(VidwatchError):
    """The TOON runtime cannot run here: Node or npm missing, or ``npm ci`` failed."""


def pinned_version(runtime_dir: Path = RUNTIME_DIR) -> str:
    """The exact ``@toon-format/toon`` version that the runtime's package.json pins."""
    pkg = json.loads((runtime_dir / "package.json").read_text(encoding="utf-8"))
    return str(pkg["dependencies"][LIBRARY])


def missing_packages(runtime_dir: Path) -> list[str]:
    """Packages of package-lock.json not installed (at the locked version) in node_modules."""
    lock_path = runtime_dir / "package-lock.json"
    try:
        lock = json.loads(lock_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToonUnavailable(f"cannot read the TOON runtime's lock {lock_path}: {exc}") from exc
    missing = []
    for key, meta in lock.get("packages", {}).items():
        if not key.startswith("node_modules/") or meta.get("dev") or meta.get("optional"):
            continue
        name = key.rsplit("node_modules/", 1)[1]
        try:
            installed = json.loads((runtime_dir / key / "package.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            missing.append(f"{name}@{meta.get('version')}")
            continue
        if installed.get("version") != meta.get("version"):
            missing.append(f"{name}@{meta.get('version')}")
    return missing


_install_threads_lock = threading.Lock()


@contextlib.contextmanager
def _install_lock(runtime_dir: Path) -> Iterator[None]:
    """Serialise ``npm ci`` of one runtime folder across threads and processes."""
    digest = hashlib.sha256(str(runtime_dir.resolve()).encode()).hexdigest()[:16]
    lock_file = Path(tempfile.gettempdir()) / f"vidwatch-toon-npm-{digest}.lock"
    with _install_threads_lock, open(lock_file, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tail(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def find_node(node_binary: str) -> str:
    """The Node executable ``node_binary`` names (on PATH), else ToonUnavailable."""
    found = shutil.which(node_binary)
    if found is None:
        raise ToonUnavailable(
            f"Node.js executable {node_binary!r} not found: TOON files are written by "
            f"{LIBRARY} in Node. Install Node.js >= 18 with npm (e.g. apt-get install nodejs "
            f"npm), or {TURN_OFF}."
        )
    return found


def find_npm(npm_binary: str, node: str) -> str | None:
    """npm, on PATH or beside ``node``."""
    found = shutil.which(npm_binary)
    if found is None and os.sep not in npm_binary:
        found = shutil.which(npm_binary, path=str(Path(node).parent))
    return found


def ensure_runtime(runtime_dir: Path, node: str, npm_binary: str) -> None:
    """The helper's script present and its packages installed at their locked versions,
    with ``npm ci`` (once, under a lock across threads and processes) when they are not."""
    script = runtime_dir / SCRIPT_NAME
    if not script.is_file():
        raise ToonUnavailable(f"TOON helper script missing: {script}")
    if not missing_packages(runtime_dir):
        return
    with _install_lock(runtime_dir):
        missing = missing_packages(runtime_dir)
        if not missing:
            return
        npm = find_npm(npm_binary, node)
        if npm is None:
            raise ToonUnavailable(
                f"the TOON runtime needs {', '.join(missing)} and npm "
                f"({npm_binary!r}) was not found to install it: install npm and run "
                f"`npm ci` in {runtime_dir}, or {TURN_OFF}."
            )
        log.info("toon.npm_ci.start", runtime_dir=str(runtime_dir), missing=missing)
        started = time.monotonic()
        env = dict(os.environ)
        # npm is a Node script: let it find the same node we were told to use
        env["PATH"] = str(Path(node).parent) + os.pathsep + env.get("PATH", "")
        try:
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=runtime_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToonUnavailable(
                f"`npm ci` could not run in {runtime_dir}: {exc}; {TURN_OFF}"
            ) from exc
        if proc.returncode != 0:
            raise ToonUnavailable(
                f"`npm ci` failed in {runtime_dir} (exit {proc.returncode}): "
                f"{tail(proc.stderr or proc.stdout)}; fix that or {TURN_OFF}."
            )
        still = missing_packages(runtime_dir)
        if still:
            raise ToonUnavailable(
                f"`npm ci` in {runtime_dir} did not install {', '.join(still)}; {TURN_OFF}"
            )
        log.info(
            "toon.npm_ci.done",
            runtime_dir=str(runtime_dir),
            seconds=round(time.monotonic() - started, 2),
        )
