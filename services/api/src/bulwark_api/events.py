"""api's side of users' events (bulwark_common.events): when a user (or an OAuth2 client) is
deleted, their items go too. A consumer group with acknowledgement after the delete, so an
api that crashes mid-way gets the event again (its own pending entries on restart; another
replica's after CLAIM_IDLE_MS). Deleting by owner is idempotent: a second delivery is harmless."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from redis.exceptions import RedisError, ResponseError
from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError

from bulwark_api.backends import Backends
from bulwark_api.db import Item
from bulwark_common import events
from bulwark_common.logging import audit

log = logging.getLogger("bulwark.api.events")
CLAIM_IDLE_MS = 30_000
BATCH = 100


async def consume_user_events(backends: Backends) -> None:
    """Run until cancelled; survives Redis and database outages (retries every second)."""
    redis = backends.redis
    stream = events.user_events_key(backends.settings.redis_prefix)
    group, consumer = events.CONSUMER_GROUP, socket.gethostname()
    while True:
        try:
            try:
                await redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            while True:
                claimed: Any = await redis.xautoclaim(
                    stream, group, consumer, min_idle_time=CLAIM_IDLE_MS, count=BATCH
                )
                await _handle(backends, stream, claimed[1])
                for last_id, block in (("0", None), (">", 1000)):
                    reply: Any = await redis.xreadgroup(
                        group, consumer, {stream: last_id}, count=BATCH, block=block
                    )
                    for _, entries in reply or []:
                        await _handle(backends, stream, entries)
        except (RedisError, SQLAlchemyError, OSError) as exc:
            log.warning("user events: retrying", extra={"error": type(exc).__name__})
            await asyncio.sleep(1)


async def _handle(backends: Backends, stream: str, entries: list[Any]) -> None:
    for entry_id, fields in entries:
        if not fields:  # trimmed away meanwhile
            await backends.redis.xack(stream, events.CONSUMER_GROUP, entry_id)
            continue
        kind = _text(fields.get(b"kind"))
        user_id = _text(fields.get(b"user_id"))
        # An OAuth2 client owns items as a user does (its id is its tokens' sub).
        if kind in (events.USER_DELETED, events.CLIENT_DELETED) and user_id:
            async with backends.sessions.begin() as session:
                result = await session.execute(delete(Item).where(Item.owner_id == user_id))
            audit("items.owner_deleted", user_id=user_id, items=result.rowcount)  # type: ignore[attr-defined]
        await backends.redis.xack(stream, events.CONSUMER_GROUP, entry_id)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
