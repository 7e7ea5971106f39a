"""The identity contract over HTTP: registration, tokens, refresh rotation, revocation,
self-service and admin operations."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from bulwark_devstack.testkit import (
    bearer,
    jwt_part,
    random_ip,
    strong_password,
    unique_name,
    until,
)

pytestmark = pytest.mark.e2e

Register = Callable[..., Any]
Login = Callable[..., dict[str, Any]]
PROBLEM = "application/problem+json"


# --- registration -------------------------------------------------------------------------


def test_register_returns_the_user_without_secrets(http: httpx.Client) -> None:
    name = unique_name("Reg.")
    r = http.post(
        "/v1/users",
        json={"username": name, "email": f"{name}@Example.com", "password": strong_password()},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "username", "email", "roles", "disabled", "created_at"}
    assert body["username"] == name.lower()
    assert body["roles"] == ["user"]
    assert body["disabled"] is False
    assert r.headers["location"].endswith(body["id"])
    assert "password" not in r.text and "argon2" not in r.text


def test_register_conflicts_on_taken_username_and_email(
    http: httpx.Client, register: Register
) -> None:
    acct = register()
    r = http.post(
        "/v1/users",
        json={"username": acct.username, "email": "x" + acct.email, "password": strong_password()},
    )
    assert r.status_code == 409
    assert r.headers["content-type"].startswith(PROBLEM)
    r = http.post(
        "/v1/users",
        json={"username": unique_name(), "email": acct.email, "password": strong_password()},
    )
    assert r.status_code == 409


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "Tiny-Pw1"),
        ("password", "x" * 129),
        ("password", "password1234"),  # in the bundled common-password list
        ("username", "ab"),
        ("username", "has space"),
        ("username", "x" * 33),
        ("email", "not-an-email"),
    ],
)
def test_register_rejects_invalid_fields(http: httpx.Client, field: str, value: str) -> None:
    name = unique_name()
    body = {"username": name, "email": f"{name}@example.com", "password": strong_password()}
    body[field] = value
    r = http.post("/v1/users", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert value not in r.text or field != "password"


def test_register_rejects_unknown_fields(http: httpx.Client) -> None:
    name = unique_name()
    r = http.post(
        "/v1/users",
        json={
            "username": name,
            "email": f"{name}@example.com",
            "password": strong_password(),
            "roles": ["admin"],
        },
    )
    assert r.status_code == 422


def test_register_is_rate_limited_per_ip(http: httpx.Client) -> None:
    statuses = []
    for _ in range(60):
        name = unique_name()
        r = http.post(
            "/v1/users",
            json={"username": name, "email": f"{name}@example.com", "password": "short"},
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["content-type"].startswith(PROBLEM)


# --- password grant -----------------------------------------------------------------------


def test_password_grant_issues_es256_access_token(
    http: httpx.Client, register: Register, base_url: str
) -> None:
    acct = register()
    r = http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": acct.username, "password": acct.password},
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0 and body["refresh_token"]
    assert set(body["scope"].split()) == {
        "items:read",
        "items:write",
        "profile:read",
        "profile:write",
    }
    header = jwt_part(body["access_token"], 0)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt" and header["kid"]
    claims = jwt_part(body["access_token"], 1)
    for claim in ("iss", "sub", "aud", "exp", "iat", "jti", "scope", "roles"):
        assert claim in claims
    assert claims["sub"] == acct.id
    assert claims["roles"] == ["user"]
    assert claims["exp"] - claims["iat"] == pytest.approx(body["expires_in"], abs=2)
    jwks = http.get("/.well-known/jwks.json").json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}


def test_scope_can_be_narrowed_not_widened(
    http: httpx.Client, register: Register, login: Login
) -> None:
    acct = register()
    assert login(acct.username, acct.password, scope="items:read")["scope"] == "items:read"
    r = http.post(
        "/v1/auth/token",
        data={
            "grant_type": "password",
            "username": acct.username,
            "password": acct.password,
            "scope": "users:admin",
        },
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "password", "username": "someone"}, "invalid_request"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "invalid_client"),  # no client authentication
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
    ],
)
def test_token_endpoint_oauth_errors(http: httpx.Client, data: dict[str, str], error: str) -> None:
    r = http.post("/v1/auth/token", data=data)
    assert r.status_code == (401 if error == "invalid_client" else 400), r.text
    assert r.json()["error"] == error
    assert r.headers["cache-control"] == "no-store"


def test_bad_credentials_are_indistinguishable(http: httpx.Client, register: Register) -> None:
    acct = register()
    wrong = http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": acct.username, "password": "wrong-" * 3},
    )
    unknown = http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": unique_name(), "password": "wrong-" * 3},
    )
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json() == {"error": "invalid_grant"}


def test_repeated_failures_back_off_with_the_same_answer(
    http: httpx.Client, register: Register
) -> None:
    acct = register()
    for _ in range(6):
        r = http.post(
            "/v1/auth/token",
            data={"grant_type": "password", "username": acct.username, "password": "wrong-" * 3},
        )
        assert r.json() == {"error": "invalid_grant"}
    # During the backoff even the right password gets the same answer.
    r = http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": acct.username, "password": acct.password},
    )
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant"}


def test_token_endpoint_is_rate_limited_per_ip(http: httpx.Client) -> None:
    r = None
    for _ in range(200):
        r = http.post("/v1/auth/token", data={"grant_type": "password"})
        if r.status_code == 429:
            break
    assert r is not None and r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert "ratelimit-limit" in r.headers


# --- refresh rotation -------------------------------------------------------------------


def _refresh(http: httpx.Client, token: str) -> httpx.Response:
    return http.post("/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": token})


def test_refresh_rotates_and_reuse_revokes_the_family(
    http: httpx.Client, register: Register, login: Login
) -> None:
    acct = register()
    first = login(acct.username, acct.password)
    r = _refresh(http, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # The old one again: reuse. It fails, and so does its descendant.
    assert _refresh(http, first["refresh_token"]).json() == {"error": "invalid_grant"}
    assert _refresh(http, second["refresh_token"]).json() == {"error": "invalid_grant"}


def test_concurrent_refreshes_of_one_token_let_exactly_one_win(
    base_url: str, register: Register, login: Login
) -> None:
    acct = register()
    token = login(acct.username, acct.password)["refresh_token"]

    def attempt(_: int) -> int:
        with httpx.Client(base_url=base_url, headers={"X-Forwarded-For": random_ip()}) as c:
            return _refresh(c, token).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(attempt, range(8)))
    assert codes.count(200) == 1, codes
    assert codes.count(400) == 7, codes


# --- revocation ---------------------------------------------------------------------------


def test_revoked_access_token_stops_working_within_a_second(
    http: httpx.Client, register: Register, login: Login
) -> None:
    acct = register()
    token = login(acct.username, acct.password)["access_token"]
    assert http.get("/v1/users/me", headers=bearer(token)).status_code == 200
    r = http.post("/v1/auth/revoke", data={"token": token, "token_type_hint": "access_token"})
    assert r.status_code == 200
    assert until(lambda: http.get("/v1/users/me", headers=bearer(token)).status_code == 401)


def test_revoking_a_refresh_token_ends_its_family(
    http: httpx.Client, register: Register, login: Login
) -> None:
    acct = register()
    tokens = login(acct.username, acct.password)
    assert http.post("/v1/auth/revoke", data={"token": tokens["refresh_token"]}).status_code == 200
    assert _refresh(http, tokens["refresh_token"]).json() == {"error": "invalid_grant"}


def test_revoke_answers_200_for_unknown_tokens(http: httpx.Client) -> None:
    assert http.post("/v1/auth/revoke", data={"token": "not-a-token"}).status_code == 200


# --- discovery ----------------------------------------------------------------------------


def test_discovery_documents(http: httpx.Client) -> None:
    jwks = http.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    for key in jwks.json()["keys"]:
        assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256"
        assert "d" not in key
    meta = http.get("/.well-known/openid-configuration").json()
    assert meta["jwks_uri"].endswith("/.well-known/jwks.json")
    assert meta["token_endpoint"].endswith("/v1/auth/token")
    assert meta["revocation_endpoint"].endswith("/v1/auth/revoke")


# --- self-service -------------------------------------------------------------------------


def test_me_requires_a_bearer_token(http: httpx.Client) -> None:
    r = http.get("/v1/users/me")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"].startswith(PROBLEM)
    r = http.get("/v1/users/me", headers=bearer("garbage.token.here"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_me_read_and_change_email(http: httpx.Client, register: Register, login: Login) -> None:
    acct = register()
    token = login(acct.username, acct.password)["access_token"]
    me = http.get("/v1/users/me", headers=bearer(token))
    assert me.status_code == 200 and me.json()["id"] == acct.id
    new_email = f"new-{acct.username}@example.com"
    r = http.patch("/v1/users/me", headers=bearer(token), json={"email": new_email})
    assert r.status_code == 422  # the email is the recovery channel: current_password too
    r = http.patch(
        "/v1/users/me",
        headers=bearer(token),
        json={"email": new_email, "current_password": acct.password},
    )
    assert r.status_code == 200 and r.json()["email"] == new_email
    r = http.patch("/v1/users/me", headers=bearer(token), json={"roles": ["admin"]})
    assert r.status_code == 422


def test_password_change_needs_current_and_revokes_old_tokens(
    http: httpx.Client, register: Register, login: Login
) -> None:
    acct = register()
    tokens = login(acct.username, acct.password)
    auth = bearer(tokens["access_token"])
    new = strong_password()
    r = http.patch("/v1/users/me", headers=auth, json={"password": new})
    assert r.status_code == 422
    r = http.patch(
        "/v1/users/me", headers=auth, json={"password": new, "current_password": "wrong-" * 3}
    )
    assert r.status_code == 422
    r = http.patch(
        "/v1/users/me", headers=auth, json={"password": new, "current_password": acct.password}
    )
    assert r.status_code == 200, r.text
    assert until(lambda: http.get("/v1/users/me", headers=auth).status_code == 401)
    assert _refresh(http, tokens["refresh_token"]).json() == {"error": "invalid_grant"}
    fresh = login(acct.username, new)["access_token"]
    assert http.get("/v1/users/me", headers=bearer(fresh)).status_code == 200


# --- admin --------------------------------------------------------------------------------


def test_admin_routes_refuse_non_admins(
    http: httpx.Client, register: Register, login: Login
) -> None:
    acct = register()
    auth = bearer(login(acct.username, acct.password)["access_token"])
    assert http.get("/v1/users", headers=auth).status_code == 403
    assert http.get(f"/v1/users/{acct.id}", headers=auth).status_code == 403
    assert (
        http.patch(f"/v1/users/{acct.id}", headers=auth, json={"roles": ["admin"]}).status_code
        == 403
    )
    assert http.delete(f"/v1/users/{acct.id}", headers=auth).status_code == 403
    assert http.get("/v1/users").status_code == 401


def test_admin_lists_pages_of_users(
    http: httpx.Client, register: Register, admin_token: str
) -> None:
    register()
    register()
    r = http.get("/v1/users", params={"limit": 1, "offset": 0}, headers=bearer(admin_token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 1 and body["total"] >= 3
    r2 = http.get("/v1/users", params={"limit": 1, "offset": 1}, headers=bearer(admin_token))
    assert r2.json()["items"][0]["id"] != body["items"][0]["id"]
    assert (
        http.get("/v1/users", params={"limit": 0}, headers=bearer(admin_token)).status_code == 422
    )


def test_admin_get_patch_delete(
    http: httpx.Client, register: Register, login: Login, admin_token: str
) -> None:
    admin = bearer(admin_token)
    acct = register()
    assert http.get(f"/v1/users/{acct.id}", headers=admin).json()["username"] == acct.username
    missing = "00000000-0000-4000-8000-000000000000"
    assert http.get(f"/v1/users/{missing}", headers=admin).status_code == 404
    assert (
        http.patch(f"/v1/users/{missing}", headers=admin, json={"disabled": True}).status_code
        == 404
    )
    assert http.delete(f"/v1/users/{missing}", headers=admin).status_code == 404
    r = http.patch(f"/v1/users/{acct.id}", headers=admin, json={"roles": ["user", "admin"]})
    assert r.status_code == 200 and set(r.json()["roles"]) == {"user", "admin"}
    r = http.patch(f"/v1/users/{acct.id}", headers=admin, json={"roles": ["root"]})
    assert r.status_code == 422
    assert http.delete(f"/v1/users/{acct.id}", headers=admin).status_code == 204
    assert http.get(f"/v1/users/{acct.id}", headers=admin).status_code == 404


def test_disabling_a_user_voids_tokens_and_login(
    http: httpx.Client, register: Register, login: Login, admin_token: str
) -> None:
    acct = register()
    tokens = login(acct.username, acct.password)
    auth = bearer(tokens["access_token"])
    r = http.patch(f"/v1/users/{acct.id}", headers=bearer(admin_token), json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert until(lambda: http.get("/v1/users/me", headers=auth).status_code == 401)
    r = http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": acct.username, "password": acct.password},
    )
    assert r.json() == {"error": "invalid_grant"}
    assert _refresh(http, tokens["refresh_token"]).json() == {"error": "invalid_grant"}


def test_deleting_a_user_voids_tokens(
    http: httpx.Client, register: Register, login: Login, admin_token: str
) -> None:
    acct = register()
    auth = bearer(login(acct.username, acct.password)["access_token"])
    assert http.delete(f"/v1/users/{acct.id}", headers=bearer(admin_token)).status_code == 204
    assert until(lambda: http.get("/v1/users/me", headers=auth).status_code == 401)
