"""A running stack seen from outside, for the attack suite: register, log in, speak from a
chosen client address (through a proxy the stack trusts), and read the services' JSON logs."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import create_admin, random_ip, strong_password, unique_name

TRUST_LOCAL_PROXY = {"API_TRUSTED_PROXIES": '["127.0.0.1/32"]'}


@dataclass
class User:
    id: str
    username: str
    email: str
    password: str


@dataclass
class Attackable:
    stack: Stack
    admin: User

    @property
    def url(self) -> str:
        return self.stack.config.api_url

    def client(self, ip: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=20, headers={"X-Forwarded-For": ip or random_ip()}
        )

    def register(self, http: httpx.Client | None = None) -> User:
        name, password = unique_name(), strong_password()
        body = {"username": name, "email": f"{name}@example.com", "password": password}
        with self.client() as own:
            r = (http or own).post("/v1/users", json=body)
        assert r.status_code == 201, r.text
        return User(r.json()["id"], name, body["email"], password)

    def login(self, user: User, http: httpx.Client | None = None, **form: str) -> dict[str, Any]:
        data = {"grant_type": "password", "username": user.username, "password": user.password}
        with self.client() as own:
            r = (http or own).post("/v1/auth/token", data={**data, **form})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def log_records(self, service: str) -> list[dict[str, Any]]:
        return read_log(self.stack, service)


def read_log(stack: Stack, service: str) -> list[dict[str, Any]]:
    assert stack.config.log_dir is not None
    path: Path = stack.config.log_dir / f"{service}.log"
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append({"raw": line})
    return records


def start_attackable(
    factory: Callable[..., Stack], env: dict[str, dict[str, str]], *, session: bool = False
) -> Attackable:
    merged = {**env, "api": {**TRUST_LOCAL_PROXY, **env.get("api", {})}}
    stack = factory(env=merged, session=session)
    name, password = unique_name("admin"), "admin-" + secrets.token_urlsafe(18)
    create_admin(stack, name, password)
    return Attackable(stack, User("", name, f"{name}@example.com", password))


@contextmanager
def module_stack(
    factory: Callable[..., Stack], env: dict[str, dict[str, str]]
) -> Iterator[Attackable]:
    """A stack of its own for a module's fixture, stopped when the module is done."""
    target = start_attackable(factory, env)
    try:
        yield target
    finally:
        target.stack.stop_all()
