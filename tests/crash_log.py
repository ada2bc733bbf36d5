"""A crash log for the test process: a run killed by a signal (SIGSEGV, SIGBUS, SIGABRT of a
native library) prints no report and pytest sets no exit code; this file says which test it
was in, with faulthandler's traceback of every thread.

``<rootdir>/.pytest_cache/crash-<pid>.log`` is made at the start and removed at a normal end,
so one that is left names a dead process. Before every test it is emptied, names the test
and takes faulthandler over again: a pytest run in-process (pytester) leaves faulthandler
writing to the fd 2 it saw, which during a test is pytest's capture file, lost with the
process. ``.ci/run`` prints the logs left behind.
"""

from __future__ import annotations

import faulthandler
import os
import time
from pathlib import Path

import pytest

_fd = pytest.StashKey[int]()
_path = pytest.StashKey[Path]()
_config: list[pytest.Config] = []


def crash_log_path(config: pytest.Config) -> Path:
    return config.rootpath / ".pytest_cache" / f"crash-{os.getpid()}.log"


@pytest.hookimpl(trylast=True)  # after pytest's faulthandler plugin: this file is the last word
def pytest_configure(config: pytest.Config) -> None:
    path = crash_log_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    config.stash[_path] = path
    config.stash[_fd] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    faulthandler.enable(file=config.stash[_fd], all_threads=True)
    _config.append(config)


@pytest.hookimpl(tryfirst=True)  # before pytest's faulthandler plugin restores its own
def pytest_unconfigure(config: pytest.Config) -> None:
    if _fd not in config.stash:
        return
    faulthandler.disable()
    os.close(config.stash[_fd])
    config.stash[_path].unlink(missing_ok=True)  # the process lived to the end
    del config.stash[_fd]
    _config.remove(config)


def pytest_report_header(config: pytest.Config) -> str:
    return f"crash log (left only if this process dies of a signal): {crash_log_path(config)}"


def pytest_runtest_logstart(nodeid: str) -> None:
    if not _config or _fd not in _config[-1].stash:
        return
    fd = _config[-1].stash[_fd]
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.write(fd, f"{stamp} pid {os.getpid()} in {nodeid}\n".encode())
    faulthandler.enable(file=fd, all_threads=True)
