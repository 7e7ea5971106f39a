"""The two reference servers of the edge benchmark, each one uvicorn worker like api:

- `bare`: one FastAPI endpoint answering static JSON: what the framework alone costs;
- `floor`: the I/O a protected read cannot avoid and nothing else: one pipelined Redis round
  trip shaped like api's guard (two GETs, the rate-limit EVAL, PTTL) and one primary-key
  SELECT of an item, through api's own engine and Redis client setup. No token, no checks.

    python -m bulwark_devstack.bench.apps {bare,floor} --port N

`floor` reads api's settings (API_DATABASE_URL, REDIS_URL, BULWARK_REDIS_PREFIX, ...), so it
is started with the environment of the api under test and hits the same database and Redis."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

# bulwark_api ships no py.typed: checked as source by `make lint`, untyped when mypy is
# pointed at tools/ alone; the ignore covers both.
import bulwark_api.db as db  # type: ignore[import-untyped, unused-ignore]
from bulwark_api.guard import INCR_EXPIRE  # the script api's guard queues
from bulwark_api.settings import ApiSettings  # type: ignore[import-untyped, unused-ignore]
from bulwark_common import kv, revocation
from bulwark_common.process import freeze_startup_heap
from bulwark_common.settings import load_settings

PATH = "/v1/items/{item_id}"
STATIC: dict[str, Any] = {
    "id": "00000000-0000-0000-0000-000000000000",
    "name": "static",
    "description": None,
}


def bare_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(PATH)
    async def get_item(item_id: str) -> dict[str, Any]:
        return STATIC

    return app


def floor_app(settings: ApiSettings) -> FastAPI:
    engine: AsyncEngine | None = None
    redis: aioredis.Redis | None = None
    prefix = settings.redis_prefix
    rl_key = f"{prefix}rl:bench-floor"
    # Built once with a bound parameter, like api's hot read: the floor pays for the I/O,
    # not for building SQL.
    by_id = select(db.Item.__table__).where(db.Item.__table__.c.id == bindparam("id"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal engine, redis
        # Opened inside the loop, as api's Backends.open does.
        # api's read path: the autocommit engine (no BEGIN/ROLLBACK), one SELECT.
        engine = db.async_engine(settings.database_url, settings.data_dir, autocommit=True)
        redis = kv.aio_client(settings.redis_url)
        freeze_startup_heap()
        try:
            yield
        finally:
            await redis.aclose()
            await engine.dispose()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @app.get(PATH)
    async def get_item(item_id: str) -> Response:
        assert engine is not None and redis is not None
        pipe = redis.pipeline(transaction=False)
        pipe.get(revocation.jti_key(prefix, "bench-floor"))
        pipe.get(revocation.user_key(prefix, "bench-floor"))
        pipe.eval(INCR_EXPIRE, 1, rl_key, 60, 1)
        pipe.pttl(rl_key)
        await pipe.execute()
        async with engine.connect() as conn:
            row = (await conn.execute(by_id, {"id": item_id})).first()
        if row is None:
            return JSONResponse({"detail": "item not found"}, status_code=404)
        return JSONResponse(
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row._mapping.items()}
        )

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bulwark-bench-app", description=__doc__)
    parser.add_argument("kind", choices=["bare", "floor"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = (
        bare_app()
        if args.kind == "bare"
        else floor_app(load_settings(ApiSettings, "bulwark-bench-app"))
    )
    # The server options of bulwark-api serve, so only the application differs.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
