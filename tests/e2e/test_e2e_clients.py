"""OAuth2 client credentials (RFC 6749 4.4) over HTTP: admins register clients, clients get
tokens with HTTP Basic or form fields, errors are RFC 6749's, deleting a client voids its
tokens within a second, and each client has its own token budget."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from bulwark_devstack.testkit import bearer, jwt_part, random_ip, until

pytestmark = pytest.mark.e2e

Register = Callable[..., Any]
Login = Callable[..., dict[str, Any]]


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def make_client(http: httpx.Client, admin_token: str) -> Iterator[Callable[..., dict[str, Any]]]:
    made: list[str] = []

    def make(scopes: list[str] | None = None, name: str = "nightly sync") -> dict[str, Any]:
        r = http.post(
            "/v1/clients",
            headers=bearer(admin_token),
            json={"name": name, "scopes": scopes or ["items:read", "items:write"]},
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        made.append(body["client_id"])
        return body

    yield make
    for client_id in made:
        http.delete(f"/v1/clients/{client_id}", headers=bearer(admin_token))


def _token(http: httpx.Client, client: dict[str, Any], **form: str) -> httpx.Response:
    return http.post(
        "/v1/auth/token",
        headers={
            **_basic(client["client_id"], client["client_secret"]),
            "X-Forwarded-For": random_ip(),
        },
        data={"grant_type": "client_credentials", **form},
    )


def test_register_list_and_delete(
    http: httpx.Client, admin_token: str, make_client: Callable[..., dict[str, Any]]
) -> None:
    client = make_client(["items:read"], name="reporting")
    assert set(client) == {"client_id", "client_secret", "name", "scopes"}
    assert client["name"] == "reporting" and client["scopes"] == ["items:read"]
    assert client["client_secret"].startswith("bwc_") and len(client["client_secret"]) == 47
    r = http.get("/v1/clients", headers=bearer(admin_token))
    assert r.status_code == 200, r.text
    listed = {c["client_id"]: c for c in r.json()["items"]}
    assert listed[client["client_id"]]["name"] == "reporting"
    assert "client_secret" not in listed[client["client_id"]]
    assert client["client_secret"] not in r.text
    r = http.delete(f"/v1/clients/{client['client_id']}", headers=bearer(admin_token))
    assert r.status_code == 204
    r = http.get("/v1/clients", headers=bearer(admin_token))
    assert client["client_id"] not in {c["client_id"] for c in r.json()["items"]}
    r = http.delete(f"/v1/clients/{client['client_id']}", headers=bearer(admin_token))
    assert r.status_code == 404


def test_only_admins_manage_clients(http: httpx.Client, register: Register, login: Login) -> None:
    acct = register()
    token = login(acct.username, acct.password)["access_token"]
    body = {"name": "mine", "scopes": ["items:read"]}
    assert http.post("/v1/clients", headers=bearer(token), json=body).status_code == 403
    assert http.get("/v1/clients", headers=bearer(token)).status_code == 403
    assert http.post("/v1/clients", json=body).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["users:admin"]},  # admin powers are for people
        {"name": "x", "scopes": ["profile:read"]},  # a client has no profile
        {"name": "x", "scopes": []},
        {"name": "", "scopes": ["items:read"]},
        {"scopes": ["items:read"]},
    ],
)
def test_registration_is_validated(
    http: httpx.Client, admin_token: str, body: dict[str, Any]
) -> None:
    r = http.post("/v1/clients", headers=bearer(admin_token), json=body)
    assert r.status_code == 422, r.text


def test_basic_auth_token_is_the_clients_own(
    http: httpx.Client, make_client: Callable[..., dict[str, Any]]
) -> None:
    client = make_client()
    r = _token(http, client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert body["scope"] == "items:read items:write"
    assert r.headers["cache-control"] == "no-store"
    claims = jwt_part(body["access_token"], 1)
    assert claims["sub"] == client["client_id"] and claims["client_id"] == client["client_id"]
    assert claims["scope"] == "items:read items:write" and not claims.get("roles")
    token = body["access_token"]
    r = http.post("/v1/items", headers=bearer(token), json={"name": "synced"})
    assert r.status_code == 201, r.text
    assert r.json()["owner_id"] == client["client_id"]
    assert http.get("/v1/users/me", headers=bearer(token)).status_code == 403
    assert (
        http.get("/v1/users/me/api-keys", headers=bearer(token)).status_code == 403
    )  # a client has no profile, so no keys


def test_form_fields_and_scope_narrowing(
    http: httpx.Client, make_client: Callable[..., dict[str, Any]]
) -> None:
    client = make_client()
    r = http.post(
        "/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scope": "items:read",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "items:read"
    token = r.json()["access_token"]
    assert http.get("/v1/items", headers=bearer(token)).status_code == 200
    assert http.post("/v1/items", headers=bearer(token), json={"name": "x"}).status_code == 403


def test_rfc6749_errors(http: httpx.Client, make_client: Callable[..., dict[str, Any]]) -> None:
    client = make_client(["items:read"])
    # invalid_client: 401 with a Basic challenge
    wrong = {**client, "client_secret": client["client_secret"][:-2] + "xx"}
    for r in (
        _token(http, wrong),
        _token(http, {**client, "client_id": "00000000-0000-4000-8000-000000000000"}),
        http.post("/v1/auth/token", data={"grant_type": "client_credentials"}),
        http.post(
            "/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": "bwc_wrong",
            },
        ),
        http.post(
            "/v1/auth/token",
            headers={"Authorization": "Basic !!!"},
            data={"grant_type": "client_credentials"},
        ),
    ):
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "invalid_client"
        assert r.headers["www-authenticate"].startswith("Basic")
    # invalid_scope: more than the client was given
    r = _token(http, client, scope="items:read items:write")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    # unauthorized_client: an authenticated client on a grant that is not for clients
    r = http.post(
        "/v1/auth/token",
        headers=_basic(client["client_id"], client["client_secret"]),
        data={"grant_type": "password", "username": "someone", "password": "x" * 12},
    )
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    # two authentication methods at once
    r = http.post(
        "/v1/auth/token",
        headers=_basic(client["client_id"], client["client_secret"]),
        data={"grant_type": "client_credentials", "client_secret": client["client_secret"]},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_deleting_a_client_voids_its_tokens_within_a_second(
    http: httpx.Client, admin_token: str, make_client: Callable[..., dict[str, Any]]
) -> None:
    client = make_client()
    token = _token(http, client).json()["access_token"]
    assert http.get("/v1/items", headers=bearer(token)).status_code == 200
    r = http.delete(f"/v1/clients/{client['client_id']}", headers=bearer(admin_token))
    assert r.status_code == 204
    assert until(lambda: http.get("/v1/items", headers=bearer(token)).status_code == 401)
    r = _token(http, client)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_each_client_has_its_own_token_budget(
    http: httpx.Client, make_client: Callable[..., dict[str, Any]]
) -> None:
    greedy, other = make_client(), make_client()
    statuses = []
    for _ in range(200):  # AUTH_CLIENT_TOKENS_PER_MINUTE is 60 by default
        r = _token(http, greedy)
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) > 0
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}, statuses
    assert _token(http, other).status_code == 200


def test_discovery_lists_the_machine_grants(http: httpx.Client) -> None:
    doc = http.get("/.well-known/openid-configuration").json()
    assert "client_credentials" in doc["grant_types_supported"]
    assert {"client_secret_basic", "client_secret_post"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
