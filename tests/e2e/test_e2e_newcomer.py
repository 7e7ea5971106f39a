"""What a newcomer tripped over (issue 14, part 4): honest discovery metadata, the RFC 6750
insufficient_scope challenge, 415 / 413 / malformed JSON answered as documented, and one
title per status."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bulwark_devstack.testkit import bearer, strong_password, unique_name

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"


def test_discovery_publishes_only_what_is_true(http: httpx.Client, base_url: str) -> None:
    meta = http.get("/.well-known/openid-configuration").json()
    # No ID tokens, no authorization endpoint: none of the fields that would claim them.
    for absent in (
        "id_token_signing_alg_values_supported",
        "subject_types_supported",
        "authorization_endpoint",
    ):
        assert absent not in meta
    assert meta.get("response_types_supported", ["x"]) != []
    assert all(v != [] for v in meta.values())
    assert meta["issuer"] and meta["token_endpoint"].startswith(meta["issuer"].rstrip("/"))
    assert "password" in meta["grant_types_supported"]
    # RFC 8414's own well-known path serves the same document.
    assert http.get("/.well-known/oauth-authorization-server").json() == meta


def test_missing_scope_is_a_403_with_an_insufficient_scope_challenge(
    http: httpx.Client, register: Callable[..., Any], login: Callable[..., dict[str, Any]]
) -> None:
    acct = register()
    token = login(acct.username, acct.password, scope="items:read")["access_token"]
    r = http.post("/v1/items", json={"name": "x"}, headers=bearer(token))
    assert r.status_code == 403
    assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="items:write"'
    assert r.json()["scope"] == "items:write"


@pytest.fixture
def token(register: Callable[..., Any], login: Callable[..., dict[str, Any]]) -> Iterator[str]:
    acct = register()
    yield str(login(acct.username, acct.password)["access_token"])


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_json_endpoints_answer_a_wrong_content_type_with_415(
    http: httpx.Client, token: str, content_type: str | None
) -> None:
    headers = bearer(token)
    if content_type:
        headers["Content-Type"] = content_type
    r = http.post("/v1/items", content=b'{"name": "lamp"}', headers=headers)
    assert r.status_code == 415, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["title"] == "Unsupported Media Type"
    name = unique_name()
    r = http.post(
        "/v1/users",
        data={"username": name, "email": f"{name}@example.com", "password": strong_password()},
    )
    assert r.status_code == 415
    # JSON with a charset, or a +json type, is still JSON.
    ok = http.post(
        "/v1/items",
        content=b'{"name": "lamp"}',
        headers={**bearer(token), "Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201


def test_a_chunked_body_over_the_limit_is_413(http: httpx.Client, token: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "big", "description": "'
        for _ in range(100):
            yield b"x" * 4096
        yield b'"}'

    r = http.post(
        "/v1/items",
        content=chunks(),
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert "content-length" not in r.request.headers  # really chunked
    assert r.status_code == 413
    assert r.json()["title"] == "Content Too Large"
    # The same on the form endpoint.
    r = http.post(
        "/v1/auth/token",
        content=(b"grant_type=password&username=" + b"x" * 4096 for _ in range(100)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413


def test_malformed_json_says_what_is_wrong(http: httpx.Client, token: str) -> None:
    r = http.post(
        "/v1/items",
        content=b'{"name": "lamp",\n "description" "red"}',
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("malformed JSON body: ")
    assert "line 2, column" in detail and "delimiter" in detail
    assert "invalid request" not in detail


def test_every_422_has_the_same_title(http: httpx.Client, token: str) -> None:
    validation = http.post("/v1/items", json={"name": ""}, headers=bearer(token))
    name = unique_name()
    weak = http.post(  # refused by the users service, not by validation
        "/v1/users",
        json={"username": name, "email": f"{name}@example.com", "password": "password1234"},
    )
    assert validation.status_code == weak.status_code == 422
    assert validation.json()["title"] == weak.json()["title"] == "Unprocessable Content"
