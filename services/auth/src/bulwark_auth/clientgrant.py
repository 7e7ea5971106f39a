"""The client-credentials grant (RFC 6749 4.4): an OAuth2 client (a service account
registered in users) trades its id and secret for an access token of its own: `sub` and
`client_id` are the client, the scopes are what it was registered with (or a requested
subset), there are no roles and no refresh token (it can simply ask again)."""

from __future__ import annotations

import time
from typing import Any

import grpc
import redis

from bulwark.auth.v1 import auth_pb2
from bulwark_auth.errors import invalid_client, invalid_request, invalid_scope, unauthorized_client
from bulwark_auth.tokens import InvalidScope, TokenIssuer, format_scope, resolve_scope
from bulwark_auth.users_client import UsersClient
from bulwark_common.apikeys import MAX_SECRET_LENGTH
from bulwark_common.logging import audit
from bulwark_common.rpc import Abort

GRANT = "client_credentials"
TOKEN_TYPE = "Bearer"  # noqa: S105 - a token type name, not a secret


class ClientCredentials:
    def __init__(
        self,
        users: UsersClient,
        tokens: TokenIssuer,
        ttl_seconds: int,
        redis_client: redis.Redis,
        prefix: str,
        per_minute: int,
    ) -> None:
        self.users = users
        self.tokens = tokens
        self.ttl_seconds = ttl_seconds
        self.redis = redis_client
        self.prefix = prefix
        self.per_minute = per_minute

    def _within_rate(self, client_id: str) -> bool:
        """Tokens per client per minute, counted once the client is authenticated (so
        nobody but the client can spend its budget). A fixed window, one round trip."""
        window = int(time.time() // 60)
        key = f"{self.prefix}rl:client-token:{client_id}:{window}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 61)
        count, _ = pipe.execute()
        return int(count) <= self.per_minute

    def issue(self, request: Any) -> Any:
        client_id: str = request.client_id
        secret: str = request.client_secret
        if not client_id or not secret:
            raise invalid_request()
        if len(client_id) > 64 or len(secret) > MAX_SECRET_LENGTH:
            raise invalid_client()
        client = self.users.verify_client(client_id, secret, request.client_ip)
        if client is None:
            raise invalid_client()  # users audited the failure
        if request.grant_type != GRANT:
            audit(
                "token.denied",
                client_id=client.client_id,
                grant_type=request.grant_type,
                reason="unauthorized_client",
                client_ip=request.client_ip,
            )
            raise unauthorized_client()
        try:
            scopes = resolve_scope(request.scope, frozenset(client.scopes))
        except InvalidScope:
            raise invalid_scope() from None
        if not self._within_rate(client.client_id):
            audit("token.denied", client_id=client.client_id, reason="rate_limited")
            raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many tokens for this client")
        access = self.tokens.issue(client.client_id, scopes, (), client_id=client.client_id)
        scope = format_scope(scopes)
        audit(
            "token.issued",
            client_id=client.client_id,
            grant_type=GRANT,
            client_ip=request.client_ip,
            scope=scope,
        )
        return auth_pb2.TokenResponse(
            access_token=access.token,
            token_type=TOKEN_TYPE,
            expires_in=self.ttl_seconds,
            scope=scope,
        )
