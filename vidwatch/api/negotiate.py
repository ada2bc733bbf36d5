"""Which answer a request gets where one path serves a page and JSON: an explicit
``Accept: application/json`` (ranked above ``text/html``) always gets JSON, a browser's
``Accept`` (``text/html`` ranked first) the page; a request that names neither
(``*/*``, none) gets the path's default."""

from __future__ import annotations

from fastapi import Request


def _ranks(accept: str) -> dict[str, float]:
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            ranks[media.lower()] = max(q, ranks.get(media.lower(), 0.0))
    return ranks


def prefers_html(accept: str, *, default: bool) -> bool:
    """The rule, on an ``Accept`` header's value: True for the page, False for JSON."""
    ranks = _ranks(accept)
    html, json_ = ranks.get("text/html", 0.0), ranks.get("application/json", 0.0)
    if json_ > 0 and json_ >= html:
        return False
    if html > 0:
        return True
    return default


def wants_html(request: Request, *, default: bool) -> bool:
    """True for the page, False for JSON."""
    return prefers_html(request.headers.get("accept", ""), default=default)
