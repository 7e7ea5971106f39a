"""The per-request checks that need Redis: revocation and rate limits, in ONE pipelined
round trip.

Rate limits use the `limits` library's fixed-window items (parsing, key scheme, window
expiry) and its own `incr_expire` Lua script, queued on our pipeline with EVAL: the
library's strategies would cost a round trip of their own (EVALSHA plus, for pipelines,
SCRIPT EXISTS), on top of the revocation lookup."""

from __future__ import annotations

import importlib.resources
import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from limits import RateLimitItem, parse

from bulwark_common import revocation
from bulwark_common.metrics import REDIS_ROUNDTRIP

INCR_EXPIRE = (
    importlib.resources.files("limits")
    .joinpath("resources/redis/lua_scripts/incr_expire.lua")
    .read_text()
)

# One pipelined round trip each: a rate limit alone, or revocation plus rate limit.
_HIT_RTT = REDIS_ROUNDTRIP.labels("rate_limit")
_CHECK_RTT = REDIS_ROUNDTRIP.labels("revocation_and_rate_limit")


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        hdrs = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            hdrs["Retry-After"] = str(max(1, self.reset_seconds))
        return hdrs


@dataclass(frozen=True)
class GuardResult:
    rate: RateDecision
    revoked: bool


class Guard:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._items: dict[str, RateLimitItem] = {}

    def item(self, rate: str) -> RateLimitItem:
        found = self._items.get(rate)
        if found is None:
            found = self._items[rate] = parse(rate)
        return found

    def _queue_hit(self, pipe: aioredis.client.Pipeline, item: RateLimitItem, ident: str) -> None:
        key = f"{self._prefix}rl:{item.key_for(ident)}"
        pipe.eval(INCR_EXPIRE, 1, key, item.get_expiry(), 1)
        pipe.pttl(key)

    @staticmethod
    def _decide(item: RateLimitItem, count: int, pttl: int) -> RateDecision:
        reset = math.ceil(pttl / 1000) if pttl > 0 else item.get_expiry()
        return RateDecision(
            allowed=count <= item.amount,
            limit=item.amount,
            remaining=max(0, item.amount - count),
            reset_seconds=reset,
        )

    async def hit(self, rate: str, ident: str) -> RateDecision:
        """Count one request against `rate` for `ident` (an anonymous door, by client IP)."""
        item = self.item(rate)
        pipe = self._redis.pipeline(transaction=False)
        self._queue_hit(pipe, item, ident)
        start = time.perf_counter()
        count, pttl = await pipe.execute()
        _HIT_RTT.observe(time.perf_counter() - start)
        return self._decide(item, int(count), int(pttl))

    async def check(
        self,
        rate: str,
        ident: str,
        *,
        user_id: str,
        jti: str,
        iat: float,
        family_id: str | None = None,
    ) -> GuardResult:
        """Rate limit plus both revocation facts for an authenticated request."""
        item = self.item(rate)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(revocation.jti_key(self._prefix, jti))
        pipe.get(revocation.user_key(self._prefix, user_id))
        # No family (a token issued before sid existed): a key that is never set.
        pipe.get(revocation.family_key(self._prefix, family_id or "-"))
        self._queue_hit(pipe, item, ident)
        start = time.perf_counter()
        denied_jti, revoked_before, revoked_family, count, pttl = await pipe.execute()
        _CHECK_RTT.observe(time.perf_counter() - start)
        return GuardResult(
            rate=self._decide(item, int(count), int(pttl)),
            revoked=revocation.is_void(denied_jti, revoked_before, iat, revoked_family),
        )
