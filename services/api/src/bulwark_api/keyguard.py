"""API keys at the edge (`Authorization: Bearer bwk_...`): ONE Redis round trip per request.

One script reads the key's cached grant (written by users, bulwark_common.apikeys), records
the use for `last_used_at` when the key is live, and counts the request against the key's
rate limit. A tombstone (key deleted, user disabled or deleted) answers 401 at once. Only a
cache miss (evicted, or roles changed) asks users, which re-caches the grant."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from bulwark_api.guard import Guard, RateDecision
from bulwark_common import apikeys
from bulwark_common.accesstokens import Claims
from bulwark_common.scopes import allowed_scopes

# KEYS: grant, last-used, rate counter. ARGV: tombstone, now, rate window seconds.
KEY_CHECK = """
local rec = redis.call('GET', KEYS[1])
if rec and rec ~= ARGV[1] then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl) end
end
local n = redis.call('INCR', KEYS[3])
if n == 1 then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
return {rec, n, redis.call('PTTL', KEYS[3])}
"""


@dataclass(frozen=True)
class KeyCheck:
    rate: RateDecision
    revoked: bool  # a tombstone: no need to ask users
    record: apikeys.KeyRecord | None  # None with revoked False: not cached


class KeyGuard:
    def __init__(self, redis: aioredis.Redis, prefix: str, guard: Guard) -> None:
        self._redis = redis
        self._prefix = prefix
        self._guard = guard

    async def check(self, key_hash: str, rate: str) -> KeyCheck:
        item = self._guard.item(rate)
        rate_key = f"{self._prefix}rl:{item.key_for('apikey:' + key_hash[:32])}"
        raw, count, pttl = await self._redis.eval(
            KEY_CHECK,
            3,
            apikeys.record_key(self._prefix, key_hash),
            apikeys.used_key(self._prefix, key_hash),
            rate_key,
            apikeys.TOMBSTONE,
            f"{time.time():.0f}",
            item.get_expiry(),
        )
        decision = self._guard._decide(item, int(count), int(pttl))
        if raw is None:
            return KeyCheck(decision, False, None)
        if raw == apikeys.TOMBSTONE:
            return KeyCheck(decision, True, None)
        return KeyCheck(decision, False, apikeys.KeyRecord.loads(raw))

    async def record_use(self, key_hash: str, expires_at: int) -> None:
        """After a cache miss (off the hot path): the use the script could not record."""
        ttl = max(1, expires_at - int(time.time()))
        await self._redis.set(
            apikeys.used_key(self._prefix, key_hash), f"{time.time():.0f}", ex=ttl
        )


def claims_of(record: apikeys.KeyRecord) -> Claims | None:
    """The key's claims, or None once it has expired. Scopes are cut to what the owner's
    current roles allow (roles are re-cached on every change)."""
    if record.expires_at <= time.time():
        return None
    return Claims(
        sub=record.user_id,
        jti=f"apikey:{record.id}",
        iat=0.0,
        exp=record.expires_at,
        scopes=frozenset(record.scopes) & allowed_scopes(record.roles),
        roles=frozenset(record.roles),
        key_id=record.id,
    )
