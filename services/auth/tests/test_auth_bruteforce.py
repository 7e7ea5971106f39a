"""Login backoff: the math, and the Redis reservation script behind it."""

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


def make(redis_url: str, prefix: str, **overrides: float) -> LoginThrottle:
    values: dict[str, float] = {
        "free_failures": 2,
        "base_seconds": 30.0,  # long: no assertion below races a backoff's end
        "max_seconds": 60.0,
        "window_seconds": 600,
        "account_free_failures": 20,
    }
    values.update(overrides)
    return LoginThrottle(
        redis.Redis.from_url(redis_url),
        prefix,
        free_failures=int(values["free_failures"]),
        base_seconds=values["base_seconds"],
        max_seconds=values["max_seconds"],
        window_seconds=int(values["window_seconds"]),
        account_free_failures=int(values["account_free_failures"]),
    )


@pytest.fixture
def throttle(redis_url: str, redis_prefix: str) -> LoginThrottle:
    return make(redis_url, redis_prefix)


def test_script_follows_the_backoff_math(redis_url: str, redis_prefix: str) -> None:
    t = make(redis_url, redis_prefix, free_failures=3, base_seconds=0.001, max_seconds=0.008)
    seen = []
    for n in range(1, 8):
        deadline = time.monotonic() + 5
        while not (r := t.reserve("dora", "192.0.2.1")).allowed:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert r.failures == n
        seen.append(r.backoff_seconds)
    assert seen == [backoff_seconds(n, 3, 0.001, 0.008) for n in range(1, 8)]


def test_backoff_is_per_account_and_source_and_keys_expire(
    throttle: LoginThrottle, redis_url: str, redis_prefix: str
) -> None:
    assert throttle.reserve("alice", "192.0.2.1").backoff_seconds == 0
    assert throttle.reserve("Alice", "192.0.2.1").backoff_seconds == 30  # case-insensitive
    assert not throttle.reserve("alice", "192.0.2.1").allowed
    assert throttle.reserve("alice", "192.0.2.2").allowed  # another source: its own budget
    assert throttle.reserve("bob", "192.0.2.1").allowed

    client = redis.Redis.from_url(redis_url)
    keys = {k.decode() for k in client.scan_iter(match=f"{redis_prefix}*")}
    assert f"{redis_prefix}login:backoff:192.0.2.1 alice" in keys
    assert f"{redis_prefix}login:total:alice" in keys
    assert all(client.pttl(k) > 0 for k in keys)  # nothing is permanent


def test_account_under_attack_leaves_each_source_one_free_try(
    redis_url: str, redis_prefix: str
) -> None:
    t = make(redis_url, redis_prefix, free_failures=3, account_free_failures=5)
    for i in range(5):
        assert t.reserve("erin", f"198.18.0.{i}").backoff_seconds == 0
    fresh = t.reserve("erin", "192.0.2.9")
    assert fresh.allowed  # a fresh source still gets its first try...
    assert fresh.backoff_seconds == 30  # ...and only one while the account is under attack
    assert not t.reserve("erin", "192.0.2.9").allowed


def test_success_clears_the_source(throttle: LoginThrottle) -> None:
    throttle.reserve("carol", "192.0.2.1")
    throttle.reserve("carol", "192.0.2.1")
    throttle.succeeded("carol", "192.0.2.1")
    r = throttle.reserve("carol", "192.0.2.1")
    assert r.allowed and r.failures == 1


def test_an_unchecked_attempt_is_released(
    throttle: LoginThrottle, redis_url: str, redis_prefix: str
) -> None:
    """users was unreachable: the password was never checked, so the attempt (and the
    backoff it started) is taken back; the owner is not in backoff after an outage."""
    for _ in range(5):  # free_failures=2: the second reservation starts a backoff
        r = throttle.reserve("dave", "192.0.2.1")
        assert r.allowed
        throttle.release("dave", "192.0.2.1", r)
    r = throttle.reserve("dave", "192.0.2.1")
    assert r.allowed and r.failures == 1 and r.backoff_seconds == 0
    throttle.release("dave", "192.0.2.1", r)
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match=f"{redis_prefix}login:*dave"))
    # A checked failure still counts.
    throttle.reserve("dave", "192.0.2.1")
    assert throttle.reserve("dave", "192.0.2.1").backoff_seconds == 30
