"""Logout for browser sessions (the refresh token is in the `__Host-` cookie)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

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
    description="Needs the header `X-Bulwark-Session: cookie` and an allowed `Origin`. "
    "(`POST /v1/auth/revoke` with that header and no `token` does the same, answering 200.)",
    dependencies=[Depends(_rate_limit_token)],
)
async def logout(request: Request, backends: BackendsDep, ip: ClientIP) -> Response:
    if not sessions.guard_browser(request):
        sessions.refuse_unheadered_cookie(request)
        raise OAuthError("invalid_request", f"send the header {sessions.SESSION_HEADER}: cookie")
    return await sessions.end_session(
        request, backends, ip, Response(status_code=204, headers=NO_STORE)
    )
