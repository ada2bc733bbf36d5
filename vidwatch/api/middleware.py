"""Request ids, the bearer token, one log line per request and the HTTP metrics."""

from __future__ import annotations

import hmac
import re
import time
import uuid

import anyio
import structlog
from pydantic import SecretStr
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidwatch import metrics
from vidwatch.api.errors import error_response, wants_html
from vidwatch.api.session import SessionStore, cookie_from_headers, parse_cookie
from vidwatch.r2.store import StoreError

log = structlog.get_logger("vidwatch.api")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UNAUTHENTICATED_PATHS = ("/healthz", "/login", "/logout")
_UNAUTHENTICATED_PREFIXES = ("/files/",)  # a signed link's signature is its proof
_QUIET_ROUTES = ("/metrics", "/healthz")
_DOC_PATHS = ("/docs", "/openapi.json", "/docs/oauth2-redirect")
_DOC_ASSETS = "/docs/assets"  # Swagger UI's files (vidwatch.api.app.DOCS_ASSETS)


def _unrouted_label(path: str) -> str:
    """The metrics' route label of a path no route object names (a bounded set)."""
    if path in _DOC_PATHS:
        return path
    return _DOC_ASSETS if path.startswith(_DOC_ASSETS + "/") else "unmatched"


def _same_origin_form(scope: Scope) -> bool:
    """A POST of the people pages' forms from this very site: the browser says so
    (``Sec-Fetch-Site: same-origin``, a header no page's script can set), or its Origin
    names the host it was sent to. The cookie is SameSite=Strict besides, so no other
    site's form can rename, merge or forget anyone. (The pages' ``no-referrer`` policy
    makes a browser send ``Origin: null`` on form posts: Sec-Fetch-Site is what tells.)"""
    if scope["method"] != "POST" or not scope["path"].startswith("/people"):
        return False
    headers: dict[bytes, bytes] = dict(scope["headers"])
    if headers.get(b"sec-fetch-site") == b"same-origin":
        return True
    origin, host = headers.get(b"origin"), headers.get(b"host")
    if not origin or not host or origin == b"null":
        return False
    return origin.split(b"://", 1)[-1] == host


class RequestContextMiddleware:
    """Request ids (``X-Request-ID``, taken from the client when sane), the bearer token,
    one log line per request and the HTTP metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_token: SecretStr | None,
        sessions: SessionStore | None = None,
    ) -> None:
        self.app = app
        self.token = api_token.get_secret_value().encode() if api_token else None
        self.sessions = sessions

    async def _authorized(self, scope: Scope) -> bool:
        """Raises StoreError when only the store can tell (a session cookie's check)."""
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
        # A browser's session cookie (the pages' sign-in) stands in for the header on
        # reads only: no cross-site request can make it upload.
        if not (scope["method"] in ("GET", "HEAD") or _same_origin_form(scope)):
            return False
        if self.sessions is None:
            return False
        session = parse_cookie(self.token, cookie_from_headers(scope["headers"]), time.time())
        if session is None:
            return False
        # Still open in the store: POST /logout, on any daemon of the store, closed it.
        return await anyio.to_thread.run_sync(self.sessions.is_open, session)

    @staticmethod
    def _is_page(scope: Scope) -> bool:
        """Where a refusal is the sign-in form: the pages, and /docs and /people (which
        answer JSON too) for a browser that does not ask for JSON."""
        path = scope["path"]
        if path == "/jobs" or path.startswith("/jobs/"):
            return True
        accept = dict(scope["headers"]).get(b"accept", b"").lower()
        return (
            (path in ("/docs", "/people") or path.startswith("/people/"))
            and wants_html(scope)
            and b"application/json" not in accept
        )

    def _store_down(self, scope: Scope, exc: StoreError) -> ASGIApp:
        """503 when a session could not be checked: the store is unreachable."""
        log.warning("session_check_failed", error=str(exc))
        if self._is_page(scope):
            from vidwatch.api.page_html import html
            from vidwatch.report.render import render_error

            return html(render_error("The store is unavailable", str(exc)), 503)
        return error_response(scope, 503, "store_unavailable", f"the object store failed: {exc}")

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
                try:
                    authorized = await self._authorized(scope)
                except StoreError as exc:
                    await self._store_down(scope, exc)(scope, receive, send_with_id)
                    return
                if authorized:
                    await self.app(scope, receive, send_with_id)
                elif self._is_page(scope):
                    from vidwatch.api.pages import login_page

                    query = scope.get("query_string", b"").decode("latin-1")
                    target = scope["path"] + (f"?{query}" if query else "")
                    page = login_page(target)
                    page.headers["WWW-Authenticate"] = "Bearer"
                    await page(scope, receive, send_with_id)
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
                label = getattr(route, "path", None) or _unrouted_label(scope["path"])
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
