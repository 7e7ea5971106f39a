"""Redis clients with timeouts, so a missing Redis is an error, never a hang.

With Vault, each new connection logs in as the service's current dynamic ACL user. When the
credential is re-issued, pooled connections of the old user are dropped while idle (now and
once more a little later, for those that were busy), so none is still in use when Vault
deletes the old user at the end of its lease."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import redis
import redis.asyncio as aioredis

from bulwark_common.vault import DatabaseCredentials, RedisCredentials

OPTIONS: dict[str, Any] = {
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
    "health_check_interval": 30,
}
# Busy connections finish their command well within this; then they are idle too.
SECOND_SWEEP_SECONDS = 2.0


def client(url: str, credentials: DatabaseCredentials | None = None) -> redis.Redis:
    if credentials is None:
        return redis.Redis.from_url(url, **OPTIONS)
    r = redis.Redis.from_url(url, credential_provider=RedisCredentials(credentials), **OPTIONS)

    def sweep() -> None:
        r.connection_pool.disconnect(inuse_connections=False)

    def renewed() -> None:
        sweep()
        timer = threading.Timer(SECOND_SWEEP_SECONDS, sweep)
        timer.daemon = True
        timer.start()

    credentials.subscribe(renewed)
    return r


def aio_client(url: str, credentials: DatabaseCredentials | None = None) -> aioredis.Redis:
    if credentials is None:
        return aioredis.Redis.from_url(url, **OPTIONS)
    r = aioredis.Redis.from_url(url, credential_provider=RedisCredentials(credentials), **OPTIONS)
    loop = asyncio.get_running_loop()
    sweeping: set[asyncio.Task[None]] = set()

    def sweep() -> None:
        task = loop.create_task(r.connection_pool.disconnect(inuse_connections=False))
        sweeping.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(sweeping.discard)

    def renewed() -> None:
        # Called from the renewer's thread: the pool belongs to the loop.
        loop.call_soon_threadsafe(sweep)
        loop.call_soon_threadsafe(loop.call_later, SECOND_SWEEP_SECONDS, sweep)

    credentials.subscribe(renewed)
    return r
