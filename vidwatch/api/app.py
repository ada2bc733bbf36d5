"""The HTTP API: the user's analyze/status/results contract, served by the daemon itself.

``create_app(ctx)`` builds the FastAPI app from an ``ApiContext`` (settings, store, the
runner's submit, health, the URL signer); ``vidwatch run`` serves it with one uvicorn
worker in the daemon's process, so an upload enters the same runner as inbox and bucket
jobs. The routes live in routers, one module per concern:

- ``routes_jobs``: ``POST /analyze-video`` (multipart ``file`` and optional
  ``cleanup_local_video_after_upload`` and ``reanalyze``; 202 ``{job_id, state,
  status_url, results_url, filename, bytes}``; 413 over MAX_UPLOAD_BYTES, 415 not
  multipart, 422 a bad field, 503 queue full or store down; ``Idempotency-Key``) and
  ``GET /status/{job_id}`` (status.json as stored; 404 unknown id, 422 malformed id).
- ``routes_results``: ``GET /results/{job_id}`` (results.json with every artifact key
  turned into ``{"key", "url"}``, signed for R2_URL_TTL_SECONDS, plus ``links: {ttl_s,
  expires_at}``; a duplicate's are the earlier job's, with ``duplicate_of``; 409
  ``job_not_finished`` or ``job_failed`` with ``status``) and, for a store of local
  files, ``GET /files/{key}?expires=&signature=`` (403 for a missing, tampered or
  expired signature).
- ``routes_health``: ``GET /healthz`` (never needs the token), ``GET /metrics``.
- ``routes_search``: ``GET /search`` (scenes of every job from the catalog; JSON, or the
  search page for browsers).
- ``GET /docs``: Swagger UI on ``/openapi.json``, its files under ``/docs/assets/`` (from
  the package, nothing from a CDN); the pages below are in the document too (HTML answers).
- ``routes_people``: the people library, ``/people`` and ``/people/{id}`` (JSON, or the
  pages when a browser asks), enrol, rename, merge, forget.
- ``pages``: ``GET /jobs``, ``GET /jobs/{job_id}`` (HTML), ``GET|POST /login``,
  ``POST /logout`` (the browsers' sign-in: ``session``).

Every error is ``{"error": {"code", "message", "request_id"}}`` (``errors``). With
API_TOKEN set every route but ``/healthz``, ``/login``, ``/logout`` and ``/files`` (whose
signature is the proof) needs ``Authorization: Bearer <API_TOKEN>``, compared in constant
time, or on GET and HEAD the pages' session cookie (``middleware``); a page asked for
without either answers 401 with the sign-in form.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from vidwatch import __version__
from vidwatch.api import (
    pages,
    routes_health,
    routes_jobs,
    routes_people,
    routes_results,
    routes_search,
)
from vidwatch.api.context import ApiContext
from vidwatch.api.errors import install_error_handlers
from vidwatch.api.middleware import RequestContextMiddleware

DOCS_ASSETS = "/docs/assets"
"""Swagger UI's files (swagger-ui-bundle.js, swagger-ui.css, favicon.png), from the package."""


def routers(ctx: ApiContext) -> list[APIRouter]:
    """Every router the app serves, in order: adding one is one line here."""
    return [
        routes_jobs.router,
        routes_results.router,
        *([routes_results.files_router] if ctx.store.local_files else []),
        routes_health.router,
        routes_search.router,
        pages.router,
        routes_people.router,
    ]


def create_app(ctx: ApiContext) -> FastAPI:
    """The API on ``ctx``'s store: routers, error handlers, then the middleware. ``/docs``
    is Swagger UI from the package fastapi-offline, its script and style served under
    ``DOCS_ASSETS`` (FastAPI's own /docs fetches them from a CDN: blank on an offline host)."""
    app = FastAPIOffline(
        title="vidwatch",
        version=__version__,
        description="Video analysis: scenes, objects, masks and faces. Upload a video, poll "
        "its status, fetch its results with signed links to every artifact.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        static_url=DOCS_ASSETS,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    for router in routers(ctx):
        app.include_router(router)
    # Inner first: CORS must be outermost so that preflights need no token.
    app.add_middleware(
        RequestContextMiddleware, api_token=ctx.settings.api_token, sessions=ctx.sessions
    )
    origins = [o.strip() for o in ctx.settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "HEAD"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Location"],
            max_age=600,
        )
    return app
