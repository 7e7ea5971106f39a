"""The raw-driver floors: what api's endpoints cost through the fastest maintained drivers and
nothing else. Same FastAPI, same uvicorn options, the same Redis commands in one pipeline as
api's guard (three revocation GETs, the rate-limit EVAL, PTTL; redis-py parses with hiredis)
and the same SQL as api, through asyncpg prepared statements (measured faster here than
psycopg 3 with server-side prepared statements and binary results: see README).

    python -m bulwark_devstack.bench.raw items --port N    # item read, keyset page, create
    python -m bulwark_devstack.bench.raw me --port N       # Redis pipeline + one gRPC call
    python -m bulwark_devstack.bench.raw users-grpc --port N   # the minimal grpc.aio server

Started with the environment of the service it stands in for (api's, or users' for the gRPC
server), so it reaches the same database, Redis prefix and Vault (for the mTLS identity)."""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

import bulwark_api.db as db  # type: ignore[import-untyped, unused-ignore]
from bulwark_api.guard import INCR_EXPIRE
from bulwark_api.server_options import (  # type: ignore[import-untyped, unused-ignore]
    SERVER_OPTIONS,
)
from bulwark_api.settings import ApiSettings  # type: ignore[import-untyped, unused-ignore]
from bulwark_common import revocation
from bulwark_common.process import freeze_startup_heap
from bulwark_common.runtime import Runtime
from bulwark_common.settings import load_settings

ITEM_COLUMNS = "id, owner_id, name, description, created_at, updated_at"
READ_ONE = f"SELECT {ITEM_COLUMNS} FROM items WHERE id = $1 AND owner_id = $2"  # noqa: S608
READ_PAGE = (
    f"SELECT {ITEM_COLUMNS} FROM items WHERE owner_id = $1 "  # noqa: S608
    "ORDER BY created_at DESC, id DESC LIMIT $2"
)
INSERT = f"INSERT INTO items ({ITEM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"  # noqa: S608
OWNER_HEADER = "x-bench-owner"  # the floor has no token: the owner travels in a header


def api_runtime(settings: ApiSettings, *, identity: bool) -> Runtime:
    """api's Vault login: its database and Redis users and, for gRPC, its certificate."""
    return Runtime.start(
        settings,
        service="api",
        program="bulwark-bench-raw",
        database_url=settings.database_url,
        identity=identity,
    )


def pg_dsn(url: str) -> str:
    """asyncpg takes plain postgresql:// URLs (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Guard:
    """api's guard pipeline, as raw as redis-py allows: one round trip, five commands."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix

    async def check(self, user: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(revocation.jti_key(self.prefix, "bench-floor"))
        pipe.get(revocation.user_key(self.prefix, user))
        pipe.get(revocation.family_key(self.prefix, "-"))
        key = f"{self.prefix}rl:bench-floor:{user}"
        pipe.eval(INCR_EXPIRE, 1, key, 60, 1)
        pipe.pttl(key)
        await pipe.execute()


def _json(row: Any) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in dict(row).items()}


def _ok(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def pg_pool(settings: ApiSettings, runtime: Runtime) -> asyncpg.Pool:
    """asyncpg pool on api's database as api's current Vault user (fixed for the run)."""
    url = db.sync_url(settings.database_url, settings.data_dir)
    kw: dict[str, Any] = {}
    if (credentials := runtime.credentials()) is not None:
        kw["user"], kw["password"] = credentials.current()
    dsn = pg_dsn(url.render_as_string(hide_password=False))
    # api's statement-pool options (bulwark_api.statements): no reset round trip on release.
    return await asyncpg.create_pool(dsn, min_size=2, max_size=20, reset=_no_reset, **kw)


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


def items_app(settings: ApiSettings, runtime: Runtime) -> FastAPI:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await pg_pool(settings, runtime)
        state["guard"] = Guard(runtime.aio_redis(settings.redis_url), settings.redis_prefix)
        freeze_startup_heap()
        try:
            yield
        finally:
            await state["guard"].redis.aclose()
            await state["pool"].close()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    async def fetch(request: Request, run: Callable[[Any], Awaitable[Any]]) -> Any:
        await state["guard"].check(request.headers.get(OWNER_HEADER, "-"))
        async with state["pool"].acquire() as conn:
            return await run(conn)

    @app.get("/v1/items/{item_id}")
    async def get_item(item_id: str, request: Request) -> Response:
        owner = request.headers.get(OWNER_HEADER, "")
        row = await fetch(request, lambda c: c.fetchrow(READ_ONE, item_id, owner))
        if row is None:
            return _ok({"detail": "item not found"}, 404)
        return _ok(_json(row))

    @app.get("/v1/items")
    async def list_items(request: Request, limit: int = 20) -> Response:
        owner = request.headers.get(OWNER_HEADER, "")
        rows = await fetch(request, lambda c: c.fetch(READ_PAGE, owner, limit + 1))
        return _ok({"items": [_json(r) for r in rows[:limit]], "next_cursor": None})

    @app.post("/v1/items")
    async def create_item(request: Request) -> Response:
        body = orjson.loads(await request.body())
        now = datetime.now(UTC)
        owner = request.headers.get(OWNER_HEADER, "")
        row = (str(uuid.uuid4()), owner, body["name"], body.get("description"), now, now)
        await fetch(request, lambda c: c.execute(INSERT, *row))
        keys = ITEM_COLUMNS.split(", ")
        return _ok(_json(dict(zip(keys, row, strict=True))), 201)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bulwark-bench-raw", description=__doc__)
    parser.add_argument("kind", choices=["items", "me", "users-grpc"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.kind == "users-grpc":
        from bulwark_devstack.bench.rawgrpc import serve_users

        serve_users(args.port)
        return
    settings = load_settings(ApiSettings, "bulwark-bench-raw")
    runtime = api_runtime(settings, identity=args.kind == "me")
    if args.kind == "items":
        app = items_app(settings, runtime)
    else:
        from bulwark_devstack.bench.rawgrpc import me_app

        app = me_app(settings, runtime, os.environ["BENCH_GRPC_TARGET"])
    # The server options of bulwark-api serve, so only the application differs.
    uvicorn.run(app, host="127.0.0.1", port=args.port, **SERVER_OPTIONS)


if __name__ == "__main__":
    main()
