"""The job pages: ``GET /jobs`` (the list, newest first) and ``GET /jobs/{job_id}`` (one
job: video with scene chapters, scene strip, frames, people, timeline, provenance; live
progress while it runs; the error when it failed), rendered on the server by
``vidwatch.report.render``; images and video through the same signed links as /results.
``GET /login``, ``POST /login`` and ``POST /logout`` give browsers their way in when
API_TOKEN is set (``vidwatch.api.session``)."""

from __future__ import annotations

import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from vidwatch.api.context import ApiContext, Ctx
from vidwatch.api.links import request_base_url
from vidwatch.api.session import SESSION_COOKIE, SESSION_TTL_S, session_value
from vidwatch.library.jobs import with_names
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectNotFound, StoreError
from vidwatch.report.render import Rendered, render_error, render_job, render_jobs, render_login

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
LIST_DEFAULT, LIST_MAX = 50, 500
_STATUS_READERS = 8


def html(
    page: Rendered, status_code: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return HTMLResponse(
        page.html,
        status_code=status_code,
        headers={**PAGE_HEADERS, "Content-Security-Policy": page.csp(), **(headers or {})},
    )


def login_page(next_path: str, *, failed: bool = False, status_code: int = 401) -> HTMLResponse:
    """The one-field sign-in form (401 where a page was asked for without a session)."""
    return html(render_login(next_path=_safe_next(next_path), failed=failed), status_code)


def _safe_next(path: str | None) -> str:
    """Only a path of this site: never ``//host`` or ``https://...`` (an open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/jobs"
    return path


router = APIRouter(tags=["pages"], default_response_class=HTMLResponse)
"""In the OpenAPI document too: they answer HTML (``text/html``), for browsers."""
_Responses = dict[int | str, dict[str, Any]]
_SIGN_IN: _Responses = {
    401: {"description": "With API_TOKEN set and no session: the sign-in form (HTML)"}
}
_REDIRECT: _Responses = {303: {"description": "Redirect (``Location``) to the page"}}


def _read_json(ctx: ApiContext, key: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(ctx.reads.get_bytes(key))
    except ObjectNotFound:
        return None
    return doc if isinstance(doc, dict) else None


@router.get("/jobs", summary="The jobs list (HTML)", responses=_SIGN_IN)
def jobs_page(
    ctx: Ctx,
    before: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = LIST_DEFAULT,
) -> Response:
    """The jobs, newest first: state, progress, origin, file name, duration; ``before`` (a
    job id) pages on to older jobs."""
    signed_in = ctx.settings.api_token is not None
    try:
        ids = sorted(ctx.reads.list_job_ids(), reverse=True)  # ULIDs sort by creation time
        if before:
            ids = [i for i in ids if i < before.strip().upper()]
        page = list(islice(ids, limit + 1))
        with ThreadPoolExecutor(_STATUS_READERS) as pool:
            found = list(pool.map(lambda i: _read_json(ctx, keys.status_key(i)), page[:limit]))
    except StoreError as exc:
        return html(render_error("The store is unavailable", str(exc)), 503)
    rows = [s for s in found if s is not None]
    older = f"/jobs?before={page[limit - 1]}&limit={limit}" if len(page) > limit else None
    return html(render_jobs(rows, older_url=older, logout=signed_in))


@router.get(
    "/jobs/{job_id}",
    summary="One job's page (HTML)",
    responses={
        **_SIGN_IN,
        404: {"description": "No such job"},
        422: {"description": "Not a job id"},
    },
)
def job_page(ctx: Ctx, job_id: str, request: Request) -> Response:
    """The video with its scene chapters, the scenes, people, timeline, frames, exports and
    provenance; live progress while the job runs; the error when it failed."""
    normalised = job_id.strip().upper()
    if not keys.is_job_id(normalised):
        return html(render_error("Not a job id", "A job id is a 26-character ULID."), 422)
    ttl_s = ctx.settings.r2_url_ttl_seconds
    try:
        status = _read_json(ctx, keys.status_key(normalised))
        if status is None:
            return html(render_error("No such job", f"There is no job {normalised}."), 404)
        # A duplicate shows the results (and links) of the job that analysed its bytes.
        original = status.get("duplicate_of")
        made_by = original if isinstance(original, str) and keys.is_job_id(original) else None
        made_by = made_by or normalised
        results = None
        if status.get("state") == "completed":
            results = _read_json(ctx, keys.results_key(made_by))
        if results is not None:  # names from the library, current now
            names = ctx.library.names_for if ctx.library else (lambda ids: {})
            results["people"] = with_names(results.get("people"), names)
        # Only keys of the job that made the results are signed, as /results does, and the
        # job's own (a duplicate's source video is its own upload, under its own id).
        prefixes = (keys.job_prefix(made_by), keys.job_prefix(normalised))
        with request_base_url(ctx.base_url(request)):
            page = render_job(
                status,
                results,
                lambda key: ctx.store.signed_url(key, ttl_s) if key.startswith(prefixes) else None,
                status_url=f"/status/{normalised}",
                jobs_url="/jobs",
                logout=ctx.settings.api_token is not None,
                person_link=(lambda lid: f"/people/{lid}") if ctx.library else None,
            )
    except StoreError as exc:
        return html(render_error("The store is unavailable", str(exc)), 503)
    return html(page)


@router.get("/login", summary="The sign-in form (HTML)", responses=_REDIRECT)
def login_form(ctx: Ctx, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    """With API_TOKEN set, the one-field form; without, a redirect to ``next``."""
    if ctx.settings.api_token is None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return login_page(next or "/jobs", status_code=200)


@router.post(
    "/login",
    summary="Sign in a browser",
    responses={**_REDIRECT, 401: {"description": "A wrong token: the form again (HTML)"}},
)
def login(
    ctx: Ctx,
    request: Request,
    token_field: Annotated[str, Form(alias="token", max_length=4096)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/jobs",
) -> Response:
    """The right token sets the session cookie ``vidwatch_session`` and redirects to
    ``next`` (a path of this site)."""
    token = ctx.settings.api_token
    target = _safe_next(next)
    if token is None:
        return RedirectResponse(target, status_code=303)
    if not hmac.compare_digest(token_field.encode(), token.encode()):
        return login_page(target, failed=True)
    response = RedirectResponse(target, status_code=303, headers=PAGE_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(token.encode(), time.time()),
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=ctx.base_url(request).startswith("https:"),
    )
    return response


@router.post("/logout", summary="Sign a browser out", responses=_REDIRECT)
def logout(ctx: Ctx) -> Response:
    """Clears the session cookie and redirects to the sign-in form."""
    signed_in = ctx.settings.api_token is not None
    response = RedirectResponse("/login" if signed_in else "/jobs", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
