"""Login backoff: the math, the Redis reservation script behind it, and the accounts-in-
backoff gauge read from Redis when /metrics is scraped."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from bulwark_auth.bruteforce import LoginThrottle, backoff_seconds
from bulwark_common import metrics
from bulwark_devstack import infra
from bulwark_devstack.scrape import names, scrape, value

GAUGE = "bulwark_auth_accounts_in_backoff"


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


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def exporter() -> Iterator[str]:
    """The /metrics server `bulwark-auth serve` runs, on a free port; the URL to scrape."""
    server = metrics.serve("127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    metrics.track_accounts_in_backoff(None)
    server.shutdown()
    server.server_close()


def test_gauge_counts_accounts_in_backoff_until_the_last_source_s_ends(
    redis_url: str, redis_prefix: str, exporter: str
) -> None:
    # free_failures=2: a source's second failure starts its backoff. Two throttles on one
    # prefix: the same account gets a long backoff from one source, a short one from another.
    long = make(redis_url, redis_prefix, base_seconds=1.5, max_seconds=1.5)
    short = make(redis_url, redis_prefix, base_seconds=0.2, max_seconds=0.2)
    metrics.track_accounts_in_backoff(long.accounts_in_backoff)
    assert value(scrape(exporter), GAUGE) == 0 and GAUGE in names(scrape(exporter))
    for _ in range(2):
        long.reserve("ann", "192.0.2.1")
        long.reserve("ben", "192.0.2.1")
        short.reserve("Ann", "192.0.2.2")  # the same account (case-insensitive)
    long.reserve("cy", "192.0.2.1")  # one failure: no backoff
    long.reserve("ann", "192.0.2.3")  # the owner, elsewhere: success ends only that source's
    long.succeeded("ann", "192.0.2.3")
    text = scrape(exporter)
    assert value(text, GAUGE) == 2
    done = subprocess.run(
        [infra.promtool(), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr

    client = redis.Redis.from_url(redis_url)
    backoff = f"{redis_prefix}login:backoff:192.0.2."
    wait_until(lambda: not client.exists(f"{backoff}2 ann"))
    counted = value(scrape(exporter), GAUGE)
    # Read after the scrape: the long backoffs were still on when it counted.
    assert client.exists(f"{backoff}1 ann", f"{backoff}1 ben") == 2, "too slow for 1.3 s margin"
    assert counted == 2  # ann stays counted while any source's backoff lasts

    wait_until(lambda: value(scrape(exporter), GAUGE) == 0)
    assert not list(client.scan_iter(match=f"{redis_prefix}login:backoff:*"))
    # The set expires with its longest backoff: nothing is left behind.
    wait_until(lambda: not client.exists(f"{redis_prefix}login:backoffs"))


def test_the_set_keeps_only_accounts_whose_backoff_has_not_ended(
    redis_url: str, redis_prefix: str
) -> None:
    """Ended backoffs are dropped when the next one starts, and the set always expires with
    its longest backoff, so an attack cannot make it outgrow the accounts in backoff."""
    short = make(redis_url, redis_prefix, free_failures=1, base_seconds=0.3, max_seconds=0.3)
    long = make(redis_url, redis_prefix, free_failures=1, base_seconds=30, max_seconds=30)
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_prefix}login:backoffs"
    short.reserve("dora", "192.0.2.1")
    assert 0 < client.pttl(key) <= 300
    long.reserve("finn", "192.0.2.1")
    assert client.pttl(key) > 29_000  # as long as its longest member
    wait_until(lambda: short.accounts_in_backoff() == 1)  # dora's has ended
    short.reserve("erin", "192.0.2.1")
    assert client.pttl(key) > 29_000  # a shorter backoff does not shorten it
    assert set(client.zrange(key, 0, -1)) == {b"finn", b"erin"}  # dora dropped


def test_scrape_succeeds_without_the_gauge_when_redis_is_down(exporter: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        down = make(f"redis://127.0.0.1:{sock.getsockname()[1]}/0", "test:down:")
        metrics.track_accounts_in_backoff(down.accounts_in_backoff)
        r = httpx.get(exporter, timeout=10)
    assert r.status_code == 200
    assert GAUGE not in names(r.text)  # absent, not a made-up 0
    assert "bulwark_auth_logins" in names(r.text)  # the rest of the exposition is there
