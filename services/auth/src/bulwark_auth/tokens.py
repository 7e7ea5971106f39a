"""Access tokens (ES256 JWTs), scopes, and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from bulwark_auth.keys import ALGORITHM, Keyring

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - the RFC 9068 typ, not a secret


class InvalidScope(ValueError):
    """The requested scope asks for more than the grant allows."""


def parse_scope(scope: str) -> frozenset[str]:
    return frozenset(scope.split())


def format_scope(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))


def resolve_scope(requested: str, allowed: frozenset[str]) -> frozenset[str]:
    """Empty request: everything allowed. Otherwise a subset of allowed, or InvalidScope.
    An empty result is refused too: a token that grants nothing is only a liability."""
    wanted = parse_scope(requested)
    if not wanted:
        wanted = allowed
    if not wanted <= allowed or not wanted:
        raise InvalidScope(requested)
    return wanted


@dataclass(frozen=True)
class AccessToken:
    token: str
    jti: str
    iat: float
    exp: int


class TokenIssuer:
    def __init__(self, keyring: Keyring, issuer: str, audience: str, ttl_seconds: int) -> None:
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(
        self,
        user_id: str,
        scopes: Iterable[str],
        roles: Iterable[str],
        now: float | None = None,
        family_id: str | None = None,
        client_id: str | None = None,
    ) -> AccessToken:
        # Millisecond float iat: api voids tokens with iat <= the user's revoked-before
        # marker, so a token issued right after a password change must compare later.
        iat = round(time.time() if now is None else now, 3)
        exp = int(iat) + self.ttl_seconds
        jti = uuid.uuid4().hex
        key = self.keyring.current
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user_id,
            "aud": self.audience,
            "exp": exp,
            "iat": iat,
            "jti": jti,
            "scope": format_scope(scopes),
            "roles": sorted(set(roles)),
        }
        if family_id is not None:
            # The refresh family it came from: revoking the family voids it at api too.
            claims["sid"] = family_id
        if client_id is not None:
            # RFC 9068: a client's own token (client credentials) names it; sub is the client.
            claims["client_id"] = client_id
        token = jwt.encode(
            claims,
            key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
        )
        return AccessToken(token=token, jti=jti, iat=iat, exp=exp)

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a token we issued and that is still valid; raises jwt.InvalidTokenError
        for anything else (bad signature, unknown kid, wrong iss/aud/typ, expired)."""
        header = jwt.get_unverified_header(token)
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise jwt.InvalidTokenError("not an access token")
        kid = header.get("kid")
        key = self.keyring.verification_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise jwt.InvalidTokenError("unknown kid")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "jti", "sub", "iss", "aud"]},
        )
        return claims


# Recognisable, so logs can redact it and secret scanners can find it where it leaked.
REFRESH_TOKEN_PREFIX = "bwr_"  # noqa: S105 - a prefix, not a secret


def new_refresh_token() -> str:
    """`bwr_` and 256 random bits; only its hash is ever stored."""
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # A plain hash suffices: the token has 256 bits of entropy, nothing to brute-force.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
