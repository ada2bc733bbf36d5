"""``POST /analyze-video`` (a streamed upload becomes a queued job; ``Idempotency-Key``:
the same key with the same bytes within 24 h answers the first job again, with
``Idempotent-Replayed: true``, with other bytes 422) and ``GET /status/{job_id}`` (the
job's status.json as stored)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from vidwatch import metrics
from vidwatch.api.context import ApiContext, Ctx
from vidwatch.api.errors import ApiError, documented, store_unavailable
from vidwatch.api.upload import (
    CLEANUP_FIELD,
    FILE_FIELD,
    REANALYZE_FIELD,
    Upload,
    UploadError,
    receive_upload,
    remove_staging,
)
from vidwatch.errors import QueueFull
from vidwatch.jobs.dedupe import IDEMPOTENCY_TTL_S, forget_idempotency, remember_idempotency
from vidwatch.jobs.manifest import Manifest, write_manifest
from vidwatch.jobs.staging import ARRIVING, JobSpec, new_job_id, resolve_cleanup, staging_dir
from vidwatch.r2 import keys
from vidwatch.r2.pending import clear_pending
from vidwatch.r2.store import ObjectNotFound, StoreError

log = structlog.get_logger("vidwatch.api")

QUEUE_FULL_RETRY_AFTER_S = 30
HEALTH_GLANCE_S = 1.0
"""How long an upload waits for the daemon's health answer (its cached store probe)."""

router = APIRouter()


# --- shared with the other routers --------------------------------------------------------------
async def valid_job_id(job_id: str) -> str:
    """The path's job id, upper-cased (Crockford base32 is case-insensitive); 422 when it is
    not a ULID."""
    normalised = keys.normalize_job_id(job_id)
    if normalised is None:
        raise ApiError(
            422, "invalid_job_id", f"{job_id[:40]!r} is not a job id (a 26-character ULID)"
        )
    return normalised


JobId = Annotated[str, Depends(valid_job_id)]


def read_status(ctx: ApiContext, job_id: str) -> bytes:
    """The job's status.json bytes; 404 unknown job, 503 store down."""
    try:
        return ctx.reads.get_bytes(keys.status_key(job_id))
    except ObjectNotFound:
        raise ApiError(404, "job_not_found", f"no job {job_id}") from None
    except StoreError as exc:
        raise store_unavailable(exc) from None


# --- upload -------------------------------------------------------------------------------------
class JobAccepted(BaseModel):
    job_id: str
    state: str
    status_url: str
    results_url: str
    filename: str | None
    bytes: int


