"""Redis clients with timeouts, so a missing Redis is an error, never a hang.

With Vault, each new connection logs in as the service's current dynamic ACL user. When the
credential is re-issued, the client gets a fresh connection pool (new connections, new user)
and the old pool is closed a little later, once the commands running on it have finished:
so no connection of the old user is in use when Vault deletes that user at the end of its
lease (Redis then drops its connections). Closing pooled connections in place instead races
with requests taking them out of the pool.

A Redis that restarts loses the ACL users Vault created (they are not data): a connection
refused with WRONGPASS asks for a fresh credential at once (`DatabaseCredentials.reissue`),
instead of failing until the lease would have been renewed."""

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
# Commands take milliseconds (the socket timeout is 2 s): then the old pool is idle.
OLD_POOL_GRACE_SECONDS = 3.0


def _swap_pool(r: Any) -> Any:
    """A fresh pool for `r` (new connections, new credential); returns the old one to close."""
    old = r.connection_pool
    r.connection_pool = type(old)(
        connection_class=old.connection_class,
        max_connections=old.max_connections,
        **old.connection_kwargs,
    )
    return old


def _sync_connection(credentials: DatabaseCredentials) -> type[redis.Connection]:
    class Reissuing(redis.Connection):
        """Asks for a fresh credential when Redis refuses the current one."""

        def on_connect_check_health(self, check_health: bool = True) -> None:
            try:
                super().on_connect_check_health(check_health)
            except redis.AuthenticationError:
                credentials.reissue()
                raise

    return Reissuing


def _async_connection(credentials: DatabaseCredentials) -> type[aioredis.Connection]:
    class Reissuing(aioredis.Connection):
        """Asks for a fresh credential when Redis refuses the current one."""

        async def on_connect_check_health(self, check_health: bool = True) -> None:
            try:
                await super().on_connect_check_health(check_health)
            except redis.AuthenticationError:
                credentials.reissue()
                raise

    return Reissuing


def client(url: str, credentials: DatabaseCredentials | None = None) -> redis.Redis:
    if credentials is None:
        return redis.Redis.from_url(url, **OPTIONS)
    r = redis.Redis.from_url(
        url,
        credential_provider=RedisCredentials(credentials),
        connection_class=_sync_connection(credentials),
        **OPTIONS,
    )

    def renewed() -> None:
        timer = threading.Timer(OLD_POOL_GRACE_SECONDS, _swap_pool(r).disconnect)
        timer.daemon = True
        timer.start()

    credentials.subscribe(renewed)
    return r


def aio_client(url: str, credentials: DatabaseCredentials | None = None) -> aioredis.Redis:
    if credentials is None:
        return aioredis.Redis.from_url(url, **OPTIONS)
    r = aioredis.Redis.from_url(
        url,
        credential_provider=RedisCredentials(credentials),
        connection_class=_async_connection(credentials),
        **OPTIONS,
    )
    loop = asyncio.get_running_loop()
    closing: set[asyncio.Task[None]] = set()

    async def retire(old: Any) -> None:
        await asyncio.sleep(OLD_POOL_GRACE_SECONDS)
        await old.disconnect()

    def swap() -> None:
        task = loop.create_task(retire(_swap_pool(r)))
        closing.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(closing.discard)

    def renewed() -> None:
        # Called from the renewer's thread: the pools belong to the loop.
        loop.call_soon_threadsafe(swap)

    credentials.subscribe(renewed)
    return r
