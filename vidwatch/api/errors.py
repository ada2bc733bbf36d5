"""The API's errors: every answer other than success is
``{"error": {"code", "message", "request_id", ...}}`` with its HTTP status."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from vidwatch.api.negotiate import prefers_html
from vidwatch.errors import VidwatchError
from vidwatch.r2.store import StoreError

log = structlog.get_logger("vidwatch.api")


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


def request_id(scope: Scope) -> str | None:
    value: str | None = scope.get("state", {}).get("request_id")
    return value


def wants_html(scope: Scope) -> bool:
    """Whether the client is a browser navigating (``negotiate``'s rule, JSON by default:
    curl's, httpx's and fetch's ``*/*`` get JSON)."""
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            return prefers_html(value.decode("latin-1"), default=False)
    return False


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
    error = {"code": code, "message": message, "request_id": request_id(scope), **(details or {})}
    return JSONResponse({"error": error, **(extra or {})}, status_code=http_status, headers=headers)


def store_unavailable(exc: StoreError) -> ApiError:
    hint = f" (check {exc.setting})" if exc.setting else ""
    return ApiError(503, "store_unavailable", f"the object store failed: {exc}{hint}")


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "upload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
    507: "storage_full",
}


# --- for the OpenAPI document ----------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: these statuses answer an ErrorBody."""
    return {status: {"model": ErrorBody} for status in statuses}


# --- handlers --------------------------------------------------------------------------------
async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        request.scope,
        exc.http_status,
        exc.code,
        exc.message,
        headers=exc.headers,
        details=exc.details,
        extra=exc.extra,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(
        request.scope,
        exc.status_code,
        HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}"),
        str(exc.detail),
        headers=getattr(exc, "headers", None),
    )


def _for_a_browser(scope: Scope) -> bool:
    """A page's route asked for by a browser: it gets its error as a page, not JSON."""
    route = scope.get("route")
    return "pages" in (getattr(route, "tags", None) or ()) and wants_html(scope)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid request')}"
    if _for_a_browser(request.scope):
        from vidwatch.api.page_html import html
        from vidwatch.report.render import render_error

        return html(render_error("Invalid request", message), 422)
    return error_response(request.scope, 422, "invalid_request", message)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "http_internal_error",
        path=request.url.path,
        error=repr(exc),
        request_id=request_id(request.scope),
    )
    return error_response(
        request.scope,
        500,
        "internal_error",
        "internal error; the log has the details under this request id",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _internal)
