"""A watch on a page's console errors and dialogs, for the Chromium tests (the browser
fixture: tests/api/conftest.py)."""

from __future__ import annotations


class Watch:
    """A page's console errors, uncaught exceptions and dialogs (an alert() would be one)."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
