"""``GET /healthz`` and ``HEAD /healthz`` (never need the token) and ``GET /metrics``
(Prometheus)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vidwatch import __version__, metrics
from vidwatch.api.context import Ctx

router = APIRouter()


@router.get(
    "/healthz",
    summary="Process up, store reachable, runner alive",
    responses={503: {"description": "unhealthy; the body says what"}},
)
async def healthz(ctx: Ctx) -> JSONResponse:
    body, status = await _health(ctx)
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.head("/healthz", include_in_schema=False)
async def healthz_head(ctx: Ctx) -> Response:
    """What GET answers, without the body: load balancers and uptime checkers send HEAD.
    (Left out of the OpenAPI document, where it would be GET's twin.)"""
    _, status = await _health(ctx)
    return Response(
        status_code=status, media_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def _health(ctx: Ctx) -> tuple[dict[str, Any], int]:
    try:
        with anyio.fail_after(ctx.health_timeout_s):
            result = await anyio.to_thread.run_sync(ctx.health, abandon_on_cancel=True)
    except TimeoutError:
        result = {"ok": False, "error": f"health check took over {ctx.health_timeout_s:g} s"}
    except Exception as exc:  # noqa: BLE001 - an unhealthy answer, not a 500
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    ok = isinstance(result, dict) and result.get("ok") is True
    body = {
        **(result if isinstance(result, dict) else {}),
        "ok": ok,
        "status": "ok" if ok else "unhealthy",
        "version": __version__,
    }
    return body, 200 if ok else 503


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def get_metrics() -> Response:
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
