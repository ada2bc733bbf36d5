"""The crash log of tests/crash_log.py, on small test files run by pytester in a subprocess
that dies of SIGSEGV: the log is left, names the test and holds faulthandler's traceback."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, body: str) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("PYTHONFAULTHANDLER", raising=False)
    pytester.makepyfile(body)
    return pytester.runpytest_subprocess("-p", "tests.crash_log", "-p", "pytester", timeout=120)


def logs_left(pytester: pytest.Pytester) -> list[str]:
    return [p.read_text() for p in (pytester.path / ".pytest_cache").glob("crash-*.log")]


def test_a_run_that_ends_leaves_no_log(pytester, monkeypatch):
    result = run(pytester, monkeypatch, "def test_fine():\n    pass\n")
    assert result.ret == 0
    assert "crash log (left only if this process dies of a signal)" in result.stdout.str()
    assert logs_left(pytester) == []


def test_a_segfault_leaves_the_test_and_its_traceback(pytester, monkeypatch):
    # A pytest run in-process first (as tests/test_error_logs.py does): it leaves faulthandler
    # on fd 2, which is the capture file during the next test; the log takes it back.
    result = run(
        pytester,
        monkeypatch,
        """
import faulthandler

def test_nested_run(pytester):
    pytester.makepyfile("def test_inner():\\n    pass\\n")
    assert pytester.runpytest_inprocess().ret == 0

def test_passes():
    pass

def test_crashes():
    faulthandler._sigsegv()

def test_never_runs():
    pass
""",
    )
    assert result.ret == -signal.SIGSEGV
    [log] = logs_left(pytester)
    first = log.splitlines()[0]
    assert first.endswith("in test_a_segfault_leaves_the_test_and_its_traceback.py::test_crashes")
    assert "Fatal Python error: Segmentation fault" in log
    assert "in test_crashes\n" in log, log  # the traceback of the crashing thread