_UPLOAD_BODY: dict[str, Any] = {
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


@router.post(
    "/analyze-video",
    status_code=202,
    response_model=JobAccepted,
    openapi_extra=_UPLOAD_BODY,
    summary="Upload a video for analysis",
    responses=documented(400, 401, 408, 413, 415, 422, 503, 507),
)
async def analyze_video(request: Request, ctx: Ctx) -> Response:
    idem = _idempotency_header(request)
    await _store_seen_up(ctx)
    job_id = new_job_id()
    folder = staging_dir(ctx.settings, job_id)
    structlog.contextvars.bind_contextvars(job_id=job_id)
    arriving = ARRIVING.hold(job_id)  # the staging sweep leaves it alone meanwhile
    arriving.__enter__()
    try:
        try:
            upload = await receive_upload(
                request,
                input_dir=folder / "input",
                max_file_bytes=ctx.settings.max_upload_bytes,
                idle_timeout_s=ctx.upload_idle_timeout_s,
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
                408, "upload_timeout", f"no data for {ctx.upload_idle_timeout_s:g} s; upload again"
            ) from None
        except BaseException:
            remove_staging(folder)  # cancelled: no more awaiting
            raise
        if idem is not None:
            replay = await _idempotent(ctx, request, idem, job_id, folder, upload)
            if replay is not None:
                return replay
        try:
            return await _accept(ctx, request, job_id, folder, upload)
        except BaseException:
            if idem is not None:
                with contextlib.suppress(StoreError):
                    await anyio.to_thread.run_sync(forget_idempotency, ctx.reads, idem, job_id)
            raise
    finally:
        arriving.__exit__(None, None, None)
        structlog.contextvars.unbind_contextvars("job_id")


async def _store_seen_up(ctx: ApiContext) -> None:
    """503 before a byte of the body is read when the daemon's store probe (every 2 s,
    bounded by STORE_PROBE_TIMEOUT_S) last found the store down: a client need not send a
    whole video to learn it. A probe not yet aware of an outage (or a health answer that
    does not come within HEALTH_GLANCE_S) leaves it to the writes, bounded the same way."""
    health: Any = {}
    with anyio.move_on_after(HEALTH_GLANCE_S), contextlib.suppress(Exception):
        health = await anyio.to_thread.run_sync(ctx.health, abandon_on_cancel=True)
    if isinstance(health, dict) and health.get("store_ok") is False:
        metrics.API_UPLOADS.labels(outcome="store_unavailable").inc()
        error = health.get("store_error") or "the store probe failed"
        raise ApiError(503, "store_unavailable", f"the object store failed: {error}")


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


async def _idempotent(
    ctx: ApiContext, request: Request, idem: str, job_id: str, folder: Path, upload: Upload
) -> JSONResponse | None:
    """None: the key is new (now bound to this job). Else the answer: the earlier job for
    the same bytes, 422 for other bytes."""
    try:
        found = await anyio.to_thread.run_sync(
            lambda: remember_idempotency(
                ctx.reads, idem, job_id=job_id, sha256=upload.sha256, now=time.time()
            )
        )
    except StoreError as exc:
        await anyio.to_thread.run_sync(remove_staging, folder)
        raise store_unavailable(exc) from None
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
        state = json.loads(read_status(ctx, found.job_id)).get("state", "queued")
    except ApiError:
        state = "queued"
    base = ctx.base_url(request)
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


async def _accept(
    ctx: ApiContext, request: Request, job_id: str, folder: Path, upload: Upload
) -> JSONResponse:
    """Write the queued manifest, hand the job to the runner, answer 202."""
    manifest = Manifest(
        job_id=job_id,
        origin="api",
        filename=upload.filename,
        source_key=keys.source_key(job_id, upload.ext),
        source_bytes=upload.size,
        source_sha256=upload.sha256 or None,
        reanalyze=upload.reanalyze,
        cleanup_local_source=resolve_cleanup(
            upload.cleanup_override, ctx.settings.cleanup_local_video_after_upload_default
        ),
        warnings=list(upload.warnings),
    )
    spec = JobSpec(
        job_id=job_id,
        staged_source=upload.path,
        origin="api",
        filename=upload.filename,
        cleanup_override=upload.cleanup_override,
        reanalyze=upload.reanalyze,
        warnings=list(upload.warnings),
    )
    try:
        # The client waits: with the store down it gets its 503 within STORE_PROBE_TIMEOUT_S
        # (ctx.reads), not after the minute of retries that a running job's writes ride out.
        await anyio.to_thread.run_sync(write_manifest, ctx.reads, manifest)
    except StoreError as exc:
        await anyio.to_thread.run_sync(remove_staging, folder)
        metrics.API_UPLOADS.labels(outcome="store_unavailable").inc()
        raise store_unavailable(exc) from None
    try:
        await anyio.to_thread.run_sync(ctx.submit, spec)
    except QueueFull:
        await anyio.to_thread.run_sync(_withdraw, ctx, job_id, folder)
        metrics.API_UPLOADS.labels(outcome="queue_full").inc()
        log.warning("upload_refused", code="queue_full")
        raise ApiError(
            503,
            "queue_full",
            "the job queue is full; try again later",
            headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)},
        ) from None
    except Exception:
        await anyio.to_thread.run_sync(_withdraw, ctx, job_id, folder)
        metrics.API_UPLOADS.labels(outcome="submit_failed").inc()
        raise
    metrics.API_UPLOADS.labels(outcome="accepted").inc()
    metrics.API_UPLOAD_BYTES.inc(upload.size)
    notify = ctx.notify
    if notify is not None:
        await anyio.to_thread.run_sync(lambda: notify("job.queued", manifest))
    log.info(
        "job_submitted",
        origin="api",
        filename=upload.filename,
        bytes=upload.size,
        cleanup_override=upload.cleanup_override,
    )
    base = ctx.base_url(request)
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


def _withdraw(ctx: ApiContext, job_id: str, folder: Path) -> None:
    """The runner did not take the job: no manifest, no pending marker, no staged file.
    The marker goes after the manifest (a marker without a job is an orphan the scanner
    deletes; a queued manifest without its marker would be a job nobody runs)."""
    remove_staging(folder)
    try:
        ctx.store.delete(keys.status_key(job_id))
        clear_pending(ctx.store, job_id)
    except StoreError as exc:
        log.error("manifest_withdraw_failed", error=str(exc))


# --- status -------------------------------------------------------------------------------------
@router.get(
    "/status/{job_id}",
    summary="The job's status.json",
    responses={200: {"description": "status.json as stored"}, **documented(401, 404, 422, 503)},
)
def get_status(ctx: Ctx, job_id: JobId) -> Response:
    return Response(
        read_status(ctx, job_id),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
