"""Login backoff: the math, and the Redis counters behind it."""

from __future__ import annotations

import time

import pytest
import redis

from bulwark_auth.bruteforce import LoginThrottle, backoff_seconds


def test_backoff_math() -> None:
    # 3 free failures, then 1, 2, 4, ... seconds, capped at 300.
    assert [backoff_seconds(n, 3, 1.0, 300) for n in range(6)] == [0, 0, 0, 1, 2, 4]
    assert backoff_seconds(11, 3, 1.0, 300) == 256
    assert backoff_seconds(12, 3, 1.0, 300) == 300
    assert backoff_seconds(10_000, 3, 1.0, 300) == 300  # no overflow, still capped
    assert backoff_seconds(1, 1, 0.5, 10) == 0.5


@pytest.fixture
def throttle(redis_url: str, redis_prefix: str) -> LoginThrottle:
    return LoginThrottle(
        redis.Redis.from_url(redis_url),
        redis_prefix,
        free_failures=2,
        base_seconds=0.2,
        max_seconds=0.4,
        window_seconds=60,
    )


def test_backoff_starts_after_free_failures_and_expires(
    throttle: LoginThrottle, redis_url: str, redis_prefix: str
) -> None:
    assert throttle.record_failure("alice").backoff_seconds == 0
    assert not throttle.in_backoff("alice")
    assert throttle.record_failure("Alice").backoff_seconds == 0.2  # case-insensitive
    assert throttle.in_backoff("alice")
    assert not throttle.in_backoff("bob")
    time.sleep(0.25)
    assert not throttle.in_backoff("alice")  # never permanent
    assert throttle.record_failure("alice").backoff_seconds == 0.4
    assert throttle.record_failure("alice").backoff_seconds == 0.4  # capped

    client = redis.Redis.from_url(redis_url)
    keys = {k.decode() for k in client.scan_iter(match=f"{redis_prefix}*")}
    assert keys == {f"{redis_prefix}login:fail:alice", f"{redis_prefix}login:backoff:alice"}
    # Every key expires.
    assert all(client.pttl(k) > 0 for k in keys)


def test_success_clears_the_counter(throttle: LoginThrottle) -> None:
    throttle.record_failure("carol")
    throttle.record_failure("carol")
    throttle.record_success("carol")
    assert not throttle.in_backoff("carol")
    assert throttle.record_failure("carol").failures == 1
