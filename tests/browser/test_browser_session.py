"""Browser sessions in real Chromium: an SPA on an allowed origin logs in (refresh token in
a `__Host-` cookie, access token in memory), reads items, refreshes after the access token
expired, logs out; pages on origins not in API_CORS_ORIGINS fail at every attempt."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from bulwark_devstack.testkit import strong_password, unique_name, until
from tests.browser.conftest import PageServer

COOKIE = "__Host-bulwark-refresh"
PAGE = (Path(__file__).parent / "session_page.html").read_text()
# Starting a stack and Chromium on a busy machine can take more than the default timeout.
pytestmark = pytest.mark.timeout(300)
ACCESS_TTL = 5  # seconds (auth's minimum), so the test can watch a token expire


@dataclass
class Site:
    api: str  # as the browser reaches it: http://localhost:<port> (same site as the pages)
    app: PageServer  # allowed origin
    other: PageServer  # same site, not in the list
    foreign: PageServer  # another site (127.0.0.1), not in the list


@pytest.fixture(scope="module")
def site(stack_factory: Callable[..., Any], page_server: Callable[..., PageServer]) -> Site:
    app, other, foreign = page_server(), page_server(), page_server("127.0.0.1")
    stack = stack_factory(
        env={
            "api": {"API_CORS_ORIGINS": json.dumps([app.origin])},
            "auth": {"AUTH_ACCESS_TOKEN_TTL_SECONDS": str(ACCESS_TTL)},
        }
    )
    api = stack.config.api_url.replace("127.0.0.1", "localhost")
    for server in (app, other, foreign):
        server.pages["/"] = PAGE.replace("__API__", api)
    return Site(api, app, other, foreign)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context()
    yield ctx
    ctx.close()


@pytest.fixture
def account(site: Site) -> tuple[str, str]:
    name, password = unique_name("Web."), strong_password()
    r = httpx.post(
        f"{site.api}/v1/users",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert r.status_code == 201, r.text
    return name, password


def open_page(context: BrowserContext, server: PageServer) -> Page:
    page = context.new_page()
    page.goto(server.url("/"))
    return page


def js(page: Page, call: str, *args: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(f"([a]) => {call}(...a)", [list(args)])
    return result


def session_cookie(context: BrowserContext, api: str) -> dict[str, Any] | None:
    found = [c for c in context.cookies(api) if c["name"] == COOKIE]
    return dict(found[0]) if found else None


def test_login_items_refresh_after_expiry_and_logout(
    site: Site, context: BrowserContext, account: tuple[str, str]
) -> None:
    page = open_page(context, site.app)
    r = js(page, "login", *account)
    assert r["status"] == 200, r
    assert r["body"]["access_token"] and "refresh_token" not in r["body"]
    cookie = session_cookie(context, site.api)
    assert cookie is not None, "Chromium did not store the session cookie"
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert page.evaluate("document.cookie") == ""

    assert js(page, "createItem", "from the browser")["status"] == 201
    listed = js(page, "items")
    assert listed["status"] == 200
    assert [i["name"] for i in listed["body"]["items"]] == ["from the browser"]

    # The in-memory access token expires (TTL + verification leeway): 401, then refresh.
    assert until(lambda: js(page, "items")["status"] == 401, timeout=30)
    r = js(page, "refresh")
    assert r["status"] == 200, r
    assert "refresh_token" not in r["body"]
    rotated = session_cookie(context, site.api)
    assert rotated is not None and rotated["value"] != cookie["value"]
    assert js(page, "items")["status"] == 200

    assert js(page, "logout")["status"] == 204
    assert session_cookie(context, site.api) is None
    # The family is revoked: its access token too, and the old cookie value refreshes no more.
    assert js(page, "items")["status"] == 401
    replay = httpx.post(
        f"{site.api}/v1/auth/token",
        data={"grant_type": "refresh_token"},
        headers={
            "Origin": site.app.origin,
            "X-Bulwark-Session": "cookie",
            "Cookie": f"{COOKIE}={rotated['value']}",
        },
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert js(page, "refresh")["status"] == 400


def test_reuse_of_a_rotated_cookie_revokes_the_session(
    site: Site, context: BrowserContext, account: tuple[str, str]
) -> None:
    page = open_page(context, site.app)
    assert js(page, "login", *account)["status"] == 200
    first = session_cookie(context, site.api)
    assert first is not None
    assert js(page, "refresh")["status"] == 200
    # Someone replays the first (rotated-out) refresh token: the whole family dies.
    stolen = httpx.post(
        f"{site.api}/v1/auth/token",
        data={"grant_type": "refresh_token"},
        headers={
            "Origin": site.app.origin,
            "X-Bulwark-Session": "cookie",
            "Cookie": f"{COOKIE}={first['value']}",
        },
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    r = js(page, "refresh")
    assert r["status"] == 400 and r["body"]["error"] == "invalid_grant"
    assert session_cookie(context, site.api) is None  # a refused cookie is cleared


@pytest.mark.parametrize("where", ["other", "foreign"])
def test_pages_from_disallowed_origins_fail_at_every_attempt(
    site: Site, context: BrowserContext, account: tuple[str, str], where: str
) -> None:
    app = open_page(context, site.app)
    assert js(app, "login", *account)["status"] == 200
    before = session_cookie(context, site.api)
    evil = open_page(context, getattr(site, where))

    # Script: CORS refuses to hand it any answer, with or without the session header.
    for call, args in [
        ("refresh", []),
        ("refresh", [{}]),
        ("login", list(account)),
        ("logout", []),
        ("logout", [{}]),
    ]:
        r = js(evil, call, *args)
        assert r["status"] == 0, (call, args, r)

    # Classic CSRF: auto-submitted forms. The browser shows api's answer: refused.
    for path, fields in [
        ("/v1/auth/token", {"grant_type": "refresh_token"}),
        ("/v1/auth/token", {"grant_type": "password", "username": account[0], "password": "x"}),
        ("/v1/auth/logout", {}),
        ("/v1/auth/revoke", {"token": "anything"}),
    ]:
        with evil.expect_navigation() as nav:
            js(evil, "postForm", path, fields)
        response = nav.value
        assert response is not None and response.status == 403, (path, response)
        evil.goto(getattr(site, where).url("/"))

    # The session survived all of it: same cookie, and it still refreshes.
    assert session_cookie(context, site.api) == before
    assert js(app, "refresh")["status"] == 200
