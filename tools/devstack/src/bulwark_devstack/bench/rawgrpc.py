"""The gRPC floor of `GET /v1/users/me`: api's Redis pipeline plus one unary grpc.aio call,
over mTLS with api's channel options and certificate, to a minimal grpc.aio server holding
users' certificate that answers GetUser with one primary-key SELECT through asyncpg.

No interceptors on either side (no tracing, no caller policy, no end-user token check):
what the hop itself costs. Each side is started with its service's environment and logs in
to Vault as that service (database user, Redis user, certificate)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import grpc
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from bulwark.users.v1 import users_pb2, users_pb2_grpc
from bulwark_api.settings import ApiSettings  # type: ignore[import-untyped, unused-ignore]
from bulwark_common.channels import CHANNEL_OPTIONS
from bulwark_common.credentials import channel_credentials, server_credentials
from bulwark_common.db import database_url
from bulwark_common.grpcio import SERVER_OPTIONS
from bulwark_common.process import freeze_startup_heap
from bulwark_common.runtime import Runtime
from bulwark_common.settings import load_settings
from bulwark_devstack.bench.raw import OWNER_HEADER, Guard, pg_dsn
from bulwark_users.settings import UsersSettings  # type: ignore[import-untyped, unused-ignore]

READ_USER = "SELECT id, username, email, roles, disabled, created_at FROM users WHERE id = $1"


class _Users(users_pb2_grpc.UsersServiceServicer):  # type: ignore[misc]
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def GetUser(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        row = await self.pool.fetchrow(READ_USER, request.id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "user not found")
        roles = row["roles"]
        msg = users_pb2.User(
            id=row["id"],
            username=row["username"],
            email=row["email"],
            roles=sorted(orjson.loads(roles) if isinstance(roles, str) else roles),
            disabled=row["disabled"],
        )
        msg.created_at.FromDatetime(row["created_at"])
        return msg


async def _serve_users(port: int) -> None:
    settings = load_settings(UsersSettings, "bulwark-bench-raw")
    runtime = Runtime.start(
        settings,
        service="users",
        program="bulwark-bench-raw",
        database_url=settings.database_url,
    )
    if runtime.tls is None:
        raise SystemExit("the gRPC floor needs Vault (mTLS), as the bench stack runs")
    kw: dict[str, Any] = {}
    if (credentials := runtime.credentials()) is not None:
        kw["user"], kw["password"] = credentials.current()
    url = database_url(settings.database_url, settings.data_dir, "users")
    pool = await asyncpg.create_pool(
        pg_dsn(url.render_as_string(hide_password=False)), min_size=2, max_size=20, **kw
    )
    server = grpc.aio.server(options=SERVER_OPTIONS)
    users_pb2_grpc.add_UsersServiceServicer_to_server(_Users(pool), server)
    server.add_secure_port(f"127.0.0.1:{port}", server_credentials(runtime.tls))
    await server.start()
    freeze_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(5)
    await pool.close()
    runtime.close()


def serve_users(port: int) -> None:
    import uvloop

    uvloop.run(_serve_users(port))


def me_app(settings: ApiSettings, runtime: Runtime, target: str) -> FastAPI:
    state: dict[str, Any] = {}
    if runtime.tls is None:
        raise SystemExit("the gRPC floor needs Vault (mTLS), as the bench stack runs")
    tls = runtime.tls

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # api's channel: its options, its certificate, the callee verified as "users".
        channel = grpc.aio.secure_channel(
            target,
            channel_credentials(tls.material()),
            options=[*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", "users")],
        )
        state["stub"] = users_pb2_grpc.UsersServiceStub(channel)
        state["guard"] = Guard(runtime.aio_redis(settings.redis_url), settings.redis_prefix)
        freeze_startup_heap()
        try:
            yield
        finally:
            await state["guard"].redis.aclose()
            await channel.close()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    deadline = settings.grpc_deadline_seconds

    @app.get("/v1/users/me")
    async def get_me(request: Request) -> Response:
        user_id = request.headers.get(OWNER_HEADER, "")
        await state["guard"].check(user_id)
        u = await state["stub"].GetUser(users_pb2.GetUserRequest(id=user_id), timeout=deadline)
        body = {
            "id": u.id,
            "username": u.username,
            "email": u.email,
            "roles": list(u.roles),
            "disabled": u.disabled,
            "created_at": u.created_at.ToJsonString(),
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return app
