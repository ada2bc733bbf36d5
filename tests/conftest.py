"""Shared fixtures. Fixture modules of each area are registered here as plugins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Ultralytics looks up public DNS names at import to decide whether it is online; tests
# talk to loopback only, so it is told it is offline before anything imports it.
os.environ["YOLO_OFFLINE"] = "1"
os.environ.setdefault(
    "YOLO_CONFIG_DIR", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "ultralytics")
)

REPO = Path(__file__).resolve().parent.parent
MEDIA = Path(os.environ.get("VIDWATCH_TEST_MEDIA", REPO.parent / "shared" / "media"))

# Logs of in-process servers and jobs go nowhere, so pytest's output stays readable; tests
# that check log lines capture them with structlog.testing.capture_logs (subprocess daemons
# log as their own settings say). ERROR lines are still seen: see tests/error_logs.py.
from vidwatch.logs import configure_logging  # noqa: E402

configure_logging("json", "debug", stream=open(os.devnull, "w"))  # noqa: SIM115

# tests.error_logs fails a test on an ERROR log line it does not expect (the marker
# expect_error_logs names the ones it does); pytester runs that guard in its own test.
# tests.crash_log names the test (and every thread's traceback) of a run killed by a signal.
pytest_plugins: list[str] = [
    "tests.crash_log",
    "tests.error_logs",
    "tests.model_fixtures",
    "tests.s3_servers",
    "tests.report_fixtures",
    "pytester",
]


@pytest.fixture(scope="session")
def media() -> Path:
    """The shared test videos (``../shared/media`` beside the checkout)."""
    if not (MEDIA / "cuts_h264.mp4").is_file():
        pytest.fail(f"test media not found at {MEDIA}; set VIDWATCH_TEST_MEDIA")
    return MEDIA


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module, for the page tests."""
    from tests.api.browser import chromium

    with chromium() as launched:
        yield launched
