"""OAuth2 token and revocation endpoints (RFC 6749, RFC 7009) and discovery documents.
Errors here are OAuth2 error objects, not problem details, as the RFCs require."""

from __future__ import annotations

from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse

from bulwark.auth.v1 import auth_pb2
from bulwark_api import sessions
from bulwark_api.deps import (
    BackendsDep,
    ClientBucket,
    ClientIP,
    enforce_rate,
    limit_anonymous,
)
from bulwark_api.problems import (
    PROBLEM_RESPONSE,
    OAuthError,
    oauth_error_response,
    problem_responses,
)
from bulwark_api.routes import clientcreds
from bulwark_api.schemas import Jwks, OAuthErrorOut, TokenOut, storable
from bulwark_common.scopes import SCOPES

router = APIRouter(tags=["oauth2"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorOut, "description": "OAuth2 error (RFC 6749 5.2)"},
    401: {"model": OAuthErrorOut, "description": "invalid_client (RFC 6749 5.2)"},
    403: {"model": OAuthErrorOut, "description": "Browser request refused (origin, CSRF)"},
    429: {**PROBLEM_RESPONSE, "description": "Too many requests from this address"},
    503: {**PROBLEM_RESPONSE, "description": "auth or users is unavailable"},
    413: {**PROBLEM_RESPONSE, "description": "Request body too large"},
    422: PROBLEM_RESPONSE,
}

Field = Annotated[str | None, Form()]


async def _rate_limit_token(
    response: Response, backends: BackendsDep, bucket: ClientBucket
) -> None:
    await enforce_rate(response, backends, backends.settings.token_rate, f"token:{bucket}", "token")


def _storable_or_invalid(*fields: str | None) -> None:
    if not all(storable(f) for f in fields if f):
        raise OAuthError("invalid_request", "fields must not contain NUL characters")


def _oauth_rpc_error(exc: grpc.aio.AioRpcError) -> Exception:
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return OAuthError("invalid_grant")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        error = exc.details() if exc.details() in ("invalid_scope", "invalid_request") else None
        return OAuthError(error or "invalid_request")
    return exc  # type: ignore[no-any-return]  # unavailable → 503 problem


@router.post(
    "/v1/auth/token",
    response_model=TokenOut,
    responses=OAUTH_ERRORS,
    summary="Issue tokens: password grant, refresh-token grant (rotated on every use), or "
    "client credentials (HTTP Basic or client_id + client_secret)",
    description="With the header `X-Bulwark-Session: cookie` (browser apps): the refresh "
    "token is set in an HttpOnly `__Host-` cookie and read from it, never in the body.",
    dependencies=[Depends(_rate_limit_token)],
)
async def token(
    request: Request,
    backends: BackendsDep,
    ip: ClientIP,
    grant_type: Field = None,
    username: Field = None,
    password: Field = None,
    scope: Field = None,
    refresh_token: Field = None,
    client_id: Field = None,
    client_secret: Field = None,
) -> Response:
    # Every field is optional in the schema so that a missing one is an OAuth2
    # invalid_request, not a generic 422.
    _storable_or_invalid(grant_type, username, password, scope, refresh_token)
    _storable_or_invalid(client_id, client_secret)
    cookie_mode = sessions.guard_browser(request)
    if grant_type == "refresh_token" and cookie_mode:
        refresh_token = sessions.session_refresh_token(request)
    elif grant_type == "refresh_token" and not refresh_token:
        sessions.refuse_unheadered_cookie(request)
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type == clientcreds.GRANT or clientcreds.presents_client_auth(request, client_secret):
        return await clientcreds.client_token(
            backends,
            request,
            ip,
            grant_type=grant_type,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
        )
    try:
        if grant_type == "password":
            if not username or not password:
                raise OAuthError("invalid_request", "username and password are required")
            reply = await backends.auth.IssueToken(
                auth_pb2.IssueTokenRequest(
                    username=username, password=password, scope=scope or "", client_ip=ip
                )
            )
        elif grant_type == "refresh_token":
            if not refresh_token:
                raise OAuthError("invalid_request", "refresh_token is required")
            reply = await backends.auth.RefreshToken(
                auth_pb2.RefreshTokenRequest(
                    refresh_token=refresh_token, scope=scope or "", client_ip=ip
                )
            )
        else:
            raise OAuthError("unsupported_grant_type")
    except grpc.aio.AioRpcError as exc:
        error = _oauth_rpc_error(exc)
        if (
            cookie_mode
            and grant_type == "refresh_token"
            and isinstance(error, OAuthError)
            and error.error == "invalid_grant"
        ):
            return _end_session(oauth_error_response(error))
        raise error from None
    body = TokenOut(
        access_token=reply.access_token,
        token_type="Bearer",  # noqa: S106
        expires_in=reply.expires_in,
        refresh_token=None if cookie_mode else reply.refresh_token,
        scope=reply.scope,
    )
    answer = JSONResponse(body.model_dump(exclude_none=True), headers=NO_STORE)
    if cookie_mode:
        sessions.set_refresh_cookie(answer, reply.refresh_token, backends.settings)
    return answer


