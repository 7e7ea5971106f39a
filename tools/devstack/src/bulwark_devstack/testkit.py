"""Small helpers the e2e tests and the benchmarks share."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import httpx

from bulwark_devstack.infra import venv_script
from bulwark_devstack.stack import Stack, StackConfig


def random_ip() -> str:
    """A client address for X-Forwarded-For, so per-IP limits stay per test."""
    b = secrets.token_bytes(3)
    return f"10.{b[0]}.{b[1]}.{max(1, b[2])}"


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def strong_password() -> str:
    return "pw-" + secrets.token_urlsafe(16)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_part(token: str, index: int) -> dict[str, Any]:
    """A JWT's header (0) or claims (1), decoded without any check of the signature."""
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def until(predicate: Callable[[], bool], timeout: float = 1.0) -> bool:
    """Whether `predicate` comes true within `timeout` (polled): for changes the suite
    promises to apply within a bound, such as a revocation reaching every replica."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@dataclass(frozen=True)
class Session:
    user_id: str
    username: str
    password: str
    access_token: str
    refresh_token: str


def sign_up(api_url: str, **form: str) -> Session:
    """Register a fresh account through api and log it in (password grant)."""
    name, password = unique_name(), strong_password()
    r = httpx.post(
        f"{api_url}/v1/users",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    r.raise_for_status()
    user_id = str(r.json()["id"])
    t = httpx.post(
        f"{api_url}/v1/auth/token",
        data={"grant_type": "password", "username": name, "password": password, **form},
    )
    t.raise_for_status()
    body = t.json()
    return Session(user_id, name, password, body["access_token"], body["refresh_token"])


def create_admin(stack: Stack, username: str, password: str) -> None:
    """`bulwark-users create-admin` on the stack's users database, the password on stdin."""
    subprocess.run(
        [
            venv_script("bulwark-users"),
            "create-admin",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
        ],
        input=password + "\n",
        text=True,
        check=True,
        capture_output=True,
        env=stack.config.environment("users"),
    )


# The user-events consumer polls its stream in the background: its commands are not a
# request's round trips.
CONSUMER_COMMANDS = (b"XREADGROUP", b"XAUTOCLAIM", b"XGROUP", b"XACK")


@dataclass
class InProcessApi:
    """api in this process with a running stack's own api identity (same Vault login, mTLS,
    limits), and every command it sends to Redis, counted on the wire."""

    client: Any  # fastapi.testclient.TestClient, lifespan started
    config: StackConfig
    redis_sends: list[bytes]

    @property
    def backends(self) -> Any:
        return self.client.app.state.backends


@contextlib.contextmanager
def count_calls(stub: Any, name: str) -> Iterator[mock.MagicMock]:
    """Count the calls of one stub method inside the block (`.call_count`); each call still
    goes to the real method, which is put back on exit."""
    with mock.patch.object(stub, name, wraps=getattr(stub, name)) as spy:
        yield spy


@contextlib.contextmanager
def in_process_api(config: StackConfig) -> Iterator[InProcessApi]:
    from fastapi.testclient import TestClient
    from redis.asyncio.connection import Connection

    from bulwark_api.app import create_app
    from bulwark_api.settings import ApiSettings
    from bulwark_common.runtime import Runtime

    sends: list[bytes] = []
    original = Connection.send_packed_command

    async def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        packed = b"".join(command) if isinstance(command, list) else bytes(command)
        if not any(name in packed for name in CONSUMER_COMMANDS):
            sends.append(packed)
        await original(self, command, check_health)

    with (
        mock.patch.dict(os.environ, config.environment("api")),
        mock.patch.object(Connection, "send_packed_command", counting),
    ):
        settings = ApiSettings()
        runtime = Runtime.start(settings, service="api", program="test", database_url=None)
        try:
            with TestClient(create_app(settings, runtime)) as client:
                yield InProcessApi(client, config, sends)
        finally:
            runtime.close()
