"""Browser sessions: the refresh token lives in an HttpOnly cookie, never in script's reach.

A client asks for this mode with the header `X-Bulwark-Session: cookie` on the token and
logout endpoints; without it the cookie is never read (programmatic clients keep getting the
refresh token in the body). The token, revoke and logout endpoints also refuse any request
whose `Origin` is not allowed: only browsers send one, and those have no business there.

CSRF defence on every request that uses the cookie (docs/browser-sessions.md):
- the custom header itself: a cross-site HTML form cannot set a header, and a cross-origin
  fetch that sets one needs a CORS preflight, which only API_CORS_ORIGINS pass;
- an `Origin` check: it must be present and be one of API_CORS_ORIGINS, api's own origin
  (API_ISSUER) or same-origin. A form post from a same-site page that is not on the list
  (it carries the SameSite=Strict cookie) is refused here.
A custom header rather than a double-submit token: an SPA on another origin cannot read a
cookie of api's origin to echo it, and a header needs no extra state."""

from __future__ import annotations

from urllib.parse import urlsplit

import grpc
from fastapi import Request, Response

from bulwark.auth.v1 import auth_pb2
from bulwark_api.backends import Backends
from bulwark_api.problems import OAuthError
from bulwark_api.settings import ApiSettings

SESSION_HEADER = "X-Bulwark-Session"
SESSION_MODE = "cookie"
# `__Host-`: Secure, no Domain (this host only) and Path=/ are enforced by the browser. The
# prefix forbids a narrower Path, so the cookie travels with every request to api, but only
# the token and logout endpoints ever read it (and only with SESSION_HEADER).
REFRESH_COOKIE = "__Host-bulwark-refresh"


def wants_cookie(request: Request) -> bool:
    return request.headers.get(SESSION_HEADER, "").strip().lower() == SESSION_MODE


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(settings: ApiSettings) -> frozenset[str]:
    return frozenset(_origin_of(o) for o in [*settings.cors_origins, settings.issuer] if "://" in o)


def _origin_ok(request: Request, origin: str) -> bool:
    settings: ApiSettings = request.app.state.settings
    if _origin_of(origin) in allowed_origins(settings):
        return True
    # Same-origin (a page served by api itself, e.g. /docs, reached under any host name).
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def guard_browser(request: Request) -> bool:
    """On the token, revoke and logout endpoints: refuse (403) any browser request from an
    origin not allowed, and check a cookie session's CSRF defence. True in cookie mode."""
    origin = request.headers.get("origin")
    if origin is not None and not _origin_ok(request, origin):
        raise OAuthError("invalid_request", "requests from this origin are not allowed", 403)
    if not wants_cookie(request):
        return False
    if origin is None:
        raise OAuthError("invalid_request", "a cookie session needs an Origin header", 403)
    return True


def refuse_unheadered_cookie(request: Request) -> None:
    """A request that carries the session cookie but not the session header, and no token
    of its own, is what a cross-site form post riding on the cookie looks like: 403."""
    if REFRESH_COOKIE in request.cookies:
        raise OAuthError(
            "invalid_request",
            f"a cookie session needs the header {SESSION_HEADER}: {SESSION_MODE}",
            status=403,
        )


def session_refresh_token(request: Request) -> str:
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise OAuthError("invalid_grant", "no session cookie: log in again")
    return token


def set_refresh_cookie(response: Response, token: str, settings: ApiSettings) -> None:
    # SameSite=Strict: the cookie is only needed by the app's own fetches, never on a
    # navigation arriving from another site (docs/browser-sessions.md).
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=settings.session_cookie_max_age_seconds,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_refresh_cookie(response: Response) -> None:
    response.delete_cookie(REFRESH_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


async def end_session(request: Request, backends: Backends, ip: str, answer: Response) -> Response:
    """Logout: revoke the cookie's refresh token, which revokes its whole family and the
    family's access tokens (RFC 7009 2.1), then clear the cookie. A failure propagates (503):
    never claim a logout that did not happen, and keep the cookie so it can be retried."""
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        try:
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
    clear_refresh_cookie(answer)
    return answer
