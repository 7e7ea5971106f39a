"""API keys over HTTP: create, list, use, revoke; scope limits; expiry; the owner disabled,
deleted or demoted. Black-box against any target (BULWARK_E2E_URL or the local stack).

Expiry without waiting for days: `expires_in_days` takes fractions, so a key made to live
3 seconds shows the real expiry check (api's clock against the key's expires_at)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bulwark_devstack.testkit import bearer, until

pytestmark = pytest.mark.e2e

Register = Callable[..., Any]
Login = Callable[..., dict[str, Any]]
KEYS = "/v1/users/me/api-keys"


def _token(register: Register, login: Login, **extra: str) -> tuple[Any, str]:
    acct = register()
    return acct, str(login(acct.username, acct.password, **extra)["access_token"])


def _create(http: httpx.Client, token: str, **body: Any) -> httpx.Response:
    payload = {"name": "ci", "scopes": ["items:read", "items:write"], "expires_in_days": 30}
    payload.update(body)
    return http.post(KEYS, headers=bearer(token), json=payload)


def _key(http: httpx.Client, token: str, **body: Any) -> dict[str, Any]:
    r = _create(http, token, **body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def test_create_list_use_and_revoke(http: httpx.Client, register: Register, login: Login) -> None:
    _, token = _token(register, login)
    before = datetime.now(UTC)
    r = _create(http, token, name="backup script")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "name", "key", "scopes", "expires_at"}
    assert body["name"] == "backup script"
    assert sorted(body["scopes"]) == ["items:read", "items:write"]
    key = body["key"]
    assert key.startswith("bwk_") and len(key) == 4 + 43  # 256 bits, base64url
    expires = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(days=30) - timedelta(minutes=1) < expires
    assert expires < before + timedelta(days=30, minutes=1)
    assert r.headers["cache-control"] == "no-store"

    # Used like an access token, on every route its scopes allow.
    r = http.post("/v1/items", headers=bearer(key), json={"name": "made by a script"})
    assert r.status_code == 201, r.text
    item = r.json()
    assert http.get(f"/v1/items/{item['id']}", headers=bearer(key)).status_code == 200
    r = http.get("/v1/items", headers=bearer(key))
    assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == [item["id"]]

    # Listed without the secret, with the last use.
    r = http.get(KEYS, headers=bearer(token))
    assert r.status_code == 200, r.text
    [listed] = r.json()["items"]
    assert listed["id"] == body["id"] and listed["name"] == "backup script"
    assert set(listed) >= {"id", "name", "scopes", "expires_at", "last_used_at"}
    assert "key" not in listed and key not in r.text and key[4:20] not in r.text
    assert listed["last_used_at"] is not None
    assert datetime.fromisoformat(listed["last_used_at"]) >= before - timedelta(seconds=5)

    # Revoked: refused from (about) the next request on.
    assert http.delete(f"{KEYS}/{body['id']}", headers=bearer(token)).status_code == 204
    assert until(lambda: http.get("/v1/items", headers=bearer(key)).status_code == 401)
    r = http.get("/v1/items", headers=bearer(key))
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"].startswith("application/problem+json")
    assert http.get(KEYS, headers=bearer(token)).json() == {"items": []}
    assert http.delete(f"{KEYS}/{body['id']}", headers=bearer(token)).status_code == 404


def test_a_key_gets_only_its_scopes(http: httpx.Client, register: Register, login: Login) -> None:
    acct, token = _token(register, login)
    key = _key(http, token, scopes=["items:read"])["key"]
    assert http.get("/v1/items", headers=bearer(key)).status_code == 200
    r = http.post("/v1/items", headers=bearer(key), json={"name": "nope"})
    assert r.status_code == 403
    assert http.get("/v1/users/me", headers=bearer(key)).status_code == 403
    profile = _key(http, token, scopes=["profile:read"])["key"]
    r = http.get("/v1/users/me", headers=bearer(profile))
    assert r.status_code == 200 and r.json()["id"] == acct.id


def test_scopes_no_wider_than_the_users(
    http: httpx.Client, register: Register, login: Login
) -> None:
    _, token = _token(register, login)
    r = _create(http, token, scopes=["items:read", "users:admin"])
    assert r.status_code == 403, r.text
    assert "users:admin" in r.json()["detail"]
    # Nor wider than the token that asks: a token narrowed at login cannot widen itself.
    _, narrow = _token(register, login, scope="profile:write items:read")
    assert _create(http, narrow, scopes=["items:write"]).status_code == 403
    assert _create(http, narrow, scopes=["items:read"]).status_code == 201
    assert http.get(KEYS, headers=bearer(token)).json() == {"items": []}


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": ["no:such-scope"]},
        {"scopes": []},
        {"expires_in_days": 0},
        {"expires_in_days": -1},
        {"expires_in_days": 366},  # capped at a year
        {"expires_in_days": "30"},
        {"name": ""},
        {"extra": True},
    ],
)
def test_bad_requests_are_422(
    http: httpx.Client, register: Register, login: Login, body: dict[str, Any]
) -> None:
    _, token = _token(register, login)
    r = _create(http, token, **body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_expiry_is_required(http: httpx.Client, register: Register, login: Login) -> None:
    _, token = _token(register, login)
    r = http.post(KEYS, headers=bearer(token), json={"name": "x", "scopes": ["items:read"]})
    assert r.status_code == 422


def test_an_expired_key_is_refused(http: httpx.Client, register: Register, login: Login) -> None:
    _, token = _token(register, login)
    body = _key(http, token, scopes=["items:read"], expires_in_days=3 / 86400)  # 3 seconds
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires <= datetime.now(UTC) + timedelta(seconds=4)
    assert http.get("/v1/items", headers=bearer(body["key"])).status_code == 200
    assert until(lambda: http.get("/v1/items", headers=bearer(body["key"])).status_code == 401, 8.0)
    assert datetime.now(UTC) >= expires - timedelta(seconds=1)
    [listed] = http.get(KEYS, headers=bearer(token)).json()["items"]  # still listed, expired
    assert listed["id"] == body["id"]


def test_a_key_cannot_make_keys(http: httpx.Client, register: Register, login: Login) -> None:
    _, token = _token(register, login)
    key = _key(http, token, scopes=["profile:read", "profile:write"])["key"]
    assert _create(http, key, scopes=["profile:read"]).status_code == 403
    assert http.get(KEYS, headers=bearer(key)).status_code == 200  # but may list them


def test_keys_are_private_to_their_owner(
    http: httpx.Client, register: Register, login: Login
) -> None:
    _, alice = _token(register, login)
    _, bob = _token(register, login)
    key = _key(http, alice)
    assert http.delete(f"{KEYS}/{key['id']}", headers=bearer(bob)).status_code == 404
    assert http.get(KEYS, headers=bearer(bob)).json() == {"items": []}
    assert http.get("/v1/items", headers=bearer(key["key"])).status_code == 200


def test_unknown_and_malformed_keys_are_401(http: httpx.Client) -> None:
    for key in ("bwk_" + "A" * 43, "bwk_", "bwk_" + "x" * 500):
        r = http.get("/v1/items", headers=bearer(key))
        assert r.status_code == 401, key
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_disabling_the_user_kills_their_keys(
    http: httpx.Client, register: Register, login: Login, admin_token: str
) -> None:
    acct, token = _token(register, login)
    key = _key(http, token)["key"]
    assert http.get("/v1/items", headers=bearer(key)).status_code == 200
    r = http.patch(f"/v1/users/{acct.id}", headers=bearer(admin_token), json={"disabled": True})
    assert r.status_code == 200, r.text
    assert until(lambda: http.get("/v1/items", headers=bearer(key)).status_code == 401)
    # Killed, not paused: enabling the account again does not bring the key back.
    r = http.patch(f"/v1/users/{acct.id}", headers=bearer(admin_token), json={"disabled": False})
    assert r.status_code == 200
    assert http.get("/v1/items", headers=bearer(key)).status_code == 401
    token = login(acct.username, acct.password)["access_token"]
    assert http.get(KEYS, headers=bearer(token)).json() == {"items": []}


def test_deleting_the_user_kills_their_keys(
    http: httpx.Client, register: Register, login: Login, admin_token: str
) -> None:
    acct, token = _token(register, login)
    key = _key(http, token)["key"]
    assert http.delete(f"/v1/users/{acct.id}", headers=bearer(admin_token)).status_code == 204
    assert until(lambda: http.get("/v1/items", headers=bearer(key)).status_code == 401)


def test_an_admin_key_follows_the_owners_role(
    http: httpx.Client, register: Register, login: Login, admin_token: str
) -> None:
    acct = register()
    r = http.patch(
        f"/v1/users/{acct.id}", headers=bearer(admin_token), json={"roles": ["admin", "user"]}
    )
    assert r.status_code == 200, r.text
    token = login(acct.username, acct.password)["access_token"]
    key = _key(http, token, scopes=["users:admin"])["key"]
    # users checks the key itself (api forwards it as the end user's credential).
    assert http.get("/v1/users?limit=1", headers=bearer(key)).status_code == 200
    r = http.patch(f"/v1/users/{acct.id}", headers=bearer(admin_token), json={"roles": ["user"]})
    assert r.status_code == 200
    assert until(lambda: http.get("/v1/users?limit=1", headers=bearer(key)).status_code == 403)
    http.delete(f"/v1/users/{acct.id}", headers=bearer(admin_token))


def test_a_password_change_keeps_the_keys(
    http: httpx.Client, register: Register, login: Login
) -> None:
    acct, token = _token(register, login)
    key = _key(http, token)["key"]
    r = http.patch(
        "/v1/users/me",
        headers=bearer(token),
        json={"password": "another long passphrase", "current_password": acct.password},
    )
    assert r.status_code == 200, r.text
    assert http.get("/v1/items", headers=bearer(key)).status_code == 200
