"""Logout for browser sessions (the refresh token is in the `__Host-` cookie)."""

from __future__ import annotations

import grpc
from fastapi import APIRouter, Depends, Request, Response

from bulwark.auth.v1 import auth_pb2
from bulwark_api import sessions
from bulwark_api.deps import BackendsDep, ClientIP
from bulwark_api.problems import OAuthError
from bulwark_api.routes.oauth import NO_STORE, OAUTH_ERRORS, _rate_limit_token

router = APIRouter(tags=["oauth2"])


@router.post(
    "/v1/auth/logout",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Logged out: family revoked, cookie cleared"}, **OAUTH_ERRORS},
    summary="End a browser session: revoke its refresh-token family and clear the cookie",
    description="Needs the header `X-Bulwark-Session: cookie` and an allowed `Origin`.",
    dependencies=[Depends(_rate_limit_token)],
)
async def logout(request: Request, backends: BackendsDep, ip: ClientIP) -> Response:
    if not sessions.guard_browser(request):
        sessions.refuse_unheadered_cookie(request)
        raise OAuthError("invalid_request", f"send the header {sessions.SESSION_HEADER}: cookie")
    token = request.cookies.get(sessions.REFRESH_COOKIE)
    if token:
        try:
            # Revoking a refresh token revokes its whole family and the family's access
            # tokens (RFC 7009 2.1). A failure propagates (503): never claim a logout that
            # did not happen, and keep the cookie so the client can retry.
            await backends.auth.RevokeToken(
                auth_pb2.RevokeTokenRequest(
                    token=token,
                    token_type_hint="refresh_token",  # noqa: S106
                    client_ip=ip,
                )
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
    answer = Response(status_code=204, headers=NO_STORE)
    sessions.clear_refresh_cookie(answer)
    return answer
