"""RFC 9457 problem details for every error api answers, and OAuth2 errors (RFC 6749 5.2)
for the token endpoint. Internals (stack traces, gRPC messages) stay in the log."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Any, TypeVar

import asyncpg
import grpc
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from bulwark_api import statements
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


# RFC 9110 names where Python's HTTPStatus still has the RFC 7231 ones, so one status always
# carries one title, whichever code path answers.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content", 416: "Range Not Satisfiable"}


def status_title(status: int) -> str:
    return _TITLES.get(status) or HTTPStatus(status).phrase


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
        self.title = title or status_title(status)
        self.type = type_
        self.headers = headers or {}
        self.extra = extra


class OAuthError(Exception):
    """An RFC 6749 error body: {"error": ..., "error_description": ...}."""

    def __init__(
        self,
        error: str,
        description: str | None = None,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}


def oauth_error_response(exc: OAuthError) -> JSONResponse:
    body = {"error": exc.error}
    if exc.description:
        body["error_description"] = exc.description
    return JSONResponse(
        body,
        status_code=exc.status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache", **exc.headers},
    )


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
    body: dict[str, Any] = {"type": type_, "title": title or status_title(status)}
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


T = TypeVar("T")


async def call_backend(call: Awaitable[T], *, not_found: Problem | None = None) -> T:
    """Await one call to users or auth: a refusal becomes the client's Problem (`from_rpc`),
    NOT_FOUND `not_found` where the route words it itself."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if not_found is not None and exc.code() == grpc.StatusCode.NOT_FOUND:
            raise not_found from None
        raise from_rpc(exc) from None


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
        return oauth_error_response(exc)

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
        return invalid_request(request, exc)

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

    @app.exception_handler(statements.Unavailable)
    async def _statements(request: Request, exc: statements.Unavailable) -> JSONResponse:
        log.warning("database unavailable", extra={"error": str(exc)})
        return _unavailable(request)

    @app.exception_handler(asyncpg.PostgresError)
    async def _statement(request: Request, exc: asyncpg.PostgresError) -> JSONResponse:
        # A statement PostgreSQL refused (outages are statements.Unavailable): our bug, a
        # 500 as on the SQLAlchemy paths.
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


def _is_json(content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming where and why; 415 for a body that is not JSON; malformed JSON explained.
    Never echoes the rejected value (it may be a password)."""
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        why = next(e for e in raw if e.get("type") == "json_invalid")
        # 422 as for any body api cannot use; the detail says what is wrong and where.
        detail = f"malformed JSON body: {_json_error(why, exc.body)}"
        return problem_response(
            422,
            detail,
            instance=request.url.path,
            errors=[{"loc": ["body"], "msg": detail, "type": "json_invalid"}],
        )
    content_type = request.headers.get("content-type")
    body_given = any(
        tuple(e.get("loc", ())) == ("body",) and e.get("type") != "missing" for e in raw
    )
    if body_given and not _is_json(content_type):
        return problem_response(
            415,
            f"send the body as application/json (got {content_type or 'no Content-Type'})",
            headers={"Accept-Patch": "application/json"} if request.method == "PATCH" else {},
            instance=request.url.path,
        )
    errors = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in raw
    ]
    fields = ", ".join(".".join(e["loc"][1:] or e["loc"]) for e in errors)
    return problem_response(
        422,
        f"invalid request: {fields}" if fields else "invalid request",
        instance=request.url.path,
        errors=errors,
    )


def _json_error(error: Any, document: Any) -> str:
    """`Expecting ',' delimiter at line 1, column 13` rather than a bare character offset."""
    reason = str((error.get("ctx") or {}).get("error") or "not valid JSON")
    loc = error.get("loc", ())
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    if pos is None or not isinstance(document, str | bytes):
        return reason
    text = document.decode(errors="replace") if isinstance(document, bytes) else document
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"{reason} at line {line}, column {column}"
