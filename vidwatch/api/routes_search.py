"""``GET /search``: scenes of every job in the catalog, by words (prefix, over labels, person
names and file names; every word must match), labels, people (all of them in the scene), job
and creation time; one hit per scene, newest job first, then scene order; paged by
``cursor``. JSON, or the search page for browsers (``Accept``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from vidwatch.api.context import ApiContext, Ctx
from vidwatch.api.errors import ApiError, documented
from vidwatch.api.links import request_base_url
from vidwatch.api.negotiate import wants_html
from vidwatch.api.page_html import html as page
from vidwatch.api.pages import next_url
from vidwatch.catalog import Catalog
from vidwatch.catalog.query import QueryError, SearchQuery, parse_search
from vidwatch.catalog.search import SceneHit
from vidwatch.r2 import keys
from vidwatch.report.render import render_error, render_search

router = APIRouter()


def seconds(value: float) -> str:
    """``12.48`` (milliseconds at most, no trailing zeros) for ``?t=``."""
    return f"{max(0.0, value):.3f}".rstrip("0").rstrip(".")


def page_url(job_id: str, start_s: float) -> str:
    """The job page, playing from ``start_s``."""
    return f"/jobs/{job_id}?t={seconds(start_s)}"


def catalog_of(ctx: ApiContext) -> Catalog:
    if ctx.catalog is None:
        raise ApiError(503, "catalog_unavailable", "this API has no catalog (run the daemon)")
    return ctx.catalog


def hit_json(ctx: ApiContext, hit: SceneHit) -> dict[str, Any]:
    ttl_s = ctx.settings.r2_url_ttl_seconds
    thumb = hit.thumbnail
    own = thumb is not None and thumb.startswith(keys.job_prefix(hit.job_id))
    return {
        "job_id": hit.job_id,
        "file_name": hit.file_name,
        "scene": hit.scene,
        "start_s": hit.start_s,
        "end_s": hit.end_s,
        "labels": hit.labels,
        "people": hit.people,
        "thumbnail": ctx.store.signed_url(thumb, ttl_s) if thumb and own else None,
        "page": page_url(hit.job_id, hit.start_s),
    }


def _query(request: Request) -> SearchQuery:
    params = request.query_params
    return parse_search(
        q=params.get("q"),
        label=params.getlist("label"),
        person=params.getlist("person"),
        job=params.get("job"),
        from_=params.get("from"),
        to=params.get("to"),
        limit_=params.get("limit"),
        cursor_=params.get("cursor"),
    )


@router.get(
    "/search",
    summary="Scenes of every job, by words, labels, people, job and time",
    description="Query: `q` (words, case-insensitive prefixes over labels, person names and "
    "file names; all must match), `label` and `person` (repeatable: all of them in the "
    "scene; a person is a library id or `<job_id>:<person>`), `job`, `from`/`to` (job "
    "creation time, ISO 8601), `limit` (50, at most 500), `cursor` (an answer's `next`). "
    "Browsers (`Accept: text/html`) get the search page.",
    responses={
        200: {"description": '{"hits": [...], "next": cursor or null}'},
        **documented(401, 422, 503),
    },
)
def search(ctx: Ctx, request: Request) -> Response:
    html = wants_html(request, default=False)
    try:
        query = _query(request)
    except QueryError as exc:
        if html:
            return page(render_error("Not a search", str(exc)), 422)
        raise ApiError(422, "invalid_request", str(exc)) from None
    catalog = catalog_of(ctx)
    found, cursor = catalog.search(query)
    with request_base_url(ctx.base_url(request)):
        hits = [hit_json(ctx, hit) for hit in found]
    if html:
        params = request.query_params
        form = {
            "q": params.get("q") or "",
            "label": params.getlist("label"),
            "person": params.getlist("person"),
            "job": params.get("job") or "",
            "from": params.get("from") or "",
            "to": params.get("to") or "",
        }
        return page(
            render_search(
                hits,
                form=form,
                next_url=next_url(request, cursor),
                logout=ctx.settings.api_token is not None,
                searched=bool(request.query_params),
            )
        )
    return JSONResponse(
        {"hits": hits, "next": str(cursor) if cursor is not None else None},
        headers={"Cache-Control": "no-store"},
    )
