"""Local access-token verification with auth's keys (JWKS over gRPC), cached.

Only ES256 with a known `kid` and `typ: at+jwt` passes; iss, aud, exp, iat are required.
Keys are refreshed when an unknown kid appears, at most once per `min_refresh` seconds after a
successful fetch, so a flood of forged kids cannot turn into a flood of calls to auth.
Verified tokens are cached until they expire (signature checks are the expensive part;
revocation is checked per request elsewhere)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm

from bulwark_common.scopes import ADMIN, admin_power

ALGORITHM = "ES256"
ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}
# Tolerated clock difference between auth and api.
LEEWAY_SECONDS = 5


class InvalidToken(Exception):
    """The token must not be accepted; the message is safe to log, not to return."""


@dataclass(frozen=True)
class Claims:
    sub: str
    jti: str
    iat: float
    exp: int
    scopes: frozenset[str]
    roles: frozenset[str]
    sid: str | None = None  # the refresh family the token came from

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def may(self, admin_scope: str) -> bool:
        """Whether this token carries the admin power `admin_scope` (role and scope)."""
        return admin_power(self.roles, self.scopes, admin_scope)


JwksFetcher = Callable[[], Awaitable[list[dict[str, str]]]]


class Verifier:
    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        min_refresh_seconds: float = 10.0,
        cache_size: int = 10_000,
    ) -> None:
        self._fetch = fetch_jwks
        self._issuer = issuer
        self._audience = audience
        self._min_refresh = min_refresh_seconds
        self._keys: dict[str, Any] = {}
        self.jwks: list[dict[str, str]] = []
        self._last_refresh = float("-inf")
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[str, Claims] = OrderedDict()
        self._cache_size = cache_size

    async def refresh(self, *, force: bool = False) -> None:
        async with self._lock:
            now = time.monotonic()
            if not force and now - self._last_refresh < self._min_refresh:
                return
            # Only a successful fetch counts: a failed one (auth down) must not hold back the
            # next try once auth is back. Floods meanwhile are bounded per address (deps).
            jwks = await self._fetch()
            self._last_refresh = now
            keys = {}
            for jwk in jwks:
                if jwk.get("alg") == ALGORITHM and jwk.get("kty") == "EC":
                    keys[jwk["kid"]] = ECAlgorithm.from_jwk(json.dumps(jwk))
            self._keys, self.jwks = keys, jwks
            # Tokens signed by a key that left the JWKS must stop passing.
            self._cache.clear()

    def cached(self, token: str) -> Claims | None:
        """The claims of a token verified before and not yet expired, else None."""
        cached = self._cache.get(token)
        if cached is not None and cached.exp > time.time() - LEEWAY_SECONDS:
            return cached
        return None

    async def verify(self, token: str) -> Claims:
        cached = self._cache.get(token)
        if cached is not None:
            if cached.exp > time.time() - LEEWAY_SECONDS:
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {type(exc).__name__}") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} not accepted")
        if header.get("typ") not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("no kid")
        key = self._keys.get(kid)
        if key is None:
            await self.refresh()
            key = self._keys.get(kid)
            if key is None:
                raise InvalidToken("unknown kid")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"rejected: {type(exc).__name__}") from None
        claims = _claims(payload)
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims


def _claims(payload: dict[str, Any]) -> Claims:
    scope = payload.get("scope", "")
    roles = payload.get("roles", [])
    iat = payload["iat"]
    sid = payload.get("sid")
    if (
        not (sid is None or isinstance(sid, str))
        or not isinstance(scope, str)
        or not isinstance(roles, list)
        or not isinstance(iat, int | float)
        or not isinstance(payload["sub"], str)
        or not isinstance(payload["jti"], str)
    ):
        raise InvalidToken("malformed claims")
    return Claims(
        sub=payload["sub"],
        jti=payload["jti"],
        iat=float(iat),
        exp=int(payload["exp"]),
        scopes=frozenset(scope.split()),
        roles=frozenset(str(r) for r in roles),
        sid=sid,
    )
