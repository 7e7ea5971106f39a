"""Token revocation (RFC 7009): refresh tokens by family in PostgreSQL, access tokens by
jti in Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
import redis

from bulwark_auth import families
from bulwark_auth.errors import invalid_request
from bulwark_auth.grants import ACCESS_LEEWAY_SECONDS, MAX_TOKEN_LENGTH
from bulwark_auth.tokens import TokenIssuer, hash_refresh_token
from bulwark_common import revocation
from bulwark_common.db import Database
from bulwark_common.logging import audit


class Revoker:
    def __init__(
        self,
        db: Database,
        redis_client: redis.Redis,
        prefix: str,
        tokens: TokenIssuer,
        access_ttl_seconds: int,
    ) -> None:
        self.access_ttl_seconds = access_ttl_seconds
        self.db = db
        self.redis = redis_client
        self.prefix = prefix
        self.tokens = tokens

    def revoke(self, token: str, hint: str, client_ip: str) -> None:
        if not token:
            raise invalid_request()
        if len(token) > MAX_TOKEN_LENGTH:
            return
        # The hint only orders the attempts (RFC 7009 2.1).
        attempts = [self._revoke_refresh, self._revoke_access]
        if hint == "access_token":
            attempts.reverse()
        for attempt in attempts:
            if attempt(token, client_ip):
                return

    def _revoke_refresh(self, token: str, client_ip: str) -> bool:
        now = datetime.now(UTC)
        with self.db.transaction() as session:
            row = families.find(session, hash_refresh_token(token))
            if row is None:
                return False
            families.revoke_family_in(session, row.family_id, now)
        # RFC 7009 2.1: the access tokens of that grant go too.
        ttl = self.access_ttl_seconds + ACCESS_LEEWAY_SECONDS
        revocation.revoke_family(self.redis, self.prefix, row.family_id, ttl)
        audit(
            "token.revoked",
            user_id=row.user_id,
            client_ip=client_ip,
            family_id=row.family_id,
            kind="refresh_token",
        )
        return True

    def _revoke_access(self, token: str, client_ip: str) -> bool:
        try:
            claims = self.tokens.verify(token)
        except jwt.InvalidTokenError:
            return False
        # A Redis failure propagates (UNAVAILABLE): never say "revoked" when it is not.
        revocation.revoke_jti(self.redis, self.prefix, claims["jti"], int(claims["exp"]))
        audit(
            "token.revoked",
            user_id=claims["sub"],
            client_ip=client_ip,
            jti=claims["jti"],
            kind="access_token",
        )
        return True
