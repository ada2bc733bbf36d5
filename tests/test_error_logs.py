"""The guard of tests/error_logs.py, run on small test files with pytester: an unexpected
ERROR line fails a test, an expected one does not, whichever way it was logged."""

from __future__ import annotations

import pytest

from tests.error_logs import MARKER

HEADER = """
import logging

import pytest
import structlog
from structlog.testing import capture_logs

log = structlog.get_logger("vidwatch.somewhere")
"""


def run(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makeini(f"[pytest]\nmarkers =\n    {MARKER}(*events): expected ERROR events\n")
    pytester.makepyfile(HEADER + body)
    return pytester.runpytest_inprocess("-p", "tests.error_logs", "--strict-markers")


def test_an_unexpected_error_line_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_structlog():
    log.error("disk_on_fire", path="/x")

def test_exception():
    try:
        raise OSError("no")
    except OSError:
        log.exception("upload_failed")

def test_critical_inside_capture_logs():
    with capture_logs() as logs:
        log.critical("lost_everything")
    assert logs[0]["event"] == "lost_everything"

def test_stdlib_logger_of_ours():
    logging.getLogger("vidwatch.thing").error("stdlib %s", "broke")

@pytest.mark.expect_error_logs("something_else")
def test_marked_for_another_event():
    log.error("disk_on_fire")

def test_in_a_fixture_teardown(broken_teardown):
    pass

@pytest.fixture
def broken_teardown():
    yield
    log.error("teardown_failed")
""",
    )
    result.assert_outcomes(passed=6, errors=6)
    for event in ("disk_on_fire", "upload_failed", "lost_everything", "teardown_failed"):
        result.stdout.fnmatch_lines([f"*structlog: '{event}'*"])
    result.stdout.fnmatch_lines(["*structlog: 'disk_on_fire' (path='/x')"])
    result.stdout.fnmatch_lines(["*vidwatch.thing: 'stdlib broke'"])


def test_expected_and_lower_lines_pass(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.expect_error_logs("disk_on_fire", "stdlib broke")
def test_marked():
    log.error("disk_on_fire")
    log.exception("disk_on_fire")
    logging.getLogger("vidwatch.thing").error("stdlib broke")

pytestmark = pytest.mark.expect_error_logs("module_wide")

def test_marked_by_the_module():
    log.error("module_wide")

@pytest.mark.expect_error_logs("never_logged")
def test_an_expected_event_need_not_occur():
    pass

def test_warnings_and_other_libraries_pass():
    log.warning("slow")
    log.info("fine")
    logging.getLogger("botocore").error("not ours")
""",
    )
    result.assert_outcomes(passed=4)


def test_a_daemons_captured_error_lines_count_as_the_tests(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
from tests.error_logs import record_daemon_lines

LINES = [
    {"event": "job_failed", "level": "error", "job_id": "J"},
    {"event": "fine", "level": "info"},
    {"event": "Exception in ASGI application", "level": "error", "logger": "uvicorn.error"},
    {"event": "not ours", "level": "error", "logger": "botocore.hooks"},
]

def test_unexpected():
    record_daemon_lines("daemon d", LINES)

@pytest.mark.expect_error_logs("job_failed", "Exception in ASGI application")
def test_expected():
    record_daemon_lines("daemon d", LINES)
""",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*daemon d: 'job_failed' (job_id='J')"])
    result.stdout.fnmatch_lines(["*daemon d: 'Exception in ASGI application' (logger=*"])
    assert "not ours" not in result.stdout.str()
