"""Liveness and readiness. The public port answers a status only (what is down is a map
for an attacker); the management port (API_MANAGEMENT_PORT, not exposed to clients) has
the details, and the Prometheus /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from bulwark_api.backends import Backends
from bulwark_api.deps import BackendsDep
from bulwark_common import metrics

router = APIRouter(tags=["health"])
management = APIRouter()


@router.get("/healthz", summary="Liveness: the process answers")
@management.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: auth, users, the database and Redis all answer (status only)",
    responses={503: {"description": "Not ready; the management port says why"}},
)
async def readyz(backends: BackendsDep) -> Any:
    checks = await backends.readiness()
    if any(state != "ok" for state in checks.values()):
        return JSONResponse(
            {"status": "unavailable"}, status_code=503, headers={"Retry-After": "1"}
        )
    return {"status": "ok"}


@management.get("/readyz")
async def readyz_details(request: Request) -> Any:
    backends: Backends = request.app.state.public.state.backends
    checks = await backends.readiness()
    down = [name for name, state in checks.items() if state != "ok"]
    body = {
        "status": "unavailable" if down else "ok",
        "checks": checks,
        "warnings": backends.runtime.vault_warnings(),
    }
    return JSONResponse(body, status_code=503 if down else 200)


@management.get("/metrics")
def metrics_exposition() -> Response:
    # A plain def: collecting (and, with several workers, reading their files) runs in the
    # thread pool, off the event loop the public port shares.
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
