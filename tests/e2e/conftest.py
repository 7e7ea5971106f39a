"""e2e tests are black-box HTTP tests that run against any Bulwark:
- BULWARK_E2E_URL set (e.g. a port-forwarded kind cluster): that deployment; admin tests
  then log in as BULWARK_E2E_ADMIN_USERNAME / BULWARK_E2E_ADMIN_PASSWORD;
- otherwise a local stack of real processes started for the session.

Each test speaks from its own client address (X-Forwarded-For through a trusted proxy, as
behind an ingress), so the per-IP limits of one test do not spill into the next; the stack
under test must trust 127.0.0.1 as a proxy (the local stack and the e2e Helm values do)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bulwark_devstack.testkit import create_admin, random_ip, strong_password, unique_name


@dataclass
class Target:
    base_url: str
    admin_username: str
    admin_password: str


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    remote = os.environ.get("BULWARK_E2E_URL")
    if remote:
        user = os.environ.get("BULWARK_E2E_ADMIN_USERNAME")
        password = os.environ.get("BULWARK_E2E_ADMIN_PASSWORD")
        if not user or not password:
            pytest.fail(
                "BULWARK_E2E_URL is set: also set BULWARK_E2E_ADMIN_USERNAME and "
                "BULWARK_E2E_ADMIN_PASSWORD (README: Testing another deployment)",
                pytrace=False,
            )
        return Target(remote.rstrip("/"), user, password)
    stack = request.getfixturevalue("stack_factory")(
        env={"api": {"API_TRUSTED_PROXIES": '["127.0.0.1/32"]'}}, session=True
    )
    username, password = "e2e-admin", "admin-" + secrets.token_urlsafe(18)
    create_admin(stack, username, password)
    return Target(stack.config.api_url, username, password)


@pytest.fixture(scope="session")
def base_url(target: Target) -> str:
    return target.base_url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=base_url, timeout=10, headers={"X-Forwarded-For": random_ip()}
    ) as client:
        yield client


@dataclass
class Account:
    id: str
    username: str
    email: str
    password: str


@pytest.fixture
def register(http: httpx.Client) -> Callable[..., Account]:
    def make(**overrides: Any) -> Account:
        name = unique_name()
        body = {"username": name, "email": f"{name}@example.com", "password": strong_password()}
        body.update(overrides)
        r = http.post("/v1/users", json=body)
        assert r.status_code == 201, r.text
        return Account(r.json()["id"], body["username"], body["email"], body["password"])

    return make


@pytest.fixture
def login(http: httpx.Client) -> Callable[..., dict[str, Any]]:
    def get(username: str, password: str, **extra: str) -> dict[str, Any]:
        r = http.post(
            "/v1/auth/token",
            data={"grant_type": "password", "username": username, "password": password, **extra},
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    return get


@pytest.fixture
def admin_token(target: Target, login: Callable[..., dict[str, Any]]) -> str:
    return str(login(target.admin_username, target.admin_password)["access_token"])
