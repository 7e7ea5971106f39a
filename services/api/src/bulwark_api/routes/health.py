"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bulwark_api.deps import BackendsDep
from bulwark_api.problems import problem_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: auth, users, the database and Redis all answer",
    responses={
        503: {
            "description": "Something is down; the body names it",
            "content": {"application/problem+json": {}},
        }
    },
)
async def readyz(request: Request, backends: BackendsDep) -> Any:
    checks = await backends.readiness()
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        return problem_response(
            503,
            f"not ready: {', '.join(down)}",
            instance=request.url.path,
            checks=checks,
            headers={"Retry-After": "1"},
        )
    return JSONResponse({"status": "ok", "checks": checks})
