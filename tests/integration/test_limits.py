"""Rate limits at their configured values: per user when authenticated, per client IP on the
anonymous doors, and X-Forwarded-For is ignored unless the peer is a trusted proxy."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import bearer, random_ip, sign_up, strong_password, unique_name


def test_default_register_limit_cannot_be_dodged_with_forwarded_for(
    stack_factory: Callable[..., Stack],
) -> None:
    api = stack_factory().config.api_url
    codes = []
    for _ in range(11):  # API_REGISTER_RATE defaults to 10/minute; no proxy is trusted
        name = unique_name()
        r = httpx.post(
            f"{api}/v1/users",
            json={"username": name, "email": f"{name}@example.com", "password": strong_password()},
            headers={"X-Forwarded-For": random_ip()},
        )
        codes.append(r.status_code)
    assert codes[:10] == [201] * 10
    assert codes[10] == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["ratelimit-remaining"] == "0"


def test_per_user_limit(stack_factory: Callable[..., Stack]) -> None:
    api = stack_factory(env={"api": {"API_USER_RATE": "5/minute"}}).config.api_url
    token = sign_up(api).access_token
    codes = [httpx.get(f"{api}/v1/items", headers=bearer(token)).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    r = httpx.get(f"{api}/v1/items", headers=bearer(token))
    assert r.status_code == 429
    assert r.headers["ratelimit-limit"] == "5"
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["content-type"].startswith("application/problem+json")
