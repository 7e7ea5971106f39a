"""A dependency outage is a fast 503 problem, never a hang and never a 500; and api keeps
serving what needs no dependency call (tokens are verified locally)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx
import psycopg
from psycopg import sql

from bulwark_devstack import infra
from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import bearer, sign_up, strong_password, unique_name

PROBLEM = "application/problem+json"
# The gRPC deadline (2 s) plus slack for a loaded CI machine.
FAST = 4.0


def _session(api: str) -> tuple[str, str]:
    """Register, log in and create one item; return (access token, item url)."""
    token = sign_up(api).access_token
    r = httpx.post(f"{api}/v1/items", json={"name": "x"}, headers=bearer(token))
    assert r.status_code == 201, r.text
    return token, f"{api}{r.headers['location']}"


def _timed(request: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    r = request()
    return r, time.monotonic() - start


def _assert_unavailable(r: httpx.Response, took: float) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert took < FAST, f"took {took:.1f}s"


def test_users_and_auth_outages(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    api = stack.config.api_url
    token, item_url = _session(api)

    stack.stop("users")
    _assert_unavailable(
        *_timed(lambda: httpx.get(f"{api}/v1/users/me", headers=bearer(token), timeout=10))
    )
    name = unique_name()
    body = {"username": name, "email": f"{name}@example.com", "password": strong_password()}
    _assert_unavailable(*_timed(lambda: httpx.post(f"{api}/v1/users", json=body, timeout=10)))
    # Items need neither users nor auth.
    assert httpx.get(item_url, headers=bearer(token)).status_code == 200

    stack.stop("auth")
    form = {"grant_type": "password", "username": name, "password": "whatever-12345"}
    _assert_unavailable(*_timed(lambda: httpx.post(f"{api}/v1/auth/token", data=form, timeout=10)))
    assert httpx.get(item_url, headers=bearer(token)).status_code == 200


def test_redis_and_database_outages(
    stack_factory: Callable[..., Stack], postgres_admin_url: str
) -> None:
    port = infra.free_port()
    redis_proc = subprocess.Popen(
        [infra.redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        redis_url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                infra.require_redis(redis_url)
                break
            except infra.MissingDependency:
                time.sleep(0.05)
        stack = stack_factory(redis=redis_url)
        api = stack.config.api_url
        token, item_url = _session(api)

        redis_proc.terminate()
        redis_proc.wait(10)
        _assert_unavailable(*_timed(lambda: httpx.get(item_url, headers=bearer(token), timeout=10)))
    finally:
        if redis_proc.poll() is None:
            redis_proc.kill()

    # Database: drop api's database from under it.
    stack2 = stack_factory()
    token, item_url = _session(stack2.config.api_url)
    db_name = stack2.config.database_urls["api"].rsplit("/", 1)[1]  # type: ignore[union-attr]
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db_name)))
    # The create first: its INSERT meets the pooled connection the drop killed.
    items = f"{stack2.config.api_url}/v1/items"
    r, took = _timed(
        lambda: httpx.post(items, json={"name": "y"}, headers=bearer(token), timeout=10)
    )
    _assert_unavailable(r, took)
    assert r.headers["retry-after"] == "1"
    _assert_unavailable(*_timed(lambda: httpx.get(item_url, headers=bearer(token), timeout=10)))
