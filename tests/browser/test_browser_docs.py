"""/docs in real Chromium: Swagger UI loads from api itself under the docs CSP (no CDN, no
violation), "Authorize" works with the password grant and with a pasted bearer credential,
and GET /v1/users/me runs from the page. With BULWARK_UPDATE_SCREENSHOTS=1 it refreshes
docs/screenshots/docs-page.png; otherwise the screenshot stays in pytest's tmp_path, so a
test run leaves the tree clean."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from bulwark_devstack.testkit import strong_password, unique_name

pytestmark = pytest.mark.timeout(300)
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "docs-page.png"
PNG = b"\x89PNG\r\n\x1a\n"
ME = "#operations-users-get_me_v1_users_me_get"


@pytest.fixture(scope="module")
def api(stack_factory: Callable[..., Any]) -> str:
    return str(stack_factory().config.api_url)


@pytest.fixture(scope="module")
def account(api: str) -> tuple[str, str]:
    name, password = unique_name("Docs."), strong_password()
    r = httpx.post(
        f"{api}/v1/users",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert r.status_code == 201, r.text
    return name, password


@pytest.fixture
def docs(browser: Browser, api: str) -> Iterator[tuple[Page, list[str]]]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.goto(f"{api}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Bulwark API")
    yield page, problems
    ctx.close()


def run_me(page: Page) -> dict[str, Any]:
    op = page.locator(ME)
    op.locator(".opblock-summary").click()
    op.locator("button.try-out__btn").click()
    op.locator("button.execute").click()
    status = op.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200", timeout=10_000)
    body = op.locator(".live-responses-table .response .microlight").first.inner_text()
    return dict(json.loads(body))


def test_docs_authorize_with_the_password_grant(
    docs: tuple[Page, list[str]], account: tuple[str, str], tmp_path: Path
) -> None:
    page, problems = docs
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("#oauth_username").fill(account[0])
    dialog.locator("#oauth_password").fill(account[1])
    password = dialog.locator(".auth-container").first
    password.locator("button.authorize").click()
    expect(password.locator("button", has_text="Logout")).to_be_visible()
    dialog.locator("button.close-modal").click()
    me = run_me(page)
    assert me["username"] == account[0].lower()
    update = os.environ.get("BULWARK_UPDATE_SCREENSHOTS") == "1"
    shot = SCREENSHOT if update else tmp_path / SCREENSHOT.name
    page.screenshot(path=str(shot), full_page=False)
    assert shot.read_bytes().startswith(PNG)
    assert problems == [], problems  # no CSP violation, no failed asset, no script error


def test_docs_authorize_with_a_pasted_bearer_credential(
    docs: tuple[Page, list[str]], api: str, account: tuple[str, str]
) -> None:
    # What a script's credential looks like to the page: an access token here; an API key
    # (bwk_…) goes in the same field.
    token = httpx.post(
        f"{api}/v1/auth/token",
        data={"grant_type": "password", "username": account[0], "password": account[1]},
    ).json()["access_token"]
    page, problems = docs
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".dialog-ux")
    bearer = dialog.locator(".auth-container", has_text="ApiKey")
    bearer.locator("input").fill(token)
    bearer.locator("button.authorize").click()
    expect(bearer.locator("button", has_text="Logout")).to_be_visible()
    dialog.locator("button.close-modal").click()
    assert run_me(page)["username"] == account[0].lower()
    assert problems == [], problems
