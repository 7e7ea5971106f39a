"""A request with an API key costs api one Redis round trip (the key's cached grant, its
last use and its rate limit, in one script) and no call to users, as a JWT costs one round
trip and no call to auth. Counted on the wire: every send to Redis, every RPC to users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from redis.asyncio.connection import Connection

from bulwark_api.app import create_app
from bulwark_api.settings import ApiSettings
from bulwark_common.runtime import Runtime
from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import bearer, sign_up


def test_api_key_read_is_one_redis_round_trip(
    stack_factory: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = stack_factory()
    cfg = stack.config
    for name, value in cfg.environment("api").items():
        monkeypatch.setenv(name, value)
    settings = ApiSettings()
    runtime = Runtime.start(settings, service="api", program="test", database_url=None)
    token = sign_up(cfg.api_url).access_token
    r = httpx.post(
        f"{cfg.api_url}/v1/users/me/api-keys",
        headers=bearer(token),
        json={"name": "bench", "scopes": ["items:read", "items:write"], "expires_in_days": 1},
    )
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]

    sends: list[int] = []
    original = Connection.send_packed_command

    async def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        packed = b"".join(command) if isinstance(command, list) else bytes(command)
        # Not the user-events consumer, which polls the stream in the background.
        if not any(c in packed for c in (b"XREADGROUP", b"XAUTOCLAIM", b"XGROUP", b"XACK")):
            sends.append(1)
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)

    with TestClient(create_app(settings, runtime)) as client:
        created = client.post("/v1/items", json={"name": "x"}, headers=bearer(key))
        assert created.status_code == 201, created.text
        url = created.headers["location"]
        backends = client.app.state.backends  # type: ignore[attr-defined]
        users_calls: list[str] = []
        real_resolve = backends.users.ResolveApiKey

        def spy(*a: Any, **kw: Any) -> Any:
            users_calls.append("ResolveApiKey")
            return real_resolve(*a, **kw)

        backends.users.ResolveApiKey = spy
        sends.clear()
        for _ in range(5):
            assert client.get(url, headers=bearer(key)).status_code == 200
        reads = len(sends)
        # Revoked through the public door: the very next request is refused.
        r = httpx.delete(f"{cfg.api_url}/v1/users/me/api-keys/{key_id}", headers=bearer(token))
        assert r.status_code == 204
        assert client.get(url, headers=bearer(key)).status_code == 401
    runtime.close()
    assert reads == 5, f"{reads} Redis round trips for 5 reads"
    assert users_calls == []
