"""Chromium for the page tests: Debian's Chromium driven by Playwright (PyPI), one launcher
for the ``browser`` fixture (tests/conftest.py) and for tests that want their own; and a watch
on a page's console errors and dialogs."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched Chromium (``--no-sandbox``, as every page test runs it), closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium not found: apt-get install chromium (as .ci/run does)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class Watch:
    """A page's console errors, uncaught exceptions and dialogs (an alert() would be one)."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
