"""Per-account login throttling in Redis: a few free failures, then exponential backoff.

Keys (all under the deployment's redis_prefix):
- `login:fail:<username>` counts failures; it expires `failure_window_seconds` after the
  last failure (or after the backoff, if longer), so nothing is ever permanent;
- `login:backoff:<username>` exists while the account is in backoff. Attempts meanwhile are
  refused before the password is checked, so guessing gets no faster by hammering."""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis


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
class Standing:
    in_backoff: bool
    has_failures: bool  # something for a successful login to clear


@dataclass(frozen=True)
class Failure:
    failures: int
    backoff_seconds: float  # 0 when this failure did not start a backoff


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
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self.free_failures = free_failures
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.window_seconds = window_seconds

    def _keys(self, username: str) -> tuple[str, str]:
        # casefold: "Alice" and "alice" must not be two separate budgets.
        name = username.casefold()
        return f"{self._prefix}login:fail:{name}", f"{self._prefix}login:backoff:{name}"

    def in_backoff(self, username: str) -> bool:
        _, backoff_key = self._keys(username)
        return bool(self._redis.exists(backoff_key))

    def standing(self, username: str) -> Standing:
        """Backoff and failure count in one round trip, so a login with no failures on
        record needs no second one to clear them (`record_success` only when this says so).
        A failure recorded while that login is being checked then stays counted: stricter,
        never looser."""
        failures, backoff = self._redis.mget(self._keys(username))
        return Standing(
            in_backoff=backoff is not None,
            has_failures=failures is not None or backoff is not None,
        )

    def record_failure(self, username: str) -> Failure:
        fail_key, backoff_key = self._keys(username)
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(fail_key)
        pipe.expire(fail_key, self.window_seconds)
        failures = int(pipe.execute()[0])
        delay = backoff_seconds(failures, self.free_failures, self.base_seconds, self.max_seconds)
        if delay > 0:
            ms = max(1, math.ceil(delay * 1000))
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(backoff_key, str(failures), px=ms)
            # Keep the count at least as long as the backoff, so the next step doubles.
            pipe.expire(fail_key, max(self.window_seconds, math.ceil(delay)))
            pipe.execute()
        return Failure(failures=failures, backoff_seconds=delay)

    def record_success(self, username: str) -> None:
        self._redis.delete(*self._keys(username))
