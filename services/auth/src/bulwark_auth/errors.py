"""auth's error mapping. Statuses carry the OAuth2 error code as their message (see
auth.proto). Infrastructure failures (users, PostgreSQL, Redis unreachable) are UNAVAILABLE,
anything unexpected is INTERNAL with a generic message: a caller never sees UNKNOWN or a
stack trace."""

from __future__ import annotations

import logging

import grpc

from bulwark_auth.users_client import UsersUnavailable
from bulwark_common.rpc import Abort, rpc_errors

log = logging.getLogger("bulwark.auth")


def invalid_grant() -> Abort:
    return Abort(grpc.StatusCode.UNAUTHENTICATED, "invalid_grant")


def invalid_client() -> Abort:
    return Abort(grpc.StatusCode.UNAUTHENTICATED, "invalid_client")


def unauthorized_client() -> Abort:
    return Abort(grpc.StatusCode.INVALID_ARGUMENT, "unauthorized_client")


def invalid_request() -> Abort:
    return Abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid_request")


def invalid_scope() -> Abort:
    return Abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid_scope")


def _users_unavailable(exc: Exception) -> tuple[grpc.StatusCode, str]:
    log.warning("users unavailable", extra={"code": str(exc)})
    return grpc.StatusCode.UNAVAILABLE, "temporarily_unavailable"


rpc = rpc_errors(
    log,
    mapping={UsersUnavailable: _users_unavailable},
    redis_details="temporarily_unavailable",
    database_details="temporarily_unavailable",
    internal_details="server_error",
)