def _end_session(answer: Response) -> Response:
    # A refused session cookie (expired, reused, revoked) is of no further use: drop it.
    sessions.clear_refresh_cookie(answer)
    return answer


@router.post(
    "/v1/auth/revoke",
    summary="Revoke an access or refresh token (RFC 7009); unknown tokens also answer 200",
    # An empty 200 (RFC 7009 2.2): no body, so no JSON content type either.
    response_class=Response,
    responses={200: {"description": "Revoked, or nothing to revoke"}, **OAUTH_ERRORS},
    dependencies=[Depends(_rate_limit_token)],
)
async def revoke(
    request: Request,
    backends: BackendsDep,
    ip: ClientIP,
    token: Field = None,
    token_type_hint: Field = None,
) -> Response:
    _storable_or_invalid(token, token_type_hint)
    if sessions.guard_browser(request) and not token:
        # A browser session revoking itself: the token is in the cookie (= logout).
        return await sessions.end_session(
            request, backends, ip, Response(status_code=200, headers=NO_STORE)
        )
    if not token:
        sessions.refuse_unheadered_cookie(request)
        raise OAuthError("invalid_request", "token is required")
    try:
        await backends.auth.RevokeToken(
            auth_pb2.RevokeTokenRequest(
                token=token, token_type_hint=token_type_hint or "", client_ip=ip
            )
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return Response(status_code=200, headers=NO_STORE)  # nothing to revoke
        raise
    return Response(status_code=200, headers=NO_STORE)


@router.get(
    "/.well-known/jwks.json",
    response_model=Jwks,
    responses=problem_responses(429, 503),
    summary="Public keys that verify access tokens (current and previous)",
    dependencies=[Depends(limit_anonymous)],
)
async def jwks(backends: BackendsDep) -> dict[str, Any]:
    # Re-read from auth at most every API_JWKS_MIN_REFRESH_SECONDS, so rotations show up.
    await backends.verifier.refresh(force=not backends.verifier.jwks)
    return {"keys": backends.verifier.jwks}


@router.get(
    "/.well-known/oauth-authorization-server",
    responses=problem_responses(429),
    summary="Authorization server metadata (RFC 8414)",
    dependencies=[Depends(limit_anonymous)],
)
@router.get(
    "/.well-known/openid-configuration",
    responses=problem_responses(429),
    summary="The same metadata where OpenID-style clients look for it (no ID tokens are issued)",
    dependencies=[Depends(limit_anonymous)],
)
async def openid_configuration(backends: BackendsDep) -> dict[str, Any]:
    # Only what is true: no authorization endpoint (so no response types) and no ID tokens
    # (so none of OpenID Connect's id_token / subject-type fields).
    issuer = backends.settings.issuer.rstrip("/")
    return {
        "issuer": backends.settings.issuer,
        "token_endpoint": f"{issuer}/v1/auth/token",
        "revocation_endpoint": f"{issuer}/v1/auth/revoke",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["password", "refresh_token", clientcreds.GRANT],
        "token_endpoint_auth_methods_supported": ["none", *clientcreds.AUTH_METHODS],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": sorted(SCOPES),
    }
