"""Browser sessions over HTTP (what a browser sends, written out): the refresh token in a
`__Host-` cookie, the CSRF defence (Origin allow-list + the X-Bulwark-Session header),
rotation, reuse detection and logout. Same-origin requests need no API_CORS_ORIGINS entry,
so this runs against any target; tests/browser/ does it in real Chromium."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

COOKIE = "__Host-bulwark-refresh"
Register = Callable[..., Any]


def browser_headers(http: httpx.Client, origin: str | None = None) -> dict[str, str]:
    return {"X-Bulwark-Session": "cookie", "Origin": origin or str(http.base_url).rstrip("/")}


def set_cookie(r: httpx.Response) -> dict[str, str]:
    """The session cookie's attributes from Set-Cookie ({} when none was set)."""
    for line in r.headers.get_list("set-cookie"):
        name, _, rest = line.partition("=")
        if name.strip() == COOKIE:
            value, *attrs = rest.split(";")
            out = {"value": value}
            for a in attrs:
                k, _, v = a.strip().partition("=")
                out[k.lower()] = v
            return out
    return {}


def cookie_login(http: httpx.Client, acct: Any) -> tuple[str, str]:
    r = http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": acct.username, "password": acct.password},
        headers=browser_headers(http),
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"], set_cookie(r)["value"]


def refresh(http: httpx.Client, cookie: str | None, **headers: str) -> httpx.Response:
    hdrs = {**browser_headers(http), **headers}
    if cookie is not None:
        hdrs["Cookie"] = f"{COOKIE}={cookie}"
    return http.post("/v1/auth/token", data={"grant_type": "refresh_token"}, headers=hdrs)


def test_cookie_login_puts_the_refresh_token_in_a_host_cookie(
    http: httpx.Client, register: Register
) -> None:
    acct = register()
    r = http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": acct.username, "password": acct.password},
        headers=browser_headers(http),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["access_token"] and body["token_type"] == "Bearer"
    assert "refresh_token" not in body
    c = set_cookie(r)
    assert c["value"].startswith("bwr_")
    assert {"httponly", "secure"} <= set(c)
    assert c["samesite"].lower() == "strict" and c["path"] == "/" and "domain" not in c
    assert int(c["max-age"]) > 0
    assert r.headers["cache-control"] == "no-store"


def test_programmatic_clients_still_get_the_refresh_token_in_the_body(
    http: httpx.Client, register: Register, login: Callable[..., dict[str, Any]]
) -> None:
    acct = register()
    r = http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": acct.username, "password": acct.password},
    )
    assert r.json()["refresh_token"].startswith("bwr_")
    assert not set_cookie(r)


def test_cookie_refresh_rotates_and_detects_reuse(http: httpx.Client, register: Register) -> None:
    _, first = cookie_login(http, register())
    r = refresh(http, first)
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    second = set_cookie(r)["value"]
    assert second and second != first
    # The rotated-out cookie replayed: refused, the cookie cleared, and the family revoked.
    replay = refresh(http, first)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert set_cookie(replay).get("max-age") == "0"
    assert refresh(http, second).json()["error"] == "invalid_grant"


def test_cookie_requests_without_the_header_or_from_other_origins_are_refused(
    http: httpx.Client, register: Register
) -> None:
    _, cookie = cookie_login(http, register())
    cross_site_form = http.post(
        "/v1/auth/token",
        data={"grant_type": "refresh_token"},
        headers={"Cookie": f"{COOKIE}={cookie}", "Origin": "https://evil.example"},
    )
    assert cross_site_form.status_code == 403
    assert cross_site_form.json()["error"] == "invalid_request"
    same_origin_form = http.post(
        "/v1/auth/token",
        data={"grant_type": "refresh_token"},
        headers={"Cookie": f"{COOKIE}={cookie}"},
    )
    assert same_origin_form.status_code == 403
    assert refresh(http, cookie, Origin="https://evil.example").status_code == 403
    assert refresh(http, cookie, Origin="null").status_code == 403
    no_origin = http.post(
        "/v1/auth/token",
        data={"grant_type": "refresh_token"},
        headers={"X-Bulwark-Session": "cookie", "Cookie": f"{COOKIE}={cookie}"},
    )
    assert no_origin.status_code == 403
    evil_logout = http.post(
        "/v1/auth/logout",
        headers={"Cookie": f"{COOKIE}={cookie}", "Origin": "https://evil.example"},
    )
    assert evil_logout.status_code == 403
    # None of it used up or ended the session.
    assert refresh(http, cookie).status_code == 200


def test_logout_revokes_the_family_and_clears_the_cookie(
    http: httpx.Client, register: Register
) -> None:
    access, cookie = cookie_login(http, register())
    r = http.post(
        "/v1/auth/logout", headers={**browser_headers(http), "Cookie": f"{COOKIE}={cookie}"}
    )
    assert r.status_code == 204
    cleared = set_cookie(r)
    assert cleared["value"] in ("", '""') and cleared["max-age"] == "0"
    assert refresh(http, cookie).json()["error"] == "invalid_grant"
    me = http.get("/v1/users/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 401
    # Logging out without a cookie is fine (nothing to end), but needs the header.
    assert http.post("/v1/auth/logout", headers=browser_headers(http)).status_code == 204
    assert http.post("/v1/auth/logout").status_code == 400


def test_refresh_without_a_cookie_is_invalid_grant(http: httpx.Client) -> None:
    r = refresh(http, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_revoke_in_cookie_mode_without_a_token_ends_the_session(
    http: httpx.Client, register: Register
) -> None:
    _, cookie = cookie_login(http, register())
    r = http.post(
        "/v1/auth/revoke", headers={**browser_headers(http), "Cookie": f"{COOKIE}={cookie}"}
    )
    assert r.status_code == 200
    assert set_cookie(r)["max-age"] == "0"
    assert refresh(http, cookie).json()["error"] == "invalid_grant"
