"""The AuthService servicer: wires the grants (grants.py), revocation (revoking.py) and the
JWKS to gRPC. Errors follow auth.proto (errors.py)."""

from __future__ import annotations

from typing import Any

import grpc
import redis

from bulwark.auth.v1 import auth_pb2, auth_pb2_grpc
from bulwark_auth.bruteforce import LoginThrottle
from bulwark_auth.clientgrant import ClientCredentials
from bulwark_auth.errors import rpc
from bulwark_auth.grants import Grants
from bulwark_auth.keys import Keyring
from bulwark_auth.revoking import Revoker
from bulwark_auth.settings import AuthSettings
from bulwark_auth.tokens import TokenIssuer
from bulwark_auth.users_client import UsersClient
from bulwark_common.db import Database

SERVICE_NAME: str = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        settings: AuthSettings,
        db: Database,
        keyring: Keyring,
        redis_client: redis.Redis,
        users_channel: grpc.Channel,
    ) -> None:
        self.keyring = keyring
        self.tokens = TokenIssuer(
            keyring, settings.issuer, settings.audience, settings.access_token_ttl_seconds
        )
        self.throttle = LoginThrottle(
            redis_client,
            settings.redis_prefix,
            free_failures=settings.backoff_free_failures,
            base_seconds=settings.backoff_base_seconds,
            max_seconds=settings.backoff_max_seconds,
            window_seconds=settings.failure_window_seconds,
            account_free_failures=settings.backoff_account_free_failures,
        )
        users = UsersClient(users_channel)
        self.grants = Grants(settings, db, redis_client, users, self.tokens, self.throttle)
        self.clients = ClientCredentials(
            users,
            self.tokens,
            settings.access_token_ttl_seconds,
            redis_client,
            settings.redis_prefix,
            settings.client_tokens_per_minute,
        )
        self.revoker = Revoker(
            db, redis_client, settings.redis_prefix, self.tokens, settings.access_token_ttl_seconds
        )

    @rpc
    def IssueToken(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.grants.password(request)

    @rpc
    def RefreshToken(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.grants.refresh(request)

    @rpc
    def IssueClientToken(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.clients.issue(request)

    @rpc
    def RevokeToken(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.revoker.revoke(request.token, request.token_type_hint, request.client_ip)
        # Unknown, expired or foreign tokens: OK, so the answer reveals nothing.
        return auth_pb2.RevokeTokenResponse()

    @rpc
    def GetJwks(self, request: Any, context: grpc.ServicerContext) -> Any:
        return auth_pb2.GetJwksResponse(keys=[auth_pb2.Jwk(**jwk) for jwk in self.keyring.jwks()])


def add_to_server(servicer: AuthServicer, server: grpc.Server) -> list[str]:
    auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
    return [SERVICE_NAME]
