"""The HTTP API: the user's analyze/status/results contract, served by the daemon itself.

``create_app`` builds the FastAPI app; ``vidwatch run`` serves it with one uvicorn worker
in the daemon's process, so an upload enters the same runner as inbox and bucket jobs.

Routes (every error is ``{"error": {"code", "message", "request_id"}}``):

- ``POST /analyze-video``: multipart ``file`` (the video) and optional
  ``cleanup_local_video_after_upload`` and ``reanalyze`` (``true``/``false``); 202
  ``{job_id, state, status_url, results_url, filename, bytes}``. 413 over
  MAX_UPLOAD_BYTES, 415 not multipart, 422 a bad field, 503 queue full or store down.
  ``Idempotency-Key``: the same key with the same bytes within 24 h answers the first
  job again (``Idempotent-Replayed: true``); with other bytes 422.
- ``GET /status/{job_id}``: status.json as stored; 404 unknown id, 422 malformed id.
- ``GET /results/{job_id}``: results.json (a duplicate's: the earlier job's, with
  ``duplicate_of``) with every artifact key turned into ``{"key",
  "url"}`` (signed, R2_URL_TTL_SECONDS) plus ``links: {ttl_s, expires_at}``; 409 with
  ``status`` while the job is queued or running (``job_not_finished``) or when it failed
  (``job_failed``, the job's own error in ``error.job_error``).
- ``GET /files/{key}?expires=&signature=`` (local store only): the signed links' target;
  403 for a missing, tampered or expired signature.
- ``GET /healthz`` (never needs the token), ``GET /metrics`` (Prometheus), ``/docs``.

With API_TOKEN set every route but ``/healthz`` and ``/files`` (whose signature is the
proof) needs ``Authorization: Bearer <API_TOKEN>``, compared in constant time.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidwatch import __version__, metrics
from vidwatch.api.links import (
    FileLinkSigner,
    default_base_url,
    link_results,
    load_signing_secret,
    request_base_url,
)
from vidwatch.api.upload import (
    CLEANUP_FIELD,
    FILE_FIELD,
    REANALYZE_FIELD,
    UploadError,
    receive_upload,
    remove_staging,
)
from vidwatch.config import Settings
from vidwatch.errors import QueueFull, VidwatchError
from vidwatch.jobs.dedupe import (
    IDEMPOTENCY_TTL_S,
    forget_idempotency,
    remember_idempotency,
)
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import ARRIVING, JobSpec, new_job_id, resolve_cleanup, staging_dir
from vidwatch.r2 import keys, quick_view
from vidwatch.r2.local import LocalStore
from vidwatch.r2.store import ObjectNotFound, ObjectStore, StoreError

log = structlog.get_logger("vidwatch.api")

UPLOAD_IDLE_TIMEOUT_S = 60.0
"""An upload that sends nothing for this long is dropped (408) with its staging folder."""
HEALTH_TIMEOUT_S = 10.0
QUEUE_FULL_RETRY_AFTER_S = 30
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UNAUTHENTICATED_PATHS = ("/healthz",)
_UNAUTHENTICATED_PREFIXES = ("/files/",)
_QUIET_ROUTES = ("/metrics", "/healthz")
_DOC_PATHS = ("/docs", "/openapi.json", "/docs/oauth2-redirect")


# --- errors --------------------------------------------------------------------------------
class ApiError(VidwatchError):
    """An answer other than success: ``http_status`` and a JSON body ``{"error": {code,
    message, request_id, **details}, **extra}``."""

    def __init__(
        self,
        http_status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message
        self.headers = headers
        self.details = details
        self.extra = extra or {}


def _request_id(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


def error_response(
    scope: Scope,
    http_status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    error = {"code": code, "message": message, "request_id": _request_id(scope), **(details or {})}
    return JSONResponse({"error": error, **(extra or {})}, status_code=http_status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "upload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
    507: "storage_full",
}


# --- response models (for the OpenAPI document) ----------------------------------------------
class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class JobAccepted(BaseModel):
    job_id: str
    state: str
    status_url: str
    results_url: str
    filename: str | None
    bytes: int


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "the video (at most MAX_UPLOAD_BYTES)",
                        },
                        CLEANUP_FIELD: {
                            "type": "string",
                            "enum": ["true", "false"],
                            "description": "override CLEANUP_LOCAL_VIDEO_AFTER_UPLOAD_"
                            "DEFAULT for this job's staged copy",
                        },
                        REANALYZE_FIELD: {
                            "type": "string",
                            "enum": ["true", "false"],
                            "description": "analyse afresh even when the same content "
                            "was analysed before (default false: such a job completes "
                            "at once with duplicate_of)",
                        },
                    },
                }
            }
        },
    },
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


# --- middleware ----------------------------------------------------------------------------
class RequestContextMiddleware:
    """Request ids (``X-Request-ID``, taken from the client when sane), the bearer token,
    one log line per request and the HTTP metrics."""

    def __init__(self, app: ASGIApp, *, api_token: str | None) -> None:
        self.app = app
        self.token = api_token.encode() if api_token else None

    def _authorized(self, scope: Scope) -> bool:
        path = scope["path"]
        if (
            self.token is None
            or path in _UNAUTHENTICATED_PATHS
            or path.startswith(_UNAUTHENTICATED_PREFIXES)
        ):
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    return hmac.compare_digest(given.strip(), self.token)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        # A keep-alive connection's callbacks can carry an earlier request's context into
        # this task (CPython gh-140947): start each request from an empty log context.
        structlog.contextvars.clear_contextvars()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                if self._authorized(scope):
                    await self.app(scope, receive, send_with_id)
                else:
                    response = error_response(
                        scope,
                        401,
                        "unauthorized",
                        "this route needs 'Authorization: Bearer <API_TOKEN>'",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                    await response(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = scope.get("route")
                label = getattr(route, "path", None) or (
                    scope["path"] if scope["path"] in _DOC_PATHS else "unmatched"
                )
                metrics.HTTP_REQUESTS.labels(route=label, status=str(status)).inc()
                metrics.HTTP_REQUEST_SECONDS.labels(route=label).observe(elapsed)
                quiet = scope["method"] in ("GET", "HEAD") and status < 400
                level = log.debug if quiet or label in _QUIET_ROUTES else log.info
                level(
                    "http_request",
                    method=scope["method"],
                    route=label,
                    path=scope["path"][:200],
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                )


# --- the app -------------------------------------------------------------------------------
def create_app(
    *,
    settings: Settings,
    store: ObjectStore,
    submit: Callable[[JobSpec], None],
    health: Callable[[], dict[str, Any]],
    notify: Callable[..., None] | None = None,
    signing_secret: bytes | None = None,
    upload_idle_timeout_s: float = UPLOAD_IDLE_TIMEOUT_S,
    health_timeout_s: float = HEALTH_TIMEOUT_S,
) -> FastAPI:
    """The API on ``store``. ``submit(spec)`` hands a staged job to the runner (QueueFull
    → 503); ``health()`` returns ``{"ok": bool, ...}`` (200 when ok is True, else 503).

    With a LocalStore the app installs the store's URL signer (links to its own
    ``/files`` route); the secret is ``signing_secret``, else URL_SIGNING_SECRET, else the
    one persisted in TEMP_MEDIA_DIR.
    """
    app = FastAPI(
        title="vidwatch",
        version=__version__,
        description="Video analysis: scenes, objects, masks and faces. Upload a video, poll "
        "its status, fetch its results with signed links to every artifact.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    ttl_s = settings.r2_url_ttl_seconds
    signer: FileLinkSigner | None = None
    if isinstance(store, LocalStore):
        secret = signing_secret or load_signing_secret(settings)
        signer = FileLinkSigner(secret, default_base_url(settings))
        store.set_url_signer(signer)

    def base_url(request: Request) -> str:
        return (settings.public_base_url or str(request.base_url)).rstrip("/")

    def job_id_param(job_id: str) -> str:
        normalised = keys.normalize_job_id(job_id)
        if normalised is None:
            raise ApiError(
                422, "invalid_job_id", f"{job_id[:40]!r} is not a job id (a 26-character ULID)"
            )
        return normalised

    # Reads a client waits on give up within STORE_PROBE_TIMEOUT_S (503), not after the
    # minute of retries that job writes use to ride out an outage.
    reads = quick_view(store, settings.store_probe_timeout_s)

    def read_status(job_id: str) -> bytes:
        try:
            return reads.get_bytes(keys.status_key(job_id))
        except ObjectNotFound:
            raise ApiError(404, "job_not_found", f"no job {job_id}") from None
        except StoreError as exc:
            raise _store_unavailable(exc) from None

    # --- errors ------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            request.scope,
            exc.http_status,
            exc.code,
            exc.message,
            headers=exc.headers,
            details=exc.details,
            extra=exc.extra,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(
            request.scope,
            exc.status_code,
            code,
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(
            request.scope, 422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}"
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "http_internal_error",
            path=request.url.path,
            error=repr(exc),
            request_id=_request_id(request.scope),
        )
        return error_response(
            request.scope,
            500,
            "internal_error",
            "internal error; the log has the details under this request id",
        )

    # --- routes --------------------------------------------------------------------------
    @app.post(
        "/analyze-video",
        status_code=202,
        response_model=JobAccepted,
        openapi_extra=_UPLOAD_BODY,
        summary="Upload a video for analysis",
        responses=_errors(400, 401, 408, 413, 415, 422, 503, 507),
    )
    async def analyze_video(request: Request) -> JSONResponse:
        idem = _idempotency_header(request)
        job_id = new_job_id()
        folder = staging_dir(settings, job_id)
        structlog.contextvars.bind_contextvars(job_id=job_id)
        arriving = ARRIVING.hold(job_id)  # the staging sweep leaves it alone meanwhile
        arriving.__enter__()
        try:
            try:
                upload = await receive_upload(
                    request,
                    input_dir=folder / "input",
                    max_file_bytes=settings.max_upload_bytes,
                    idle_timeout_s=upload_idle_timeout_s,
                )
            except UploadError as exc:
                await anyio.to_thread.run_sync(remove_staging, folder)
                metrics.API_UPLOADS.labels(outcome=exc.code).inc()
                log.info("upload_refused", code=exc.code, message=exc.message)
                raise ApiError(exc.status, exc.code, exc.message) from None
            except ClientDisconnect:
                await anyio.to_thread.run_sync(remove_staging, folder)
                metrics.API_UPLOADS.labels(outcome="client_disconnected").inc()
                log.warning("upload_aborted", reason="client disconnected")
                return Response(status_code=400)  # nobody is left to read it
            except TimeoutError:
                await anyio.to_thread.run_sync(remove_staging, folder)
                metrics.API_UPLOADS.labels(outcome="upload_timeout").inc()
                log.warning("upload_aborted", reason="idle timeout")
                raise ApiError(
                    408, "upload_timeout", f"no data for {upload_idle_timeout_s:g} s; upload again"
                ) from None
            except BaseException:
                remove_staging(folder)  # cancelled: no more awaiting
                raise
            if idem is not None:
                replay = await _idempotent(request, idem, job_id, folder, upload)
                if replay is not None:
                    return replay
            try:
                return await _accept(request, job_id, folder, upload)
            except BaseException:
                if idem is not None:
                    with contextlib.suppress(StoreError):
                        await anyio.to_thread.run_sync(forget_idempotency, store, idem, job_id)
                raise
        finally:
            arriving.__exit__(None, None, None)
            structlog.contextvars.unbind_contextvars("job_id")

    async def _idempotent(
        request: Request, idem: str, job_id: str, folder: Path, upload
    ) -> JSONResponse | None:
        """None: the key is new (now bound to this job). Else the answer: the earlier job
        for the same bytes, 422 for other bytes."""
        try:
            found = await anyio.to_thread.run_sync(
                lambda: remember_idempotency(
                    store, idem, job_id=job_id, sha256=upload.sha256, now=time.time()
                )
            )
        except StoreError as exc:
            await anyio.to_thread.run_sync(remove_staging, folder)
            raise _store_unavailable(exc) from None
        if found.outcome == "new":
            return None
        await anyio.to_thread.run_sync(remove_staging, folder)
        if found.outcome == "conflict":
            metrics.API_UPLOADS.labels(outcome="idempotency_conflict").inc()
            raise ApiError(
                422,
                "idempotency_key_reused",
                f"this Idempotency-Key was used within {IDEMPOTENCY_TTL_S / 3600:g} h for "
                f"other bytes (job {found.job_id}); use a new key for a new upload",
                details={"job_id": found.job_id},
            )
        metrics.API_UPLOADS.labels(outcome="idempotent_replay").inc()
        log.info("upload_replayed", earlier_job_id=found.job_id)
        try:
            state = json.loads(read_status(found.job_id)).get("state", "queued")
        except ApiError:
            state = "queued"
        base = base_url(request)
        status_url = f"{base}/status/{found.job_id}"
        body = {
            "job_id": found.job_id,
            "state": state,
            "status_url": status_url,
            "results_url": f"{base}/results/{found.job_id}",
            "filename": upload.filename,
            "bytes": upload.size,
        }
        return JSONResponse(
            body,
            status_code=202,
            headers={"Location": status_url, "Idempotent-Replayed": "true"},
        )

    async def _accept(request: Request, job_id: str, folder: Path, upload) -> JSONResponse:
        manifest = Manifest(
            job_id=job_id,
            origin="api",
            filename=upload.filename,
            source_key=keys.source_key(job_id, upload.ext),
            source_bytes=upload.size,
            source_sha256=upload.sha256 or None,
            reanalyze=upload.reanalyze,
            cleanup_local_source=resolve_cleanup(
                upload.cleanup_override, settings.cleanup_local_video_after_upload_default
            ),
        )
        spec = JobSpec(
            job_id=job_id,
            staged_source=upload.path,
            origin="api",
            filename=upload.filename,
            cleanup_override=upload.cleanup_override,
            reanalyze=upload.reanalyze,
        )
        try:
            await anyio.to_thread.run_sync(write_manifest, store, manifest)
        except StoreError as exc:
            await anyio.to_thread.run_sync(remove_staging, folder)
            metrics.API_UPLOADS.labels(outcome="store_unavailable").inc()
            raise _store_unavailable(exc) from None
        try:
            await anyio.to_thread.run_sync(submit, spec)
        except QueueFull:
            await anyio.to_thread.run_sync(_withdraw, job_id, folder)
            metrics.API_UPLOADS.labels(outcome="queue_full").inc()
            log.warning("upload_refused", code="queue_full")
            raise ApiError(
                503,
                "queue_full",
                "the job queue is full; try again later",
                headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)},
            ) from None
        except Exception:
            await anyio.to_thread.run_sync(_withdraw, job_id, folder)
            metrics.API_UPLOADS.labels(outcome="submit_failed").inc()
            raise
        metrics.API_UPLOADS.labels(outcome="accepted").inc()
        metrics.API_UPLOAD_BYTES.inc(upload.size)
        if notify is not None:
            await anyio.to_thread.run_sync(lambda: notify("job.queued", manifest))
        log.info(
            "job_submitted",
            origin="api",
            filename=upload.filename,
            bytes=upload.size,
            cleanup_override=upload.cleanup_override,
        )
        base = base_url(request)
        status_url = f"{base}/status/{job_id}"
        body = {
            "job_id": job_id,
            "state": "queued",
            "status_url": status_url,
            "results_url": f"{base}/results/{job_id}",
            "filename": upload.filename,
            "bytes": upload.size,
        }
        return JSONResponse(body, status_code=202, headers={"Location": status_url})

    def _withdraw(job_id: str, folder: Path) -> None:
        """The runner did not take the job: no manifest, no staged file."""
        remove_staging(folder)
        try:
            store.delete(keys.status_key(job_id))
        except StoreError as exc:
            log.error("manifest_withdraw_failed", error=str(exc))

    @app.get(
        "/status/{job_id}",
        summary="The job's status.json",
        responses={200: {"description": "status.json as stored"}, **_errors(401, 404, 422, 503)},
    )
    def get_status(job_id: str) -> Response:
        job_id = job_id_param(job_id)
        return Response(
            read_status(job_id),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    @app.get(
        "/results/{job_id}",
        summary="results.json with signed links",
        responses={
            200: {"description": "results.json; each artifact key is now {key, url}"},
            409: {
                "model": ErrorBody,
                "description": "not finished, or failed; `status` holds status.json",
            },
            **_errors(401, 404, 422, 503),
        },
    )
    def get_results(job_id: str, request: Request) -> Response:
        job_id = job_id_param(job_id)
        status = json.loads(read_status(job_id))
        state = status.get("state")
        if state == "failed":
            job_error = status.get("error") or {}
            raise ApiError(
                409,
                "job_failed",
                f"the job failed: {job_error.get('code', 'unknown')}: "
                f"{job_error.get('message', '')}".rstrip(": "),
                details={"job_error": job_error},
                extra={"status": status},
            )
        if state != "completed":
            progress = status.get("progress") or {}
            raise ApiError(
                409,
                "job_not_finished",
                f"the job is {state} (stage {status.get('stage')}, "
                f"{progress.get('percent', 0)}%); poll /status/{job_id}",
                extra={"status": status},
            )
        original = status.get("duplicate_of")
        made_by = original if isinstance(original, str) and keys.is_job_id(original) else job_id
        try:
            doc = json.loads(reads.get_bytes(keys.results_key(made_by)))
        except ObjectNotFound:
            raise ApiError(
                404,
                "results_not_found",
                f"job {made_by} completed but its results.json is gone (removed by retention?)",
            ) from None
        except StoreError as exc:
            raise _store_unavailable(exc) from None
        with request_base_url(base_url(request)):
            doc = link_results(doc, made_by, lambda key: store.signed_url(key, ttl_s), ttl_s)
        if made_by != job_id:
            # The same content was analysed by an earlier job: its results, its links.
            doc["job_id"], doc["duplicate_of"] = job_id, made_by
        return JSONResponse(doc, headers={"Cache-Control": "no-store"})

    if signer is not None:
        local: LocalStore = store  # type: ignore[assignment]

        @app.get(
            "/files/{key:path}",
            summary="A signed link's file (local store)",
            responses={200: {"description": "the file's bytes"}, **_errors(403, 404)},
        )
        def get_file(
            key: str, expires: str | None = None, signature: str | None = None
        ) -> Response:
            problem = signer.check(key, expires, signature, time.time())
            if problem is not None:
                message = {
                    "missing_signature": "this link needs expires= and signature=",
                    "invalid_signature": "the link's signature does not match",
                    "link_expired": "the link has expired; fetch /results again",
                }
                raise ApiError(403, problem, message[problem])
            if keys.job_id_of(key) is None:
                raise ApiError(404, "not_found", "no such file")
            try:
                path = local.path_for(key)
            except StoreError:
                raise ApiError(404, "not_found", "no such file") from None
            info = local.head(key)
            if info is None:
                raise ApiError(404, "not_found", "no such file")
            return FileResponse(
                path,
                media_type=info.content_type or "application/octet-stream",
                headers={"Cache-Control": "private, max-age=60"},
            )

        app.add_api_route("/files/{key:path}", get_file, methods=["HEAD"], include_in_schema=False)

    @app.get(
        "/healthz",
        summary="Process up, store reachable, runner alive",
        responses={503: {"description": "unhealthy; the body says what"}},
    )
    async def healthz() -> JSONResponse:
        try:
            with anyio.fail_after(health_timeout_s):
                result = await anyio.to_thread.run_sync(health, abandon_on_cancel=True)
        except TimeoutError:
            result = {"ok": False, "error": f"health check took over {health_timeout_s:g} s"}
        except Exception as exc:  # noqa: BLE001 - an unhealthy answer, not a 500
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        ok = isinstance(result, dict) and result.get("ok") is True
        body = {
            **(result if isinstance(result, dict) else {}),
            "ok": ok,
            "status": "ok" if ok else "unhealthy",
            "version": __version__,
        }
        return JSONResponse(
            body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"}
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def get_metrics() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # Inner first: CORS must be outermost so that preflights need no token.
    app.add_middleware(RequestContextMiddleware, api_token=settings.api_token)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
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
    app.state.settings = settings
    app.state.store = store
    return app


_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def _idempotency_header(request: Request) -> str | None:
    """The ``Idempotency-Key`` header (1-255 visible ASCII characters), checked before a
    byte of the body is read."""
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    value = value.strip().strip('"')
    if not _IDEMPOTENCY_KEY.match(value):
        raise ApiError(
            422,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is usual)",
        )
    return value


def _store_unavailable(exc: StoreError) -> ApiError:
    hint = f" (check {exc.setting})" if exc.setting else ""
    return ApiError(503, "store_unavailable", f"the object store failed: {exc}{hint}")
