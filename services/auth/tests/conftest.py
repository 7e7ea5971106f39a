"""auth test fixtures: a real auth gRPC server over real PostgreSQL and Redis, talking to a
small in-test UsersService (users.proto is the other service's contract; this double
implements it over a real gRPC server, it is not a mock of infrastructure)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
import redis

from bulwark.auth.v1 import auth_pb2, auth_pb2_grpc
from bulwark.users.v1 import users_pb2, users_pb2_grpc
from bulwark_auth.keys import Keyring, generate_pem
from bulwark_auth.models import migrate
from bulwark_auth.service import AuthServicer, add_to_server
from bulwark_auth.settings import AuthSettings
from bulwark_common import grpcio
from bulwark_common.db import Database, database_url

PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    user: Any  # users_pb2.User
    password: str


@dataclass
class FakeUsers(users_pb2_grpc.UsersServiceServicer):  # type: ignore[misc]
    """users.proto semantics auth relies on: VerifyCredentials answers ok=false alike for
    unknown users, wrong passwords and disabled accounts; GetUser is NOT_FOUND for unknown
    ids."""

    accounts: dict[str, Account] = field(default_factory=dict)
    verify_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, username: str, roles: tuple[str, ...] = ("user",), disabled: bool = False) -> Any:
        user = users_pb2.User(
            id=str(uuid.uuid4()), username=username, roles=list(roles), disabled=disabled
        )
        self.accounts[username] = Account(user=user, password=PASSWORD)
        return user

    def by_id(self, user_id: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.user.id == user_id), None)

    def set_disabled(self, username: str, disabled: bool = True) -> None:
        self.accounts[username].user.disabled = disabled

    def set_roles(self, username: str, roles: list[str]) -> None:
        user = self.accounts[username].user
        del user.roles[:]
        user.roles.extend(roles)

    def VerifyCredentials(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            self.verify_calls += 1
        account = self.accounts.get(request.username)
        if account is None or account.password != request.password or account.user.disabled:
            return users_pb2.VerifyCredentialsResponse(ok=False)
        return users_pb2.VerifyCredentialsResponse(ok=True, user=account.user)

    def GetUser(self, request: Any, context: grpc.ServicerContext) -> Any:
        account = self.by_id(request.id)
        if account is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "user not found")
        assert account is not None  # abort raised
        return account.user


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring.from_pems(generate_pem())


@pytest.fixture
def users() -> Iterator[tuple[FakeUsers, str]]:
    fake = FakeUsers()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    users_pb2_grpc.add_UsersServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, f"127.0.0.1:{port}"
    server.stop(0).wait()


def make_settings(tmp_path: Path, **overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "signing_key_dir": tmp_path / "keys",
        "BULWARK_DATA_DIR": tmp_path,
        "backoff_base_seconds": 0.3,
        "backoff_max_seconds": 2.0,
        "backoff_free_failures": 3,
        "BULWARK_GRPC_DEADLINE_SECONDS": 1.0,
    }
    values.update(overrides)
    return AuthSettings(**values)


@dataclass
class AuthHarness:
    stub: Any  # auth_pb2_grpc.AuthServiceStub
    users: FakeUsers
    servicer: AuthServicer
    db: Database
    redis: redis.Redis
    prefix: str
    settings: AuthSettings

    def login(self, username: str, password: str = PASSWORD, scope: str = "") -> Any:
        return self.stub.IssueToken(
            auth_pb2.IssueTokenRequest(
                username=username, password=password, scope=scope, client_ip="203.0.113.7"
            )
        )

    def refresh(self, token: str, scope: str = "") -> Any:
        return self.stub.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=token, scope=scope, client_ip="203.0.113.7")
        )

    def revoke(self, token: str, hint: str = "") -> Any:
        return self.stub.RevokeToken(
            auth_pb2.RevokeTokenRequest(token=token, token_type_hint=hint, client_ip="203.0.113.7")
        )

    def decode(self, access_token: str) -> dict[str, Any]:
        """Verify like api does: key from the JWKS by kid."""
        jwks = self.stub.GetJwks(auth_pb2.GetJwksRequest())
        kid = jwt.get_unverified_header(access_token)["kid"]
        jwk = next(k for k in jwks.keys if k.kid == kid)
        key = jwt.PyJWK(
            {"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y, "kid": jwk.kid},
            algorithm="ES256",
        )
        claims: dict[str, Any] = jwt.decode(
            access_token,
            key,
            algorithms=["ES256"],
            audience=self.settings.audience,
            issuer=self.settings.issuer,
        )
        return claims


AuthFactory = Callable[..., AbstractContextManager[AuthHarness]]


@pytest.fixture
def auth_factory(tmp_path: Path, keyring: Keyring, users: tuple[FakeUsers, str]) -> AuthFactory:
    """Start a real auth server with these setting overrides; yields an AuthHarness."""
    fake, users_target = users

    @contextmanager
    def start(**overrides: Any) -> Iterator[AuthHarness]:
        settings = make_settings(tmp_path, **{"users_target": users_target, **overrides})
        db = Database(database_url(settings.database_url, settings.data_dir, "auth"))
        migrate(db.url)
        client = redis.Redis.from_url(settings.redis_url)
        users_channel = grpcio.channel(settings.users_target, settings.grpc_deadline_seconds)
        servicer = AuthServicer(settings, db, keyring, client, users_channel)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=settings.max_workers))
        add_to_server(servicer, server)
        # Port 0: the server picks a free one and says which (no pick-then-bind race).
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield AuthHarness(
                    stub=auth_pb2_grpc.AuthServiceStub(channel),
                    users=fake,
                    servicer=servicer,
                    db=db,
                    redis=client,
                    prefix=settings.redis_prefix,
                    settings=settings,
                )
        finally:
            server.stop(0).wait()
            users_channel.close()
            client.close()
            db.dispose()

    return start


@pytest.fixture
def auth(
    auth_factory: AuthFactory, postgres_url: str, redis_url: str, redis_prefix: str
) -> Iterator[AuthHarness]:
    with auth_factory(
        AUTH_DATABASE_URL=postgres_url, REDIS_URL=redis_url, BULWARK_REDIS_PREFIX=redis_prefix
    ) as harness:
        yield harness
