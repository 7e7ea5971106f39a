"""The Redis keys that make revocation take effect now, shared by auth, users and api.

Three facts, all written by the service that revokes and read by api on every request (one
pipelined round trip):
- `<prefix>revoked:jti:<jti>` exists while a revoked access token could still be valid;
- `<prefix>revoked:family:<family id>` exists while an access token of a revoked refresh
  family could still be valid (reuse detected, refresh token revoked); access tokens carry
  their family id in the `sid` claim;
- `<prefix>revoked:user:<user id>` holds a Unix time: tokens issued at or before it are void
  (password change, disable, delete, role change). auth writes `iat` with millisecond
  precision, so a token issued right after a password change is not caught by the marker
  the change itself wrote.
"""

from __future__ import annotations

import time

import redis

from bulwark_common.metrics import REVOCATIONS

_FAMILY, _TOKEN, _USER = (REVOCATIONS.labels(k) for k in ("family", "access_token", "user"))

# A marker must outlive every token it voids: refresh tokens live up to 30 days (auth also
# revokes older refresh families in its database when it meets a marker).
USER_MARKER_TTL_SECONDS = 31 * 24 * 3600


def jti_key(prefix: str, jti: str) -> str:
    return f"{prefix}revoked:jti:{jti}"


def user_key(prefix: str, user_id: str) -> str:
    return f"{prefix}revoked:user:{user_id}"


def family_key(prefix: str, family_id: str) -> str:
    return f"{prefix}revoked:family:{family_id}"


def revoke_family(client: redis.Redis, prefix: str, family_id: str, ttl_seconds: int) -> None:
    """`ttl_seconds`: at least the access-token lifetime, so the marker outlives them."""
    client.set(family_key(prefix, family_id), "1", ex=max(1, ttl_seconds))
    _FAMILY.inc()


def revoke_jti(client: redis.Redis, prefix: str, jti: str, expires_at: int) -> None:
    ttl = max(1, int(expires_at - time.time()) + 1)
    client.set(jti_key(prefix, jti), "1", ex=ttl)
    _TOKEN.inc()


def revoke_user_tokens(client: redis.Redis, prefix: str, user_id: str) -> None:
    client.set(user_key(prefix, user_id), f"{time.time():.3f}", ex=USER_MARKER_TTL_SECONDS)
    _USER.inc()


def is_void(
    revoked_jti: object, revoked_before: object, iat: float, revoked_family: object = None
) -> bool:
    """Decide from the values read back (in one pipelined round trip) by api."""
    if revoked_jti is not None or revoked_family is not None:
        return True
    if revoked_before is None:
        return False
    raw = revoked_before.decode() if isinstance(revoked_before, bytes) else str(revoked_before)
    return iat <= float(raw)
