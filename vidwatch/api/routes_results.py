"""``GET /results/{job_id}`` (results.json with signed links; a duplicate's: the earlier
job's, with ``duplicate_of``) and, for a store of local
files, ``GET|HEAD /files/{key}`` (the target of those links, checked by their signature)."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from vidwatch.api.context import Ctx
from vidwatch.api.errors import ApiError, ErrorBody, documented, store_unavailable
from vidwatch.api.links import link_results, request_base_url
from vidwatch.api.routes_jobs import JobId, read_status
from vidwatch.library import keys as library_keys
from vidwatch.library.jobs import with_names
from vidwatch.library.people import names_of
from vidwatch.r2 import keys
from vidwatch.r2.store import ObjectNotFound, StoreError

router = APIRouter()
files_router = APIRouter()
"""Served only when the store's objects are local files (``store.local_files``)."""


@router.get(
    "/results/{job_id}",
    summary="results.json with signed links",
    responses={
        200: {"description": "results.json; each artifact key is now {key, url}"},
        409: {
            "model": ErrorBody,
            "description": "not finished, or failed; `status` holds status.json",
        },
        **documented(401, 404, 422, 503),
    },
)
def get_results(ctx: Ctx, job_id: JobId, request: Request) -> Response:
    status = json.loads(read_status(ctx, job_id))
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
        doc = json.loads(ctx.reads.get_bytes(keys.results_key(made_by)))
    except ObjectNotFound:
        raise ApiError(
            404,
            "results_not_found",
            f"job {made_by} completed but its results.json is gone (removed by retention?)",
        ) from None
    except StoreError as exc:
        raise store_unavailable(exc) from None
    ttl_s = ctx.settings.r2_url_ttl_seconds
    with request_base_url(ctx.base_url(request)):
        doc = link_results(doc, made_by, lambda key: ctx.store.signed_url(key, ttl_s), ttl_s)
    # Names are the library's now (a rename shows at once); the file keeps the ids.
    try:
        doc["people"] = with_names(doc.get("people"), names_of(ctx.library))
    except StoreError as exc:
        raise store_unavailable(exc) from None
    if made_by != job_id:
        # The same content was analysed by an earlier job: its results, its links.
        doc["job_id"], doc["duplicate_of"] = job_id, made_by
    return JSONResponse(doc, headers={"Cache-Control": "no-store"})


_LINK_PROBLEMS = {
    "missing_signature": "this link needs expires= and signature=",
    "invalid_signature": "the link's signature does not match",
    "link_expired": "the link has expired; fetch /results again",
}


FILE_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
"""Whatever ``/files`` serves runs no script on the API's origin, whatever its bytes hold:
``sandbox`` without ``allow-scripts`` turns script off in any document made of it (and
gives it an opaque origin, out of reach of the session cookie), ``default-src 'none'``
lets it load nothing."""
IMAGE_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
"""An image opened on its own: the browser's image viewer keeps its inline styles."""
VIDEO_CSP = (
    "sandbox allow-same-origin; default-src 'none'; media-src 'self'; "
    "style-src 'unsafe-inline'; frame-ancestors 'none'"
)
"""A video opened on its own: the browser's player fetches the video again (in ranges)
from the document, which an opaque origin would make a cross-origin request that fails
(Chromium), so the sandbox keeps the origin; script stays off all the same."""
REPORT_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "media-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The static report.html keeps its inline styles and its relative images and video; its
script stays off."""


def file_csp(served: keys.ServedAs) -> str:
    if served.kind == "report":
        return REPORT_CSP
    if served.kind == "source" and served.content_type.startswith("video/"):
        return VIDEO_CSP
    if served.content_type.startswith("image/"):
        return IMAGE_CSP
    return FILE_CSP


def file_headers(key: str) -> dict[str, str]:
    """The headers of a ``/files`` answer: the type decided by what the key is
    (``keys.served_as``), never by a name a user chose, and never sniffed."""
    served = keys.served_as(key)
    return {
        "Content-Type": served.content_type,
        "Content-Disposition": served.disposition(key),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": file_csp(served),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "private, max-age=60",
    }


def get_file(
    ctx: Ctx, key: str, expires: str | None = None, signature: str | None = None
) -> Response:
    assert ctx.signer is not None  # ApiContext insists on it for a store of local files
    problem = ctx.signer.check(key, expires, signature, time.time())
    if problem is not None:
        raise ApiError(403, problem, _LINK_PROBLEMS[problem])
    servable = keys.job_id_of(key) is not None or key.startswith(library_keys.PEOPLE_PREFIX)
    path = ctx.store.local_path(key) if servable else None
    info = ctx.store.head(key) if path is not None else None
    if path is None or info is None:
        raise ApiError(404, "not_found", "no such file")
    headers = file_headers(key)
    return FileResponse(path, media_type=headers.pop("Content-Type"), headers=headers)


files_router.add_api_route(
    "/files/{key:path}",
    get_file,
    methods=["GET"],
    summary="A signed link's file (local store)",
    responses={200: {"description": "the file's bytes"}, **documented(403, 404)},
)
files_router.add_api_route("/files/{key:path}", get_file, methods=["HEAD"], include_in_schema=False)
