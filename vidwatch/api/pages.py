"""The job pages: ``GET /jobs`` (the list, newest first) and ``GET /jobs/{job_id}`` (one
job: video with scene chapters, scene strip, frames, people, timeline, provenance; live
progress while it runs; the error when it failed), rendered on the server by
``vidwatch.report.render``; images and video through the same signed links as /results.
``GET /login``, ``POST /login`` and ``POST /logout`` give browsers their way in when
API_TOKEN is set (``vidwatch.api.session``)."""

from __future__ import annotations

import hmac
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Annotated, Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from vidwatch.api.context import ApiContext, Ctx
from vidwatch.api.errors import ApiError, store_unavailable
from vidwatch.api.links import request_base_url
from vidwatch.api.negotiate import wants_html
from vidwatch.api.page_html import PAGE_HEADERS, html
from vidwatch.api.session import SESSION_COOKIE, SESSION_TTL_S, cookie_value, parse_cookie
from vidwatch.catalog.query import LIMIT_DEFAULT as LIST_DEFAULT
from vidwatch.catalog.query import LIMIT_MAX as LIST_MAX
from vidwatch.catalog.query import QueryError, parse_jobs
from vidwatch.catalog.rows import SLOT_BITS
from vidwatch.library.jobs import named
from vidwatch.library.people import names_of
from vidwatch.pipeline.documents import Results
from vidwatch.pipeline.views import read_results
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectNotFound, StoreError
from vidwatch.report.render import render_error, render_job, render_jobs, render_login

log = structlog.get_logger("vidwatch.api")


def next_url(request: Request, cursor: int | None) -> str | None:
    """This request's URL with the next page's cursor (and without ``before``)."""
    if cursor is None:
        return None
    drop = ("cursor", "before")
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in drop]
    return f"{request.url.path}?{urlencode([*pairs, ('cursor', str(cursor))])}"


_STATUS_READERS = 8


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


@router.get(
    "/jobs",
    summary="The jobs list (HTML; JSON for Accept: application/json)",
    responses={
        **_SIGN_IN,
        200: {
            "description": 'The page, or `{"jobs": [...], "next"}`',
            "content": {"text/html": {}, "application/json": {}},
        },
        422: {"description": "A bad filter"},
    },
)
def jobs_page(
    ctx: Ctx,
    request: Request,
    before: Annotated[str | None, Query(max_length=40)] = None,
    state: Annotated[str | None, Query(description="queued, running, completed, failed")] = None,
    origin: Annotated[str | None, Query(description="api, inbox, bucket, cli")] = None,
    text: Annotated[str | None, Query(description="words: file name, labels, names")] = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = LIST_DEFAULT,
    cursor: Annotated[str | None, Query(description="an answer's next")] = None,
) -> Response:
    """The jobs, newest first: state, progress, origin, file name, duration. The page for
    browsers, ``{"jobs": [...], "next"}`` for ``Accept: application/json``. With a catalog
    it is read from there (filters ``state``, ``origin``, ``text``; pages by ``cursor``),
    without listing the store; ``before`` (a job id) pages on to older jobs too."""
    as_page = wants_html(request, default=True)
    if ctx.catalog is None:
        return _listed_jobs(ctx, before, limit, as_page)
    params = request.query_params
    try:
        query = parse_jobs(
            state=state,
            origin=origin,
            text=text,
            limit_=str(limit),
            cursor_=cursor or _cursor_of(ctx, before),
        )
    except QueryError as exc:
        if as_page:
            return html(render_error("Not a job filter", str(exc)), 422)
        raise ApiError(422, "invalid_request", str(exc)) from None
    rows, following = ctx.catalog.jobs(query)
    rows = _live(ctx, rows)
    older = next_url(request, following)
    if not as_page:
        for row in rows:
            row["page"] = f"/jobs/{row['job_id']}"
        body = {"jobs": rows, "next": str(following) if following is not None else None}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})
    filters = {k: params.get(k) or "" for k in ("state", "origin", "text")}
    page = render_jobs(
        [_as_status(row) for row in rows],
        older_url=older,
        logout=ctx.settings.api_token is not None,
        filters=filters,
    )
    return html(page)


