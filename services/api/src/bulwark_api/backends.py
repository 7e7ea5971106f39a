"""Everything api talks to, opened once in the app's lifespan and closed on shutdown."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bulwark.auth.v1 import auth_pb2, auth_pb2_grpc
from bulwark.users.v1 import users_pb2_grpc
from bulwark_api import db
from bulwark_api.enduser import ForwardAccessToken
from bulwark_api.guard import Guard
from bulwark_api.keyguard import KeyGuard
from bulwark_api.settings import ApiSettings
from bulwark_api.statements import Statements, open_statements
from bulwark_api.tokens import Verifier
from bulwark_common import grpcio
from bulwark_common.runtime import Runtime

AUTH_SERVICE = "bulwark.auth.v1.AuthService"
USERS_SERVICE = "bulwark.users.v1.UsersService"
# Readiness must answer quickly even when a dependency hangs.
CHECK_TIMEOUT = 1.0


@dataclass
class Backends:
    settings: ApiSettings
    auth_channel: grpc.aio.Channel
    users_channel: grpc.aio.Channel
    auth: auth_pb2_grpc.AuthServiceStub
    users: users_pb2_grpc.UsersServiceStub
    redis: aioredis.Redis
    engine: AsyncEngine
    single: AsyncEngine  # autocommit, own pool: the statements' engine without PostgreSQL
    statements: Statements  # the hot single statements: reads, the create (statements.py)
    sessions: async_sessionmaker[AsyncSession]
    verifier: Verifier
    guard: Guard
    keys: KeyGuard

    runtime: Runtime

    @classmethod
    def open(cls, settings: ApiSettings, runtime: Runtime | None = None) -> Backends:
        """Inside the running loop (the app's lifespan). Without a runtime: dev without
        Vault, as in-process tests build it."""
        runtime = runtime or Runtime("api", settings)
        deadline = settings.grpc_deadline_seconds
        tls = runtime.tls
        auth_channel = grpcio.aio_channel(
            settings.auth_target, deadline, tls=tls, server_name="auth" if tls else None
        )
        # users checks the end user behind admin calls itself: the token goes along.
        users_channel = grpcio.aio_channel(
            settings.users_target,
            deadline,
            tls=tls,
            server_name="users" if tls else None,
            interceptors=[ForwardAccessToken()],
        )
        credentials = runtime.credentials() if settings.database_url else None
        engine = db.async_engine(settings.database_url, settings.data_dir, credentials=credentials)
        single = db.async_engine(
            settings.database_url, settings.data_dir, autocommit=True, credentials=credentials
        )
        auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
        redis = runtime.aio_redis(settings.redis_url)

        async def fetch_jwks() -> list[dict[str, str]]:
            reply = await auth.GetJwks(auth_pb2.GetJwksRequest())
            return [
                {f: getattr(k, f) for f in ("kty", "crv", "x", "y", "kid", "alg", "use")}
                for k in reply.keys
            ]

        guard = Guard(redis, settings.redis_prefix)
        return cls(
            settings=settings,
            auth_channel=auth_channel,
            users_channel=users_channel,
            auth=auth,
            users=users_pb2_grpc.UsersServiceStub(users_channel),
            redis=redis,
            engine=engine,
            single=single,
            statements=open_statements(
                db.sync_url(settings.database_url, settings.data_dir), single, credentials
            ),
            sessions=db.sessions(engine),
            verifier=Verifier(
                fetch_jwks,
                issuer=settings.issuer,
                audience=settings.audience,
                min_refresh_seconds=settings.jwks_min_refresh_seconds,
            ),
            guard=guard,
            keys=KeyGuard(redis, settings.redis_prefix, guard),
            runtime=runtime,
        )

    async def close(self) -> None:
        await self.auth_channel.close()
        await self.users_channel.close()
        await self.redis.aclose()
        await self.engine.dispose()
        await self.statements.close()
        await self.single.dispose()

    async def readiness(self) -> dict[str, str]:
        """Ask every dependency at once; each answers "ok" or why not."""
        names = ["auth", "users", "database", "redis", "vault"]
        results = await asyncio.gather(
            self._grpc_health(self.auth_channel, AUTH_SERVICE),
            self._grpc_health(self.users_channel, USERS_SERVICE),
            asyncio.wait_for(self._db_ping(), CHECK_TIMEOUT),
            asyncio.wait_for(self.redis.ping(), CHECK_TIMEOUT),
            self._vault(),
            return_exceptions=True,
        )
        return {
            name: "ok" if not isinstance(r, BaseException) else _reason(r)
            for name, r in zip(names, results, strict=True)
        }

    async def _grpc_health(self, channel: grpc.aio.Channel, service: str) -> None:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=CHECK_TIMEOUT
        )
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError("not serving")

    async def _vault(self) -> None:
        self.runtime.vault_check()  # in memory: what the renewers last reported

    async def _db_ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"unreachable ({exc.code().name.lower()})"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, RuntimeError):
        return str(exc)
    return f"unreachable ({type(exc).__name__})"
