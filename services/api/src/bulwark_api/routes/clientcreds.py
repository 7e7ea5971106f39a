"""The client_credentials grant on /v1/auth/token (RFC 6749 4.4), with client
authentication by HTTP Basic (`client_secret_basic`, RFC 6749 2.3.1: id and secret
form-urlencoded, then base64) or by form fields (`client_secret_post`), never both.

A client that authenticates on another grant gets `unauthorized_client` (clients have only
this one); a failed authentication gets `invalid_client` with 401 and
`WWW-Authenticate: Basic` (RFC 6749 5.2). auth issues the token: `sub` and `client_id` are
the client, no refresh token."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

import grpc
from fastapi import Request
from fastapi.responses import JSONResponse

from bulwark.auth.v1 import auth_pb2
from bulwark_api.backends import Backends
from bulwark_api.problems import OAuthError, Problem

GRANT = "client_credentials"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
CHALLENGE = {"WWW-Authenticate": 'Basic realm="bulwark", charset="UTF-8"'}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _invalid_client(description: str = "client authentication failed") -> OAuthError:
    return OAuthError("invalid_client", description, status=401, headers=CHALLENGE)


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _invalid_client("malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


# What Swagger UI's "Authorize" sends with every password grant: an empty id and secret.
_NO_CLIENT = "Basic Og=="


def presents_client_auth(request: Request, client_secret: str | None) -> bool:
    """Whether the request authenticates a client (then the client path answers it). Empty
    Basic credentials name no client: public clients (the password grant) may send them."""
    if client_secret:
        return True
    header = request.headers.get("authorization", "").strip()
    return header.partition(" ")[0].lower() == "basic" and header != _NO_CLIENT


async def client_token(
    backends: Backends,
    request: Request,
    ip: str,
    *,
    grant_type: str,
    client_id: str | None,
    client_secret: str | None,
    scope: str | None,
) -> JSONResponse:
    basic = _basic(request)
    if basic is not None:
        if client_secret:
            raise OAuthError("invalid_request", "use one client authentication method")
        if client_id and client_id != basic[0]:
            raise OAuthError("invalid_request", "client_id differs from the Basic credentials")
        client_id, client_secret = basic
    if not client_id or not client_secret:
        raise _invalid_client("client authentication is required")
    try:
        reply = await backends.auth.IssueClientToken(
            auth_pb2.IssueClientTokenRequest(
                client_id=client_id,
                client_secret=client_secret,
                scope=scope or "",
                client_ip=ip,
                grant_type=grant_type,
            )
        )
    except grpc.aio.AioRpcError as exc:
        code, details = exc.code(), exc.details()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise _invalid_client() from None
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            known = ("invalid_scope", "invalid_request", "unauthorized_client")
            raise OAuthError(details if details in known else "invalid_request") from None
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            retry = {"Retry-After": "60"}
            raise Problem(429, "too many tokens for this client", headers=retry) from None
        raise
    body = {
        "access_token": reply.access_token,
        "token_type": "Bearer",
        "expires_in": reply.expires_in,
        "scope": reply.scope,
    }
    return JSONResponse(body, headers=NO_STORE)
