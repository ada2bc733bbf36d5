"""A rendered page as an HTTP answer: its headers and its Content-Security-Policy.

Apart from the page routes (``pages.py``) so that the error handlers (``errors.py``),
which ``pages.py`` imports, can answer a browser with a page without importing it back.
"""

from __future__ import annotations

from fastapi.responses import HTMLResponse

from vidwatch.report.render import Rendered

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def html(
    page: Rendered, status_code: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return HTMLResponse(
        page.html,
        status_code=status_code,
        headers={**PAGE_HEADERS, "Content-Security-Policy": page.csp(), **(headers or {})},
    )
