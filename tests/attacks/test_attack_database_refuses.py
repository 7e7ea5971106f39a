"""Attack 11: input the database refuses. NUL (and lone surrogates) in any text field is a
422 at the edge, never a 500 from PostgreSQL; security-relevant booleans and enums take
strict JSON types only."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bulwark_devstack.target import Attackable
from bulwark_devstack.testkit import bearer, strong_password, unique_name

BAD = ["nul\u0000inside", "lone\ud800surrogate"]


def send(http: httpx.Client, method: str, url: str, body: Any, **headers: str) -> int:
    # json.dumps escapes as \u0000 / \ud800, as a hostile client would send them.
    headers["Content-Type"] = "application/json"
    return http.request(method, url, content=json.dumps(body), headers=headers).status_code


@pytest.mark.parametrize("bad", BAD)
def test_database_refuses_nul_in_item_fields_is_422(target: Attackable, bad: str) -> None:
    user = target.register()
    with target.client() as http:
        auth = bearer(target.login(user, http)["access_token"])
        assert send(http, "POST", "/v1/items", {"name": bad}, **auth) == 422
        assert send(http, "POST", "/v1/items", {"name": "ok", "description": bad}, **auth) == 422
        item = http.post("/v1/items", headers=auth, json={"name": "ok"}).json()
        assert send(http, "PATCH", f"/v1/items/{item['id']}", {"name": bad}, **auth) == 422


@pytest.mark.parametrize("bad", BAD)
def test_database_refuses_nul_in_account_fields_is_refused(target: Attackable, bad: str) -> None:
    name = unique_name()
    with target.client() as http:
        for body in (
            {"username": name, "email": f"{name}@example.com", "password": strong_password() + bad},
            {"username": name + bad, "email": f"{name}@example.com", "password": strong_password()},
        ):
            assert send(http, "POST", "/v1/users", body) == 422
        user = target.register()
        auth = bearer(target.login(user, http)["access_token"])
        body = {"password": strong_password() + bad, "current_password": user.password}
        assert send(http, "PATCH", "/v1/users/me", body, **auth) == 422


def test_database_refuses_nul_in_token_form_fields(target: Attackable) -> None:
    with target.client() as http:
        for field in ("username", "password", "scope"):
            form = {
                "grant_type": "password",
                "username": "someone",
                "password": "x" * 12,
                "scope": "",
            }
            form[field] += "\u0000"
            r = http.post("/v1/auth/token", data=form)
            assert r.status_code == 400 and r.json()["error"] == "invalid_request", field
        r = http.post(
            "/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": "a\0"}
        )
        assert r.status_code == 400


def test_database_refuses_lax_booleans_and_enums(target: Attackable) -> None:
    victim = target.register()
    with target.client() as http:
        admin = bearer(target.login(target.admin, http)["access_token"])
        for body in ({"disabled": "yes"}, {"disabled": 1}, {"roles": "admin"}):
            r = http.patch(f"/v1/users/{victim.id}", headers=admin, json=body)
            assert r.status_code == 422, (body, r.status_code)
        me = http.get(f"/v1/users/{victim.id}", headers=admin).json()
        assert me["disabled"] is False and me["roles"] == ["user"]
