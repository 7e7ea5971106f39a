"""RFC 9457 problem details for every error api answers, and OAuth2 errors (RFC 6749 5.2)
for the token endpoint. Internals (stack traces, gRPC messages) stay in the log."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import grpc
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from bulwark_api.schemas import ProblemOut

log = logging.getLogger("bulwark.api")

PROBLEM_JSON = "application/problem+json"
# Endpoints whose errors are RFC 6749 error objects rather than problem details.
OAUTH_PATHS = frozenset({"/v1/auth/token", "/v1/auth/revoke"})
# A `responses=` entry for a problem-details answer: `model` registers ProblemOut in the
# document's components, the content entry says what is really sent (problem+json).
PROBLEM_RESPONSE: dict[str, Any] = {
    "model": ProblemOut,
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}},
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for routes that may answer these statuses with problem details."""
    return {code: PROBLEM_RESPONSE for code in codes}


class Problem(Exception):
    """Raise anywhere in a request to answer with problem details."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type_
        self.headers = headers or {}
        self.extra = extra


class OAuthError(Exception):
    """An RFC 6749 error body: {"error": ..., "error_description": ...}."""

    def __init__(self, error: str, description: str | None = None, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title or HTTPStatus(status).phrase}
    body["status"] = status
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    hdrs = dict(headers or {})
    if status == 401:
        hdrs.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, headers=hdrs, media_type=PROBLEM_JSON)


def trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


# gRPC statuses that mean "a dependency is down", not "you asked wrong". CANCELLED: the
# peer shut down with our call in flight (api itself never cancels a call it still awaits).
UNAVAILABLE_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


# How the users service's refusals reach the client.
_RPC_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.FAILED_PRECONDITION: 409,  # refused in the current state (last admin)
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.PERMISSION_DENIED: 403,
}


def from_rpc(exc: grpc.aio.AioRpcError) -> Exception:
    """A client-facing Problem for a refusal, or the error itself (→ 503/500 handlers)."""
    status = _RPC_STATUS.get(exc.code())
    if status is None:
        err: Exception = exc
        return err
    detail: str | None = exc.details()
    # These services write their refusal messages for clients ("email: already taken").
    return Problem(status, detail or None)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            title=exc.title,
            type_=exc.type,
            headers=exc.headers,
            instance=request.url.path,
            **exc.extra,
        )

    @app.exception_handler(OAuthError)
    async def _oauth(_: Request, exc: OAuthError) -> JSONResponse:
        body = {"error": exc.error}
        if exc.description:
            body["error_description"] = exc.description
        return JSONResponse(
            body,
            status_code=exc.status,
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and request.url.path in OAUTH_PATHS:
            # An unparseable form on the token/revoke endpoints is still an OAuth2 error.
            return await _oauth(request, OAuthError("invalid_request", "malformed request body"))
        return problem_response(
            exc.status_code,
            str(exc.detail)
            if exc.detail and exc.detail != HTTPStatus(exc.status_code).phrase
            else None,
            headers=dict(exc.headers or {}),
            instance=request.url.path,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Echo where and why, never the rejected value (it may be a password).
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        fields = ", ".join(".".join(e["loc"][1:] or e["loc"]) for e in errors)
        return problem_response(
            422,
            f"invalid request: {fields}" if fields else "invalid request",
            title="Unprocessable Content",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _rpc(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        code = exc.code()
        if code in UNAVAILABLE_CODES:
            log.warning("dependency unavailable", extra={"grpc_code": code.name})
            return problem_response(
                503,
                "a backing service is unavailable, retry later",
                headers={"Retry-After": "1"},
                instance=request.url.path,
            )
        return _internal(request, exc)

    @app.exception_handler(sa_exc.SQLAlchemyError)
    async def _database(request: Request, exc: sa_exc.SQLAlchemyError) -> JSONResponse:
        # Connection-level failures mean "database down": 503. Anything else is our bug.
        down = isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError
        )
        if down or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated):
            log.warning("database unavailable", extra={"error": type(exc).__name__})
            return _unavailable(request)
        return _internal(request, exc)

    @app.exception_handler(redis.RedisError)
    async def _redis(request: Request, exc: redis.RedisError) -> JSONResponse:
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            log.warning("redis unavailable", extra={"error": type(exc).__name__})
            return _unavailable(request)
        return _internal(request, exc)


def _unavailable(request: Request) -> JSONResponse:
    return problem_response(
        503,
        "a backing service is unavailable, retry later",
        headers={"Retry-After": "1"},
        instance=request.url.path,
    )


def _internal(request: Request, exc: BaseException) -> JSONResponse:
    tid = trace_id()
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return problem_response(
        500,
        "internal error; quote the correlation id when reporting it",
        instance=request.url.path,
        correlation_id=tid,
    )
