"""Login throttling in Redis, per account *and* source, with a global cap per account.

Every attempt is reserved atomically (one Lua script) before the password is checked, so
concurrent guesses count as sequential ones do. Keys (under the deployment's redis_prefix;
`<src>` is the client address, IPv6 by prefix, see bulwark_common.netaddr):
- `login:fail:<src> <username>` counts attempts from that source; it expires
  `failure_window_seconds` after the last (or after the backoff, if longer);
- `login:backoff:<src> <username>` exists while that source is in backoff for the account;
  attempts meanwhile are refused before the password is checked;
- `login:total:<username>` counts failures from every source in the window. Past
  `account_free_failures` the account is under attack: every source then gets one free try
  instead of `free_failures`;
- `login:backoffs` (one sorted set) holds each account in backoff, scored with the latest
  moment (Redis time, ms) any source's backoff for it ends: `accounts_in_backoff` counts it
  for the `bulwark_auth_accounts_in_backoff` gauge without scanning the keyspace.

The owner, from an address that has not failed for their account, is never held back by the
failures of other addresses (the lockout bound, README: Security choices)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

# Mirrors backoff_seconds below, in milliseconds (the unit test compares the two).
_RESERVE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 0, 0} end
local n = redis.call('INCR', KEYS[1])
local total = redis.call('INCR', KEYS[3])
local window = tonumber(ARGV[4])
redis.call('EXPIRE', KEYS[3], window)
local free = tonumber(ARGV[1])
if total > tonumber(ARGV[5]) then free = 1 end
local delay = 0
if n >= free then
  local exponent = math.min(n - free, 40)
  delay = math.ceil(math.min(tonumber(ARGV[2]) * 2 ^ exponent, tonumber(ARGV[3])))
  redis.call('SET', KEYS[2], n, 'PX', delay)
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  -- Ended backoffs are pruned here, not at scrape, so even with metrics off the set holds at
  -- most the accounts in backoff when the latest began; it expires with its longest backoff.
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  redis.call('ZADD', KEYS[4], 'GT', now + delay, ARGV[6])
  if redis.call('PTTL', KEYS[4]) < delay then redis.call('PEXPIRE', KEYS[4], delay) end
end
redis.call('EXPIRE', KEYS[1], math.max(window, math.ceil(delay / 1000)))
return {1, n, delay}
"""

# A success clears this source's record and takes its own reservation off the total.
# It leaves the account in `login:backoffs`: other sources may still be in backoff for it,
# and the set keeps only the latest end. The account is then over-counted at most until
# the backoff this reservation started would have ended (the owner's own: seconds).
_SUCCEED = """
redis.call('DEL', KEYS[1], KEYS[2])
if redis.call('DECR', KEYS[3]) <= 0 then redis.call('DEL', KEYS[3]) end
return 1
"""

# An attempt whose password was never checked (users unreachable) is no failure: take this
# reservation back, and the backoff it started (ARGV[1] = 1); like a success, it leaves the
# account in `login:backoffs` until then.
_RELEASE = """
if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
if redis.call('DECR', KEYS[3]) <= 0 then redis.call('DEL', KEYS[3]) end
if tonumber(ARGV[1]) == 1 then redis.call('DEL', KEYS[2]) end
return 1
"""

# Accounts whose backoff (from any source) ends after now, by Redis's clock like the scores.
_COUNT = """
local t = redis.call('TIME')
return redis.call('ZCOUNT', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000) + 1, '+inf')
"""


def backoff_seconds(failures: int, free: int, base: float, maximum: float) -> float:
    """0 until `free` failures; then base, 2*base, 4*base, ... capped at `maximum`."""
    if failures < free:
        return 0.0
    exponent = failures - free
    # Cap the exponent first: 2**huge is an OverflowError for floats.
    if exponent >= 64:
        return maximum
    return float(min(base * (2**exponent), maximum))


@dataclass(frozen=True)
class Reservation:
    allowed: bool  # False: this source is in backoff for the account; do not check
    failures: int  # attempts from this source in the window, this one included
    backoff_seconds: float  # the backoff this attempt starts if it fails (0: none)


class LoginThrottle:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        free_failures: int,
        base_seconds: float,
        max_seconds: float,
        window_seconds: int,
        account_free_failures: int = 20,
    ) -> None:
        self._prefix = prefix
        self.free_failures = free_failures
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.window_seconds = window_seconds
        self.account_free_failures = account_free_failures
        self._reserve = client.register_script(_RESERVE)
        self._succeed = client.register_script(_SUCCEED)
        self._release = client.register_script(_RELEASE)
        self._count = client.register_script(_COUNT)
        self._backoffs = f"{prefix}login:backoffs"

    def _keys(self, username: str, source: str) -> list[str]:
        # casefold: "Alice" and "alice" must not be two separate budgets. A source never
        # contains a space, so "<src> <name>" is unambiguous.
        name = username.casefold()
        p = self._prefix
        return [
            f"{p}login:fail:{source} {name}",
            f"{p}login:backoff:{source} {name}",
            f"{p}login:total:{name}",
            self._backoffs,
        ]

    def reserve(self, username: str, source: str) -> Reservation:
        """Count this attempt before the password is checked (one round trip)."""
        allowed, failures, delay_ms = self._reserve(
            keys=self._keys(username, source),
            args=[
                self.free_failures,
                self.base_seconds * 1000,
                self.max_seconds * 1000,
                self.window_seconds,
                self.account_free_failures,
                username.casefold(),
            ],
        )
        return Reservation(bool(allowed), int(failures), int(delay_ms) / 1000)

    def succeeded(self, username: str, source: str) -> None:
        self._succeed(keys=self._keys(username, source))

    def release(self, username: str, source: str, reservation: Reservation) -> None:
        """Undo `reservation`: its password was never checked (a dependency failed), so an
        outage does not push the owner into backoff."""
        started = 1 if reservation.backoff_seconds > 0 else 0
        self._release(keys=self._keys(username, source), args=[started])

    def accounts_in_backoff(self) -> int | None:
        """Accounts some source is in backoff for (one round trip, O(log n)); None when
        Redis cannot answer, so a metrics scrape goes on without the value."""
        try:
            return int(self._count(keys=[self._backoffs]))
        except redis.RedisError:
            return None
