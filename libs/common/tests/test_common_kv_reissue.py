"""A Redis that refuses the current credential (it restarted and lost Vault's ACL users)
makes the client ask for a fresh one, sync and async, instead of failing until renewal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis

from bulwark_common import kv


class Issued:
    """Stands in for Vault's DatabaseCredentials: hands out whatever was issued last."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.reissued = 0
        self.callbacks: list[object] = []

    def current(self) -> tuple[str, str]:
        return self.username, self.password

    def subscribe(self, callback: object) -> None:
        self.callbacks.append(callback)

    def reissue(self) -> None:
        self.reissued += 1


@pytest.fixture
def acl_user(redis_url: str) -> Iterator[tuple[str, str]]:
    admin = redis.Redis.from_url(redis_url)
    name, password = f"test-reissue-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.acl_setuser(name, enabled=True, passwords=[f"+{password}"], commands=["+ping"])
    yield name, password
    admin.acl_deluser(name)


def test_sync_client_asks_for_a_fresh_credential(redis_url: str, acl_user: tuple[str, str]) -> None:
    creds = Issued(acl_user[0], "not-its-password")
    client = kv.client(redis_url, credentials=creds)  # type: ignore[arg-type]
    with pytest.raises(redis.AuthenticationError):
        client.ping()
    assert creds.reissued == 1
    creds.password = acl_user[1]  # what a re-issue brings
    assert client.ping()


def test_async_client_asks_for_a_fresh_credential(
    redis_url: str, acl_user: tuple[str, str]
) -> None:
    async def scenario() -> None:
        creds = Issued(acl_user[0], "not-its-password")
        client = kv.aio_client(redis_url, credentials=creds)  # type: ignore[arg-type]
        with pytest.raises(redis.AuthenticationError):
            await client.ping()
        assert creds.reissued == 1
        creds.password = acl_user[1]
        assert await client.ping()
        await client.aclose()

    asyncio.run(scenario())
