"""A request with an API key costs api one Redis round trip (the key's cached grant, its
last use and its rate limit, in one script) and no call to users, as a JWT costs one round
trip and no call to auth. Counted on the wire: every send to Redis, every RPC to users."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import InProcessApi, bearer, count_calls, in_process_api, sign_up


def test_api_key_read_is_one_redis_round_trip(stack_factory: Callable[..., Stack]) -> None:
    with in_process_api(stack_factory().config) as api:
        _check(api)


def _check(api: InProcessApi) -> None:
    client, api_url = api.client, api.config.api_url
    token = sign_up(api_url).access_token
    r = httpx.post(
        f"{api_url}/v1/users/me/api-keys",
        headers=bearer(token),
        json={"name": "bench", "scopes": ["items:read", "items:write"], "expires_in_days": 1},
    )
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]

    created = client.post("/v1/items", json={"name": "x"}, headers=bearer(key))
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    api.redis_sends.clear()
    with count_calls(api.backends.users, "ResolveApiKey") as resolve:
        for _ in range(5):
            assert client.get(url, headers=bearer(key)).status_code == 200
        reads = len(api.redis_sends)
        # Revoked through the public door: the very next request is refused.
        r = httpx.delete(f"{api_url}/v1/users/me/api-keys/{key_id}", headers=bearer(token))
        assert r.status_code == 204
        assert client.get(url, headers=bearer(key)).status_code == 401
    assert reads == 5, f"{reads} Redis round trips for 5 reads"
    assert resolve.call_count == 0
