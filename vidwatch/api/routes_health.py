"""``GET /healthz`` (never needs the token) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

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
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def get_metrics() -> Response:
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
