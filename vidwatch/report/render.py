"""Renders the job page and the jobs list from status.json and results.json with one
Jinja2 template set (autoescaped: file names and labels are user data). The page is one
self-contained HTML document: its CSS and script are inline, the chapters track is a
``data:`` URL, and every image and the video come from ``link(key)``: signed links for the
API, paths relative to the job's folder for the static ``report.html``."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jinja2

from vidwatch import __version__
from vidwatch.pipeline.documents import FrameEntry, PersonEntry, Results
from vidwatch.pipeline.views import (
    NamedPerson,
    appearances,
    chapters_vtt,
    duration_s,
    scene_cast,
    scene_labels,
)
from vidwatch.r2 import keys
from vidwatch.times import video_time

MAX_FRAMES_SHOWN = 600
"""Sampled frames shown on the page (results.json and the frame documents hold them all)."""

Link = Callable[[str], str | None]


def clock(seconds: float | None, millis: bool = False) -> str:
    """The pages' ``clock`` filter: ``M:SS`` (``H:MM:SS`` past an hour), with ``millis``
    ``.mmm`` after; nothing for no time."""
    return "" if seconds is None else video_time(seconds, millis=millis)


def counted(n: Any, noun: str) -> str:
    """``1 face``, ``0 faces``, ``3 faces``: a count with its noun (nouns with a plain -s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("vidwatch.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["clock"] = clock
_env.filters["counted"] = counted


def _asset(name: str) -> str:
    return resources.files("vidwatch.report").joinpath("templates", name).read_text()


PAGE_CSS = _asset("page.css")
PAGE_JS = _asset("page.js")


def _render(name: str, **context: Any) -> str:
    base = {"css": PAGE_CSS, "js": PAGE_JS, "logout": False, "jobs_url": None, "search": None}
    return _env.get_template(name).render({**base, **context})


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@dataclass
class Rendered:
    """An HTML page and the Content-Security-Policy that fits it (the hashes of its inline
    style and script, the origins of its links)."""

    html: str
    origins: set[str] = field(default_factory=set)

    def csp(self) -> str:
        media = " ".join(["'self'", "data:", *sorted(self.origins)])
        return "; ".join(
            [
                "default-src 'none'",
                f"script-src {_csp_hash(PAGE_JS)}",
                f"style-src {_csp_hash(PAGE_CSS)}",
                f"img-src {media}",
                f"media-src {media}",
                "connect-src 'self'",
                "form-action 'self'",
                "base-uri 'none'",
                "frame-ancestors 'none'",
            ]
        )


class _Links:
    """``link(key)`` with the origins it returned remembered (for the page's CSP)."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self.origins: set[str] = set()

    def __call__(self, key: Any) -> str | None:
        if not isinstance(key, str) or not key:
            return None
        url = self._link(key)
        if url:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.netloc:
                self.origins.add(f"{parts.scheme}://{parts.netloc}")
        return url


def relative_link(job_id: str, made_by: str | None = None) -> Link:
    """Keys of the job as paths relative to ``jobs/<job_id>/`` (the static report). A
    duplicate's page shows the results of the job that analysed its bytes (``made_by``):
    their keys become paths into that job's folder beside it (``../<made_by>/...``)."""
    own = keys.job_prefix(job_id)
    other = keys.job_prefix(made_by) if made_by and made_by != job_id else None

    def link(key: str) -> str | None:
        if key.startswith(own):
            return key[len(own) :]
        if other is not None and key.startswith(other):
            return f"../{made_by}/{key[len(other) :]}"
        return None

    return link


def static_job_link(job_id: str) -> str:
    """Another job's page, from a static ``report.html``: its report beside this one."""
    return f"../{job_id}/report.html"


def _video_type(key: str | None) -> str | None:
    ctype = keys.content_type_for(key) if key else ""
    return ctype if ctype.startswith("video/") else None


def _timings(results: Results) -> list[tuple[str, Any]]:
    """The stage times, ``wall`` first (the job's length), then the stages by name: they
    overlap, so they are not parts of ``wall``."""
    return sorted(results.timings_s.to_json().items(), key=lambda kv: (kv[0] != "wall", kv[0]))


def _percent(status: dict[str, Any]) -> float:
    progress = status.get("progress") or {}
    return float(progress.get("percent") or 0.0)


def job_view(status: dict[str, Any], results: Results | None, link: _Links) -> dict[str, Any]:
    """Everything the job template shows, with links made and times formatted. ``link`` is
    a ``_Links``: it takes keys that may be missing (None) from the documents."""
    source = status.get("source") or {}
    view: dict[str, Any] = {
        "job_id": status.get("job_id"),
        "state": status.get("state"),
        "stage": status.get("stage"),
        "percent": _percent(status),
        "progress": status.get("progress") or {},
        "filename": source.get("filename") or "(no name)",
        "origin": source.get("origin"),
        "source_bytes": source.get("bytes"),
        "created_at": status.get("created_at"),
        "finished_at": status.get("finished_at"),
        "error": status.get("error"),
        "duplicate_of": status.get("duplicate_of"),
        "warnings": status.get("warnings") or [],
        "video_url": link(source.get("key")) if source.get("key") else None,
        # A source.bin has no video type to name: the player finds out from its bytes.
        "video_type": _video_type(source.get("key")),
        "results": None,
    }
    if results is not None:
        view["results"] = _results_view(results, link)
    return view


def _results_view(results: Results, link: _Links) -> dict[str, Any]:
    frames = sorted(results.frames, key=lambda f: f.frame)
    by_frame = {f.frame: f for f in frames}
    cast, labels = scene_cast(results), scene_labels(results)
    scenes = []
    for scene in results.scenes:
        key_frame = by_frame.get(scene.keyframe) or next(
            (f for f in frames if f.scene == scene.index), None
        )
        scenes.append(
            {
                "index": scene.index,
                "number": scene.index + 1,
                "start_s": scene.start_s,
                "end_s": scene.end_s,
                "frames": scene.end_frame - scene.start_frame,
                "thumb": link(key_frame.images.original) if key_frame else None,
                "cast": cast.get(scene.index, []),
                "labels": labels.get(scene.index, []),
            }
        )
    people = [_person_view(p, link) for p in results.people]
    total_s = duration_s(results) or 1.0
    # A person's library name where the page was given names (the API's pages).
    named = {str(p["id"]): str(p["name"]) for p in people if p["name"]}
    vtt = chapters_vtt(results) if results.scenes else None
    provenance = results.provenance.to_json()
    return {
        "video": results.video.to_json(),
        "duration_s": total_s,
        "scenes": scenes,
        "frames": [_frame_view(f, link) for f in frames[:MAX_FRAMES_SHOWN]],
        "frames_total": len(frames),
        "people": people,
        "names": {p["id"]: p["name"] for p in people if p["name"]},
        "has_people": "people" in results.model_fields_set,
        "timeline": _timeline_rows(results, total_s, named),
        "exports": [
            {"name": name, "file": key.rsplit("/", 1)[-1], "url": link(key)}
            for name, key in results.exports.items()
        ],
        "summary": results.summary.to_json(),
        "provenance": provenance,
        "models": provenance["models"],
        "settings": provenance["settings"],
        "timings_ordered": _timings(results),
        "chapters": "data:text/vtt;base64," + base64.b64encode(vtt.encode()).decode()
        if vtt
        else None,
    }


def _frame_view(f: FrameEntry, link: _Links) -> dict[str, Any]:
    images = f.images.to_json()
    return {
        "frame": f.frame,
        "time_s": f.time_s,
        "scene": f.scene,
        "urls": {kind: link(images.get(kind)) for kind in keys.IMAGE_KINDS},
        "objects": len(f.objects),
        "segments": len(f.segments),
        "faces": len(f.faces),
        "labels": sorted({o.label for o in f.objects}),
    }


def _person_view(p: PersonEntry, link: _Links) -> dict[str, Any]:
    return {
        "id": p.person,
        "thumb": link(p.thumbnail),
        "faces": p.faces,
        "scenes": p.scenes,
        "first_s": p.first_s,
        "last_s": p.last_s,
        "name": p.name if isinstance(p, NamedPerson) else None,
        "library_id": p.library_id,
    }


def _timeline_rows(results: Results, total_s: float, named: dict[str, str]) -> list[dict[str, Any]]:
    """One row per label and person (people first), its appearances as spans placed in
    percent of the video's length."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in appearances(results):
        rows.setdefault((a.kind, a.name), []).append(
            {
                "start_s": a.start_s,
                "end_s": a.end_s,
                "scene": a.scene,
                "left": round(100.0 * a.start_s / total_s, 3),
                "width": round(max(0.4, 100.0 * (a.end_s - a.start_s) / total_s), 3),
            }
        )

    def row_name(kind: str, name: str) -> str:
        if kind != "person":
            return name
        return named.get(name) or f"Person {name}"

    return [
        {"kind": kind, "name": row_name(kind, name), "spans": spans}
        for (kind, name), spans in sorted(
            rows.items(), key=lambda kv: (kv[0][0] != "person", kv[0][1])
        )
    ]


def render_job(
    status: dict[str, Any],
    results: Results | None,
    link: Link,
    *,
    status_url: str | None = None,
    jobs_url: str | None = None,
    logout: bool = False,
    job_link: Callable[[str], str] = str,
    start_s: float | None = None,
    person_link: Callable[[str], str] | None = None,
) -> Rendered:
    """The job page. ``status_url`` (the API) makes a queued or running job's page poll its
    status and reload when it ends; ``jobs_url`` links back to the list; ``job_link`` makes
    another job's page address from its id (the API's pages: the id, relative to /jobs/);
    ``start_s`` starts the video there (``/jobs/{id}?t=``). The API's page (``jobs_url``
    given) carries the search box; the static report has no /search to ask.
    ``person_link`` a library person's page from its id (the API's pages only: the static
    report has none, and shows no names, which change after it is written)."""
    links = _Links(link)
    view = job_view(status, results, links)
    original = view.get("duplicate_of")
    view["duplicate_url"] = job_link(original) if isinstance(original, str) else None
    if view["results"] is not None and person_link is not None:
        for person in view["results"]["people"]:
            lid = person.get("library_id")
            person["library_url"] = person_link(lid) if lid else None
    live = status_url if status.get("state") in ("queued", "running") else None
    html = _render(
        "job.html.j2",
        job=view,
        status_url=live,
        jobs_url=jobs_url,
        logout=logout,
        version=__version__,
        image_kinds=keys.IMAGE_KINDS,
        start_s=start_s,
        search={"q": ""} if jobs_url else None,
    )
    return Rendered(html, links.origins)


def render_jobs(
    rows: list[dict[str, Any]],
    *,
    older_url: str | None = None,
    logout: bool = False,
    filters: dict[str, str] | None = None,
) -> Rendered:
    """The jobs list: one row per status.json (newest first, as given). ``filters`` (the
    catalog's: state, origin, text) shows the filter form with their values."""
    items = []
    for status in rows:
        source = status.get("source") or {}
        summary = status.get("summary") or {}
        items.append(
            {
                "job_id": status.get("job_id"),
                "state": status.get("state"),
                "stage": status.get("stage"),
                "percent": _percent(status),
                "origin": source.get("origin"),
                "filename": source.get("filename") or "(no name)",
                "duration_s": summary.get("duration_s"),
                "created_at": status.get("created_at"),
                "error": (status.get("error") or {}).get("code"),
            }
        )
    html = _render(
        "jobs.html.j2",
        jobs=items,
        older_url=older_url,
        logout=logout,
        filters=filters,
        jobs_url="/jobs",
        search={"q": ""},
    )
    return Rendered(html)


def render_search(
    hits: list[dict[str, Any]],
    *,
    form: dict[str, Any],
    next_url: str | None = None,
    logout: bool = False,
    searched: bool = False,
) -> Rendered:
    """The search page: the form and one card per scene (``/search``'s JSON hits, their
    thumbnails already signed links)."""
    links = _Links(lambda url: url)
    cards = [{**hit, "thumb": links(hit.get("thumbnail"))} for hit in hits]
    html = _render(
        "search.html.j2",
        hits=cards,
        form=form,
        next_url=next_url,
        logout=logout,
        searched=searched,
        jobs_url="/jobs",
        search={"q": form.get("q") or ""},
    )
    return Rendered(html, links.origins)


def render_login(*, next_path: str, failed: bool = False) -> Rendered:
    html = _render("login.html.j2", next_path=next_path, failed=failed)
    return Rendered(html)


def render_error(title: str, message: str) -> Rendered:
    html = _render("error.html.j2", title=title, message=message)
    return Rendered(html)
