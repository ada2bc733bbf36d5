"""A test fails when our code logs an ERROR it did not say it expects.

Every test runs under ``error_log_guard`` (autouse): each log line at ERROR or above
emitted in the test process while the test runs (its fixtures' set-up and teardown
included) is recorded,

- structlog's, whatever the processors (``structlog.testing.capture_logs`` included): the
  bound logger class is wrapped, so the line is seen before any processor;
- the standard library's, from the loggers ``vidwatch.*`` and ``uvicorn.error`` (where an
  exception our ASGI app let out is logged).

A test that means to log errors names their events::

    @pytest.mark.expect_error_logs("job_failed", "webhook_delivery_failed")

(on a test, a class or a module's ``pytestmark``); any other ERROR line fails it, at its
teardown, with the lines found. An expected event need not occur (some are timing-bound).
Subprocess daemons log to their own files; those started through the ``daemons`` fixture
(tests/daemon/service_harness.py, JSON lines) have their ERROR lines counted too, as
``daemon <name>: ...``, when the fixture ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

MARKER = "expect_error_logs"
ERROR_METHODS = frozenset({"error", "exception", "critical", "fatal"})
STDLIB_LOGGERS = ("vidwatch", "uvicorn.error")
"""Standard-library loggers whose ERROR records count (ours, and uvicorn's report of an
exception out of our app); other libraries' errors are theirs."""


@dataclass(frozen=True)
class ErrorLine:
    event: str
    source: str  # "structlog" or the standard-library logger's name
    fields: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.fields.items() if k != "exc_info")
        return f"{self.source}: {self.event!r}" + (f" ({shown})" if shown else "")


class Recorder:
    """The ERROR lines of the test being run. Guards nest (a pytester run inside a test):
    the innermost one records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stack: list[list[ErrorLine]] = []

    def push(self) -> list[ErrorLine]:
        lines: list[ErrorLine] = []
        with self._lock:
            self._stack.append(lines)
        return lines

    def pop(self, lines: list[ErrorLine]) -> None:
        with self._lock:
            self._stack.remove(lines)

    def record(self, line: ErrorLine) -> None:
        with self._lock:
            if self._stack:
                self._stack[-1].append(line)


RECORDER = Recorder()


def _guarded(base: type) -> type:
    """``base`` (a structlog bound logger class) with every call at ERROR or above recorded
    before the processors run."""
    if getattr(base, "_error_log_guard", False):
        return base

    class Guarded(base):  # type: ignore[misc, valid-type]
        _error_log_guard = True

        def _proxy_to_logger(self, method_name: str, event: Any = None, **kw: Any) -> Any:
            if method_name in ERROR_METHODS:
                RECORDER.record(ErrorLine(str(event), "structlog", dict(kw)))
            return super()._proxy_to_logger(method_name, event, **kw)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


class _StdlibHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if any(name == ours or name.startswith(ours + ".") for ours in STDLIB_LOGGERS):
            RECORDER.record(ErrorLine(record.getMessage(), name))


STDLIB_HANDLER = _StdlibHandler()


def install() -> None:
    """Wrap structlog's bound logger class and hang the handler on the standard library's
    loggers, again if something (``configure_logging`` of an in-process command, uvicorn's
    dictConfig) has set them anew since."""
    wrapper = structlog.get_config()["wrapper_class"]
    if not getattr(wrapper, "_error_log_guard", False):
        structlog.configure(wrapper_class=_guarded(wrapper))
    # The root logger, and "uvicorn" which does not propagate to it under uvicorn's config.
    for logger in (logging.getLogger(), logging.getLogger("uvicorn")):
        if STDLIB_HANDLER not in logger.handlers:
            logger.addHandler(STDLIB_HANDLER)


def record_daemon_lines(source: str, events: Iterable[dict[str, Any]]) -> None:
    """The ERROR lines of a subprocess daemon whose JSON log a test captured (the
    ``daemons`` fixture of tests/daemon/service_harness.py hands them over at its end),
    counted as the test's own: ours, and the standard library's from ``STDLIB_LOGGERS``."""
    for event in events:
        if str(event.get("level", "")).lower() not in ERROR_METHODS:
            continue
        logger = event.get("logger")
        if logger is not None and not any(
            logger == ours or str(logger).startswith(ours + ".") for ours in STDLIB_LOGGERS
        ):
            continue
        fields = {
            k: v for k, v in event.items() if k not in ("event", "level", "timestamp", "exception")
        }
        RECORDER.record(ErrorLine(str(event.get("event")), source, fields))


def expected_events(item: pytest.Item) -> set[str]:
    return {str(event) for mark in item.iter_markers(MARKER) for event in mark.args}


def unexpected(lines: list[ErrorLine], expected: set[str]) -> list[ErrorLine]:
    return [line for line in lines if line.event not in expected]


@pytest.fixture(autouse=True)
def error_log_guard(request: pytest.FixtureRequest) -> Iterator[list[ErrorLine]]:
    """Fails the test (at teardown) on an ERROR log line it does not expect."""
    install()
    lines = RECORDER.push()
    try:
        yield lines
    finally:
        RECORDER.pop(lines)
        install()
    found = unexpected(lines, expected_events(request.node))
    if found:
        listed = "\n  ".join(str(line) for line in found)
        pytest.fail(
            f"unexpected ERROR log lines (mark the test "
            f'@pytest.mark.{MARKER}("event", ...) if they are meant):\n  {listed}',
            pytrace=False,
        )
