"""A protected read costs api one Redis round trip (revocation + rate limit, pipelined) and
no call to auth. Counted on the wire: every send to Redis, every RPC to auth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis.asyncio.connection import Connection

from bulwark_api.app import create_app
from bulwark_api.settings import ApiSettings
from bulwark_common.runtime import Runtime
from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import bearer, sign_up

CONSUMER_COMMANDS = (b"XREADGROUP", b"XAUTOCLAIM", b"XGROUP", b"XACK")


def test_protected_read_is_one_redis_round_trip(
    stack_factory: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = stack_factory()
    cfg = stack.config
    # An in-process api with the stack's own api identity: same Vault login, mTLS, limits.
    for name, value in cfg.environment("api").items():
        monkeypatch.setenv(name, value)
    settings = ApiSettings()
    runtime = Runtime.start(settings, service="api", program="test", database_url=None)
    token = sign_up(cfg.api_url).access_token

    sends: list[int] = []
    original = Connection.send_packed_command

    async def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        packed = command if isinstance(command, bytes) else b"".join(command)
        # Not the user-events consumer's polls (a background task; on a slow machine one of
        # its cycles can fall inside the five reads).
        if not any(name in packed for name in CONSUMER_COMMANDS):
            sends.append(1)
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)

    with TestClient(create_app(settings, runtime)) as client:
        created = client.post("/v1/items", json={"name": "x"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        url = created.headers["location"]
        client.get(url, headers=bearer(token))  # warm: JWKS fetched, token verified once
        auth_calls: list[str] = []
        backends = client.app.state.backends  # type: ignore[attr-defined]
        real_jwks = backends.auth.GetJwks

        def spy(*a: Any, **kw: Any) -> Any:
            auth_calls.append("GetJwks")
            return real_jwks(*a, **kw)

        backends.auth.GetJwks = spy
        sends.clear()
        for _ in range(5):
            assert client.get(url, headers=bearer(token)).status_code == 200
    runtime.close()
    assert len(sends) == 5, f"{len(sends)} Redis round trips for 5 reads"
    assert auth_calls == []
