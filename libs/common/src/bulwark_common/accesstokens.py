"""The rules every verifier of Bulwark access tokens applies, in one place (api at the
edge, users for its admin RPCs): ES256 only, `typ: at+jwt`, a `kid` found in auth's
published keys, and iss, aud, exp, iat, sub, jti present and valid."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm

from bulwark_common.scopes import ADMIN, admin_power

ALGORITHM = "ES256"
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# Tolerated clock difference between auth and a verifier.
LEEWAY_SECONDS = 5


class InvalidToken(Exception):
    """The token must not be accepted; the message is safe to log, not to return.
    `reason` is one of a few fixed words (a metric label): expired, bad_signature,
    unknown_kid or invalid."""

    reason = "invalid"


class Expired(InvalidToken):
    reason = "expired"


class BadSignature(InvalidToken):
    reason = "bad_signature"


class UnknownKid(InvalidToken):
    """Signed by a key this verifier does not have (yet): a key refresh may help."""

    reason = "unknown_kid"


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    jti: str
    iat: float
    exp: int
    scopes: frozenset[str]
    roles: frozenset[str]
    sid: str | None = None  # the refresh family the token came from
    client_id: str | None = None  # an OAuth2 client's own token (client credentials)
    key_id: str | None = None  # presented as an API key, not a token (never in a JWT)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def may(self, admin_scope: str) -> bool:
        """Whether this token carries the admin power `admin_scope` (role and scope)."""
        return admin_power(self.roles, self.scopes, admin_scope)


def public_keys(jwks: Iterable[dict[str, str]]) -> dict[str, Any]:
    """kid -> verification key, for the EC ES256 keys of a JWKS (others are ignored)."""
    return {
        jwk["kid"]: ECAlgorithm.from_jwk(json.dumps(jwk))
        for jwk in jwks
        if jwk.get("alg") == ALGORITHM and jwk.get("kty") == "EC" and jwk.get("kid")
    }


def kid_of(token: str) -> str:
    """The header's kid after the header checks (algorithm, typ); signature not checked."""
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
    return kid


def verify(
    token: str, key_for: Callable[[str], Any | None], *, issuer: str, audience: str
) -> Claims:
    """Claims of a valid token, or InvalidToken (UnknownKid when the key is missing)."""
    key = key_for(kid_of(token))
    if key is None:
        raise UnknownKid("unknown kid")
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise Expired("rejected: expired") from None
    except jwt.InvalidSignatureError:
        raise BadSignature("rejected: bad signature") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"rejected: {type(exc).__name__}") from None
    return claims_of(payload)


def claims_of(payload: dict[str, Any]) -> Claims:
    scope = payload.get("scope", "")
    roles = payload.get("roles", [])
    iat = payload["iat"]
    sid = payload.get("sid")
    client_id = payload.get("client_id")
    if (
        not (sid is None or isinstance(sid, str))
        or not (client_id is None or isinstance(client_id, str))
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
        scopes=_shared(frozenset(scope.split())),
        roles=_shared(frozenset(str(r) for r in roles)),
        sid=sid,
        client_id=client_id,
    )


# Verifiers cache claims per token (api holds up to 10,000); nearly all tokens carry one of a
# few scope and role sets, so each distinct set is kept once instead of once per token.
_SETS: dict[frozenset[str], frozenset[str]] = {}
_MAX_SETS = 4096  # bounds the table against tokens with ever-new scope strings


def _shared(value: frozenset[str]) -> frozenset[str]:
    shared = _SETS.get(value)
    if shared is not None:
        return shared
    if len(_SETS) < _MAX_SETS:
        _SETS[value] = value
    return value
