"""The last active admin cannot be demoted, disabled or deleted: over HTTP, on a stack of
its own (the rule counts every admin, so the shared e2e stack would not do)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import bearer, create_admin, sign_up, strong_password


def test_the_last_admin_stays(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    api = stack.config.api_url
    password = strong_password()
    create_admin(stack, "root", password)
    with httpx.Client(base_url=api, timeout=10) as http:
        token = http.post(
            "/v1/auth/token",
            data={"grant_type": "password", "username": "root", "password": password},
        ).json()["access_token"]
        me = http.get("/v1/users/me", headers=bearer(token)).json()
        attempts = [
            ("PATCH", {"roles": ["user"]}),
            ("PATCH", {"disabled": True}),
            ("DELETE", None),
        ]
        for method, body in attempts:
            r = http.request(method, f"/v1/users/{me['id']}", headers=bearer(token), json=body)
            assert r.status_code == 409, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["detail"] == (
                "the last active admin cannot be demoted, disabled or deleted"
            )
        # Nothing changed, nothing was revoked: the same token still acts as admin.
        assert http.get("/v1/users/me", headers=bearer(token)).json() == me
        assert http.get("/v1/users", headers=bearer(token)).status_code == 200

        # With a second admin in place, the first one may step down.
        second = sign_up(api)
        r = http.patch(
            f"/v1/users/{second.user_id}", headers=bearer(token), json={"roles": ["admin"]}
        )
        assert r.status_code == 200
        r = http.patch(f"/v1/users/{me['id']}", headers=bearer(token), json={"roles": ["user"]})
        assert r.status_code == 200 and r.json()["roles"] == ["user"]
