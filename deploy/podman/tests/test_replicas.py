"""Two replicas of each service (`make e2e-containers` starts the second of each on its own
ports): api's share their state through Redis and auth (revocation, per-IP limits and refresh
rotation hold across them), and the callers of auth and users spread calls over both."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bulwark_devstack.health import calls_started
from bulwark_devstack.testkit import bearer, random_ip, strong_password, unique_name, until


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    path = os.environ.get("BULWARK_CONTAINERS")
    if not path:
        pytest.fail("run these through `make e2e-containers` (it starts the pods)", pytrace=False)
    return dict(json.loads(Path(path).read_text())["ports"])


@pytest.fixture(scope="module")
def replicas(ports: dict[str, int]) -> list[str]:
    return [f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['api-2']}"]


@pytest.fixture
def clients(replicas: list[str]) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """One client per replica, both speaking from the same client address."""
    headers = {"X-Forwarded-For": random_ip()}
    with (
        httpx.Client(base_url=replicas[0], timeout=10, headers=headers) as one,
        httpx.Client(base_url=replicas[1], timeout=10, headers=headers) as two,
    ):
        yield one, two


def _tokens(http: httpx.Client) -> dict[str, str]:
    name, password = unique_name(), strong_password()
    r = http.post(
        "/v1/users", json={"username": name, "email": f"{name}@example.com", "password": password}
    )
    assert r.status_code == 201, r.text
    r = http.post(
        "/v1/auth/token", data={"grant_type": "password", "username": name, "password": password}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_revocation_through_one_replica_is_honoured_by_the_other_within_a_second(
    clients: tuple[httpx.Client, httpx.Client],
) -> None:
    one, two = clients
    token = _tokens(one)["access_token"]
    assert two.get("/v1/users/me", headers=bearer(token)).status_code == 200
    revoke = {"token": token, "token_type_hint": "access_token"}
    assert one.post("/v1/auth/revoke", data=revoke).status_code == 200
    assert until(lambda: two.get("/v1/users/me", headers=bearer(token)).status_code == 401, 1.0)


def test_per_ip_rate_limit_counts_across_replicas(
    clients: tuple[httpx.Client, httpx.Client],
) -> None:
    """The token endpoint allows 30/minute per client address: alternating replicas, the
    31st attempt is refused, which neither replica alone would do before its own 31st."""
    statuses = []
    for i in range(40):
        r = clients[i % 2].post("/v1/auth/token", data={"grant_type": "password"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert len(statuses) <= 31, f"limit reached only after {len(statuses)} calls"
    assert "ratelimit-limit" in r.headers


def test_refresh_rotated_through_one_replica_is_spent_for_the_other(
    clients: tuple[httpx.Client, httpx.Client],
) -> None:
    one, two = clients
    first = _tokens(one)["refresh_token"]
    grant = {"grant_type": "refresh_token"}
    r = one.post("/v1/auth/token", data={**grant, "refresh_token": first})
    assert r.status_code == 200, r.text
    second = r.json()["refresh_token"]
    r = two.post("/v1/auth/token", data={**grant, "refresh_token": first})
    assert r.json() == {"error": "invalid_grant"}
    # Reuse revoked the family on both replicas.
    r = one.post("/v1/auth/token", data={**grant, "refresh_token": second})
    assert r.json() == {"error": "invalid_grant"}


GRPC_REPLICAS = ("auth", "auth-2", "users", "users-2")


def test_each_replica_of_auth_and_users_serves_calls(
    replicas: list[str], ports: dict[str, int]
) -> None:
    """Logins (api -> auth -> users) and profile reads (api -> users) through both api
    replicas: each auth and users replica takes a fair share, counted by its own gRPC
    server (channelz on its health-only port)."""

    def served() -> dict[str, int]:
        return {
            r: calls_started(f"127.0.0.1:{ports[f'{r}-health']}", ports[r]) for r in GRPC_REPLICAS
        }

    name, password = unique_name(), strong_password()
    with httpx.Client(base_url=replicas[0], timeout=10) as http:
        r = http.post(
            "/v1/users",
            json={"username": name, "email": f"{name}@example.com", "password": password},
            headers={"X-Forwarded-For": random_ip()},
        )
        assert r.status_code == 201, r.text
    before = served()
    for i in range(20):
        with httpx.Client(base_url=replicas[i % 2], timeout=10) as http:
            http.headers["X-Forwarded-For"] = random_ip()  # the token limit is per address
            r = http.post(
                "/v1/auth/token",
                data={"grant_type": "password", "username": name, "password": password},
            )
            assert r.status_code == 200, r.text
            me = http.get("/v1/users/me", headers=bearer(r.json()["access_token"]))
            assert me.status_code == 200, me.text
    after = served()
    took = {r: after[r] - before[r] for r in GRPC_REPLICAS}
    print(f"calls served per replica: {took}")
    for svc in ("auth", "users"):
        pair = (took[svc], took[f"{svc}-2"])
        assert sum(pair) >= 20, took
        # round_robin: about half each; pick_first (gRPC's default) would give one nothing.
        assert min(pair) >= sum(pair) / 4, took