def _cursor_of(ctx: ApiContext, before: str | None) -> str | None:
    """The older pages' link of earlier versions: ``?before=<job_id>``."""
    job_id = keys.normalize_job_id(before or "")
    if job_id is None or ctx.catalog is None:
        return None
    key = ctx.catalog.job_key(job_id)
    if key is None:  # gone meanwhile: its time still says where the older jobs begin
        key = int(keys.job_id_time(job_id) * 1000) << SLOT_BITS
    return str(key)


def _live(ctx: ApiContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queued and running jobs with their progress of now (their status.json): the catalog
    keeps a job's state changes, not every progress write."""
    pending = [i for i, row in enumerate(rows) if row["state"] in ("queued", "running")]
    if not pending:
        return rows
    try:
        with ThreadPoolExecutor(min(_STATUS_READERS, len(pending))) as pool:
            found = list(
                pool.map(lambda i: _read_json(ctx, keys.status_key(rows[i]["job_id"])), pending)
            )
    except StoreError:
        return rows
    for i, status in zip(pending, found, strict=True):
        if status is None:
            continue
        progress = status.get("progress") or {}
        rows[i]["state"] = status.get("state", rows[i]["state"])
        rows[i]["stage"] = status.get("stage", rows[i]["stage"])
        rows[i]["percent"] = progress.get("percent", rows[i]["percent"])
    return rows


def _as_status(row: dict[str, Any]) -> dict[str, Any]:
    """A catalog row in the shape of the status.json the list template reads."""
    return {
        "job_id": row["job_id"],
        "state": row["state"],
        "stage": row["stage"],
        "progress": {"percent": row["percent"]},
        "source": {"origin": row["origin"], "filename": row["file_name"]},
        "summary": {"duration_s": row["duration_s"]},
        "created_at": row["created_at"],
        "error": {"code": row["error"]} if row["error"] else None,
    }


def _listed_jobs(ctx: ApiContext, before: str | None, limit: int, as_page: bool) -> Response:
    """Without a catalog (the API alone): the store's job folders, newest first."""
    try:
        ids = sorted(ctx.reads.list_job_ids(), reverse=True)  # ULIDs sort by creation time
        if before:
            ids = [i for i in ids if i < before.strip().upper()]
        page = list(islice(ids, limit + 1))
        with ThreadPoolExecutor(_STATUS_READERS) as pool:
            found = list(pool.map(lambda i: _read_json(ctx, keys.status_key(i)), page[:limit]))
    except StoreError as exc:
        if not as_page:
            raise store_unavailable(exc) from None
        return html(render_error("The store is unavailable", str(exc)), 503)
    rows = [s for s in found if s is not None]
    last = page[limit - 1] if len(page) > limit else None
    if not as_page:
        body = {"jobs": rows, "next": None, "next_before": last}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})
    older = f"/jobs?before={last}&limit={limit}" if last else None
    return html(render_jobs(rows, older_url=older, logout=ctx.settings.api_token is not None))


@router.get(
    "/jobs/{job_id}",
    summary="One job's page (HTML)",
    responses={
        **_SIGN_IN,
        404: {"description": "No such job"},
        422: {"description": "Not a job id"},
    },
)
def job_page(
    ctx: Ctx,
    job_id: str,
    request: Request,
    t: Annotated[str | None, Query(description="seconds: the video plays from there")] = None,
) -> Response:
    """The video with its scene chapters, the scenes, people, timeline, frames, exports and
    provenance; live progress while the job runs; the error when it failed. ``?t=<seconds>``
    starts the video there (a search hit's scene)."""
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
        results = _read_results(ctx, made_by) if status.get("state") == "completed" else None
        if results is not None:  # names from the library, current now
            results.people[:] = named(results.people, names_of(ctx.library))
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
                start_s=_start(t),
                person_link=(lambda lid: f"/people/{lid}") if ctx.library else None,
            )
    except StoreError as exc:
        return html(render_error("The store is unavailable", str(exc)), 503)
    return html(page)


