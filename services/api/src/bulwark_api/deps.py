"""Request dependencies, as `Annotated` aliases the routes declare."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param

from bulwark_api.backends import Backends
from bulwark_api.enduser import ACCESS_TOKEN
from bulwark_api.keyauth import api_key_claims
from bulwark_api.problems import Problem
from bulwark_api.settings import ApiSettings
from bulwark_api.tokens import Claims, InvalidToken
from bulwark_common.apikeys import API_KEY_PREFIX
from bulwark_common.metrics import RATE_LIMITED, TOKENS_REFUSED
from bulwark_common.netaddr import source_bucket
from bulwark_common.scopes import SCOPES, USERS_ADMIN


def backends_of(request: Request) -> Backends:
    """The app's backends. The hottest routes call this instead of declaring BackendsDep:
    FastAPI's cost per dependency node (~7 us) is paid on every request."""
    backends: Backends = request.app.state.backends
    return backends


# async: a plain def would be run in the thread pool, a costly hop on every request.
async def get_backends(request: Request) -> Backends:
    return backends_of(request)


BackendsDep = Annotated[Backends, Depends(get_backends)]


async def client_ip(request: Request) -> str:
    """The peer address, or the last untrusted X-Forwarded-For hop when the peer is one of
    API_TRUSTED_PROXIES (anyone else could write that header)."""
    settings: ApiSettings = request.app.state.settings
    peer = request.client.host if request.client else "0.0.0.0"  # noqa: S104
    trusted = settings.trusted_proxies
    if not trusted or not _in(peer, settings):
        return peer
    # Every header line: proxies may add a line of their own instead of appending, and the
    # first line is whatever the client wrote.
    lines = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [h.strip() for h in lines.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, settings):
            return hop
    return peer


def _in(addr: str, settings: ApiSettings) -> bool:
    try:
        ip = ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in settings.trusted_proxies)


ClientIP = Annotated[str, Depends(client_ip)]


async def client_bucket(request: Request, ip: ClientIP) -> str:
    """The address a per-address limit counts against: IPv6 by prefix (a host owns a /64)."""
    settings: ApiSettings = request.app.state.settings
    return source_bucket(ip, settings.ipv6_bucket_prefix)


ClientBucket = Annotated[str, Depends(client_bucket)]


# Bound once: the label values are the names of the limits (API_*_RATE).
_LIMITED = {
    name: RATE_LIMITED.labels(name)
    for name in ("token", "register", "user", "client", "api_key", "anonymous")
}
_REFUSED = {
    reason: TOKENS_REFUSED.labels(reason)
    for reason in ("missing", "expired", "bad_signature", "unknown_kid", "revoked", "invalid")
}


async def limit_anonymous(response: Response, backends: BackendsDep, bucket: ClientBucket) -> None:
    await enforce_rate(
        response, backends, backends.settings.anonymous_rate, f"ip:{bucket}", "anonymous"
    )


async def enforce_rate(
    response: Response, backends: Backends, rate: str, ident: str, limit: str
) -> None:
    """`limit`: the limit's name, as the metric counts its refusals."""
    decision = await backends.guard.hit(rate, ident)
    response.headers.update(decision.headers())
    if not decision.allowed:
        _LIMITED[limit].inc()
        raise Problem(429, "rate limit exceeded, retry later", headers=decision.headers())


# The OAuth2 scheme the OpenAPI document names (with each route's scope: openapi.py). It is
# not a dependency: a node costs ~7 us on every request, so `bearer_token` reads the header
# the same way.
BEARER = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token",
    scopes=SCOPES,
    auto_error=False,
    description="An access token from /v1/auth/token",
)


def bearer_token(request: Request) -> str | None:
    """The credential of `Authorization: Bearer ...`, as OAuth2PasswordBearer reads it."""
    scheme, param = get_authorization_scheme_param(request.headers.get("authorization"))
    return param if scheme.lower() == "bearer" and param else None


async def current_claims(request: Request, response: Response, token: str | None) -> Claims:
    """A verified, unrevoked, within-rate access token, or 401/429."""
    backends = backends_of(request)  # not BackendsDep: this runs on every request
    if token and token.startswith(API_KEY_PREFIX):
        return await _api_key_claims(request, response, backends, token)
    claims = backends.verifier.cached(token) if token else None
    if claims is None:
        # No token, or one not verified before: counted against the address first, so
        # forged tokens cannot buy unlimited signature checks (or JWKS refreshes).
        bucket = await client_bucket(request, await client_ip(request))
        await limit_anonymous(response, backends, bucket)
    if not token:
        _REFUSED["missing"].inc()
        raise Problem(401, "a bearer access token is required")
    try:
        claims = claims or await backends.verifier.verify(token)
    except InvalidToken as exc:
        _REFUSED[exc.reason].inc()
        raise Problem(
            401,
            "the access token is invalid or expired",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    settings = backends.settings
    # An OAuth2 client's own token has a budget per client; a person's, per user.
    rate, ident = (
        (settings.client_rate, f"client:{claims.sub}")
        if claims.client_id
        else (settings.user_rate, f"user:{claims.sub}")
    )
    result = await backends.guard.check(
        rate,
        ident,
        user_id=claims.sub,
        jti=claims.jti,
        iat=claims.iat,
        family_id=claims.sid,
    )
    if result.revoked:
        _REFUSED["revoked"].inc()
        raise Problem(
            401,
            "the access token has been revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    response.headers.update(result.rate.headers())
    if not result.rate.allowed:
        _LIMITED["client" if claims.client_id else "user"].inc()
        raise Problem(429, "rate limit exceeded, retry later", headers=result.rate.headers())
    ACCESS_TOKEN.set(token)  # forwarded to users (enduser.py)
    return claims


async def _api_key_claims(
    request: Request, response: Response, backends: Backends, key: str
) -> Claims:
    async def limit_address() -> None:
        bucket = await client_bucket(request, await client_ip(request))
        await limit_anonymous(response, backends, bucket)

    return await api_key_claims(backends, response, key, limit_address)


# Each scope check and the scope it requires, for the OpenAPI document (openapi.py).
SCOPE_CHECKS: dict[Callable[..., Any], str] = {}


def require_scope(scope: str) -> Any:
    """`Annotated[Claims, require_scope("items:read")]`: the caller's claims, or 403. Every
    protected route declares its scope this way (it shows in the OpenAPI document)."""

    # One dependency node: FastAPI's per-node cost is paid on every protected request.
    async def check(request: Request, response: Response) -> Claims:
        claims = await current_claims(request, response, bearer_token(request))
        if scope not in claims.scopes:
            raise Problem(
                403,
                f"the access token lacks the scope {scope}",
                scope=scope,
                # RFC 6750 3.1: say which scope would do.
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        return claims

    SCOPE_CHECKS[check] = scope
    return Depends(check)


async def admin_claims(claims: Annotated[Claims, require_scope(USERS_ADMIN)]) -> Claims:
    if not claims.is_admin:
        raise Problem(403, "administrators only")
    return claims


AdminClaims = Annotated[Claims, Depends(admin_claims)]
