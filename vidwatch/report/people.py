"""The people library's pages: ``/people`` (everyone, with thumbnails and the enrolment
form) and ``/people/{id}`` (every appearance across videos, a click opening the job page at
that time, and the forms to name, merge and forget). Rendered from the API's own JSON
bodies, with the template set and CSP of the job pages."""

from __future__ import annotations

from typing import Any

from vidwatch.report.render import Rendered, _Links, _render

_SERVED: dict[str, Any] = {"jobs_url": "/jobs", "search": {"q": ""}}
"""Pages the API serves carry its header: the links to every page and the search box."""


def _origins(urls: list[Any]) -> set[str]:
    links = _Links(lambda url: url)
    for url in urls:
        links(url)
    return links.origins


def render_people(
    people: list[dict[str, Any]], *, next_url: str | None = None, logout: bool = False
) -> Rendered:
    html = _render("people.html.j2", people=people, next_url=next_url, logout=logout, **_SERVED)
    return Rendered(html, _origins([p.get("thumbnail") for p in people]))


def render_person(person: dict[str, Any], *, logout: bool = False) -> Rendered:
    html = _render("person.html.j2", person=person, logout=logout, **_SERVED)
    urls = [person.get("thumbnail"), *(a.get("thumbnail") for a in person["appearances"])]
    return Rendered(html, _origins(urls))