def _read_results(ctx: ApiContext, job_id: str) -> Results | None:
    """The job's results.json as the model; None when it is missing, or is not one the
    model accepts (the page then shows the job without results, and the log says why)."""
    data = _read_json(ctx, keys.results_key(job_id))
    if data is None:
        return None
    try:
        return read_results(data)
    except ValidationError as exc:
        log.warning("results_unreadable", job_id=job_id, errors=exc.error_count())
        return None


def _start(t: str | None) -> float | None:
    """``?t=`` as seconds; anything else is no start (the page still shows)."""
    try:
        value = float(t) if t is not None else None
    except ValueError:
        return None
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return round(value, 3)


def _api_token(ctx: Ctx) -> bytes | None:
    """API_TOKEN's value, taken out of its secret type only here, where it is compared."""
    token = ctx.settings.api_token
    return None if token is None else token.get_secret_value().encode()


@router.get("/login", summary="The sign-in form (HTML)", responses=_REDIRECT)
def login_form(ctx: Ctx, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    """With API_TOKEN set, the one-field form; without, a redirect to ``next``."""
    if ctx.settings.api_token is None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return login_page(next or "/jobs", status_code=200)


@router.post(
    "/login",
    summary="Sign in a browser",
    responses={
        **_REDIRECT,
        401: {"description": "A wrong token: the form again (HTML)"},
        429: {"description": "Too many wrong tokens from this address (JSON, Retry-After)"},
    },
)
def login(
    ctx: Ctx,
    request: Request,
    token_field: Annotated[str, Form(alias="token", max_length=4096)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/jobs",
) -> Response:
    """The right token sets the session cookie ``vidwatch_session`` and redirects to
    ``next`` (a path of this site)."""
    token = _api_token(ctx)
    target = _safe_next(next)
    if token is None:
        return RedirectResponse(target, status_code=303)
    address = request.client.host if request.client else "unknown"
    now = time.time()
    wait_s = ctx.login_throttle.wait_s(address, now)
    if wait_s > 0:
        log.warning("login_throttled", client=address, retry_after_s=round(wait_s, 1))
        raise ApiError(
            429,
            "too_many_login_attempts",
            f"more than {ctx.login_throttle.allowed} wrong tokens within "
            f"{ctx.login_throttle.window_s:g} s from this address; try again later",
            headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
        )
    if not hmac.compare_digest(token_field.encode(), token):
        ctx.login_throttle.failed(address, now)
        log.info("login_failed", client=address)
        return login_page(target, failed=True)
    ctx.login_throttle.succeeded(address)
    try:
        session = ctx.sessions.open(now)
    except StoreError as exc:
        raise store_unavailable(exc) from None
    response = RedirectResponse(target, status_code=303, headers=PAGE_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        cookie_value(token, session),
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=ctx.base_url(request).startswith("https:"),
    )
    return response


@router.post("/logout", summary="Sign a browser out", responses=_REDIRECT)
def logout(ctx: Ctx, request: Request) -> Response:
    """Closes the session in the store (every daemon then refuses its cookie), clears the
    session cookie and redirects to the sign-in form."""
    token = _api_token(ctx)
    if token is not None:
        session = parse_cookie(token, request.cookies.get(SESSION_COOKIE), time.time())
        if session is not None:
            try:
                ctx.sessions.close(session)
            except StoreError as exc:
                raise store_unavailable(exc) from None
    response = RedirectResponse("/login" if token is not None else "/jobs", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
