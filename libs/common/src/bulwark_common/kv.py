"""Redis clients with timeouts, so a missing Redis is an error, never a hang."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )


def aio_client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )
