"""A protected read costs api one Redis round trip (revocation + rate limit, pipelined) and
no call to auth. Counted on the wire: every send to Redis, every RPC to auth."""

from __future__ import annotations

from collections.abc import Callable

from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import InProcessApi, bearer, count_calls, in_process_api, sign_up


def test_protected_read_is_one_redis_round_trip(stack_factory: Callable[..., Stack]) -> None:
    with in_process_api(stack_factory().config) as api:
        _check(api)


def _check(api: InProcessApi) -> None:
    client = api.client
    token = sign_up(api.config.api_url).access_token
    created = client.post("/v1/items", json={"name": "x"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    client.get(url, headers=bearer(token))  # warm: JWKS fetched, token verified once
    api.redis_sends.clear()
    with count_calls(api.backends.auth, "GetJwks") as jwks:
        for _ in range(5):
            assert client.get(url, headers=bearer(token)).status_code == 200
    assert len(api.redis_sends) == 5, f"{len(api.redis_sends)} Redis round trips for 5 reads"
    assert jwks.call_count == 0
