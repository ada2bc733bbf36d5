"""HTML answers of the ``/people`` routes, for browsers (``negotiate.wants_html``)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse

from vidwatch.api.context import ApiContext
from vidwatch.api.page_html import html
from vidwatch.report.people import render_people, render_person


def people_page(ctx: ApiContext, rows: list[dict[str, Any]], next_url: str | None) -> HTMLResponse:
    logout = ctx.settings.api_token is not None
    return html(render_people(rows, next_url=next_url, logout=logout))


def person_page(ctx: ApiContext, body: dict[str, Any]) -> HTMLResponse:
    return html(render_person(body, logout=ctx.settings.api_token is not None))
