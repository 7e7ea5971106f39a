"""The items resource and the hardened edge, over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bulwark_devstack.testkit import bearer

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def user_token(
    register: Callable[..., Any], login: Callable[..., dict[str, Any]]
) -> Callable[..., str]:
    def make(**extra: str) -> str:
        acct = register()
        return str(login(acct.username, acct.password, **extra)["access_token"])

    return make


def _create(http: httpx.Client, token: str, name: str = "thing", **extra: Any) -> dict[str, Any]:
    r = http.post("/v1/items", headers=bearer(token), json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_create_and_read_an_item(http: httpx.Client, user_token: Callable[..., str]) -> None:
    token = user_token()
    r = http.post("/v1/items", headers=bearer(token), json={"name": "lamp", "description": "red"})
    assert r.status_code == 201, r.text
    item = r.json()
    assert set(item) == {"id", "name", "description", "owner_id", "created_at", "updated_at"}
    assert r.headers["location"] == f"/v1/items/{item['id']}"
    got = http.get(r.headers["location"], headers=bearer(token))
    assert got.status_code == 200 and got.json() == item
    assert got.headers["cache-control"] == "no-store"


def test_owners_are_isolated_and_admins_override(
    http: httpx.Client, user_token: Callable[..., str], admin_token: str
) -> None:
    alice, bob = user_token(), user_token()
    item = _create(http, alice)
    url = f"/v1/items/{item['id']}"
    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"name": "x"}}), ("DELETE", {})):
        r = http.request(method, url, headers=bearer(bob), **kwargs)
        assert r.status_code == 404, (method, r.text)
    assert http.get(url, headers=bearer(alice)).json()["name"] == "thing"
    assert http.get("/v1/items", headers=bearer(bob)).json()["items"] == []
    admin = bearer(admin_token)
    assert http.get(url, headers=admin).status_code == 200
    owned = http.get("/v1/items", params={"owner": item["owner_id"]}, headers=admin).json()
    assert [i["id"] for i in owned["items"]] == [item["id"]]
    assert http.patch(url, headers=admin, json={"name": "by admin"}).json()["name"] == "by admin"
    assert http.delete(url, headers=admin).status_code == 204
    assert http.get(url, headers=bearer(alice)).status_code == 404


def test_non_admins_cannot_list_others(http: httpx.Client, user_token: Callable[..., str]) -> None:
    token = user_token()
    assert http.get("/v1/items", params={"all": "true"}, headers=bearer(token)).status_code == 403
    r = http.get("/v1/items", params={"owner": MISSING}, headers=bearer(token))
    assert r.status_code == 403


def test_patch_is_partial_and_validated(http: httpx.Client, user_token: Callable[..., str]) -> None:
    token = user_token()
    item = _create(http, token, description="keep me")
    url = f"/v1/items/{item['id']}"
    r = http.patch(url, headers=bearer(token), json={"name": "renamed"})
    assert r.status_code == 200
    assert r.json()["description"] == "keep me" and r.json()["name"] == "renamed"
    for bad in (
        {"name": ""},
        {"name": "x" * 201},
        {"name": None},
        {"owner_id": MISSING},
        {"description": "d" * 2001},
    ):
        r = http.patch(url, headers=bearer(token), json=bad)
        assert r.status_code == 422, bad
        assert r.headers["content-type"].startswith(PROBLEM)
    assert http.get(url, headers=bearer(token)).json()["name"] == "renamed"


def test_pagination_is_newest_first_and_stable_under_inserts(
    http: httpx.Client, user_token: Callable[..., str]
) -> None:
    token = user_token()
    made = [_create(http, token, name=f"n{i}")["id"] for i in range(7)]
    seen: list[str] = []
    r = http.get("/v1/items", params={"limit": 3}, headers=bearer(token)).json()
    seen += [i["id"] for i in r["items"]]
    stop = threading.Event()

    def insert() -> None:
        while not stop.is_set():
            _create(http, token, name="late")

    writer = threading.Thread(target=insert)
    writer.start()
    try:
        while r["next_cursor"]:
            r = http.get(
                "/v1/items", params={"limit": 3, "cursor": r["next_cursor"]}, headers=bearer(token)
            ).json()
            seen += [i["id"] for i in r["items"]]
    finally:
        stop.set()
        writer.join()
    assert seen == list(reversed(made))
    assert r["next_cursor"] is None


def test_bad_cursor_and_bad_ids_are_422(http: httpx.Client, user_token: Callable[..., str]) -> None:
    token = user_token()
    assert http.get("/v1/items", params={"cursor": "!!"}, headers=bearer(token)).status_code == 422
    assert http.get("/v1/items/not-a-uuid", headers=bearer(token)).status_code == 422
    assert http.get(f"/v1/items/{MISSING}", headers=bearer(token)).status_code == 404


def test_scopes_are_enforced(http: httpx.Client, user_token: Callable[..., str]) -> None:
    reader = user_token(scope="items:read")
    r = http.post("/v1/items", headers=bearer(reader), json={"name": "x"})
    assert r.status_code == 403
    assert "items:write" in r.json()["detail"]
    assert http.get("/v1/items", headers=bearer(reader)).status_code == 200
    writer = user_token(scope="items:write")
    r = http.get("/v1/items", headers=bearer(writer))
    assert r.status_code == 403 and "items:read" in r.json()["detail"]


def test_unknown_fields_and_oversized_bodies(
    http: httpx.Client, user_token: Callable[..., str]
) -> None:
    token = user_token()
    r = http.post("/v1/items", headers=bearer(token), json={"name": "x", "owner_id": MISSING})
    assert r.status_code == 422
    big = {"name": "x", "description": "y" * (70 * 1024)}
    r = http.post("/v1/items", headers=bearer(token), json=big)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.headers["x-content-type-options"] == "nosniff"


def test_security_headers_on_success_and_error(http: httpx.Client) -> None:
    for r in (http.get("/healthz"), http.get("/v1/items"), http.get("/nope")):
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert http.get("/nope").headers["content-type"].startswith(PROBLEM)


def test_cors_preflight_is_denied_for_unlisted_origins(http: httpx.Client) -> None:
    r = http.options(
        "/v1/items",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_rate_limit_headers_on_authenticated_requests(
    http: httpx.Client, user_token: Callable[..., str]
) -> None:
    token = user_token()
    r = http.get("/v1/items", headers=bearer(token))
    assert int(r.headers["ratelimit-limit"]) > 0
    assert int(r.headers["ratelimit-remaining"]) < int(r.headers["ratelimit-limit"])
    # The routes that build their own response carry them too, each request counted.
    created = http.post("/v1/items", json={"name": "counted"}, headers=bearer(token))
    assert created.status_code == 201
    read = http.get(created.headers["location"], headers=bearer(token))
    assert read.status_code == 200
    assert int(read.headers["ratelimit-remaining"]) < int(created.headers["ratelimit-remaining"])
    assert int(created.headers["ratelimit-remaining"]) < int(r.headers["ratelimit-remaining"])
