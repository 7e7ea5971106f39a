"""Attack 4: scopes that do not bind admins. Admin powers need an admin scope in the token
as well as the role; every protected route declares the scope it needs; changing the email
needs the current password, like changing the password."""

from __future__ import annotations

from bulwark_api.app import create_app
from bulwark_api.settings import ApiSettings
from bulwark_devstack.target import Attackable
from bulwark_devstack.testkit import bearer

# The doors anyone may knock on: no token, so no scope.
PUBLIC = {
    ("post", "/v1/users"),
    ("post", "/v1/auth/token"),
    ("post", "/v1/auth/revoke"),
    ("post", "/v1/auth/logout"),  # a browser session's cookie, no bearer token
    ("get", "/.well-known/jwks.json"),
    ("get", "/.well-known/openid-configuration"),
    ("get", "/.well-known/oauth-authorization-server"),
    ("get", "/healthz"),
    ("get", "/readyz"),
}


def test_admin_scopes_narrowed_admin_token_reads_only_its_own_items(target: Attackable) -> None:
    owner = target.register()
    with target.client() as http:
        mine = target.login(owner, http)["access_token"]
        item = http.post("/v1/items", headers=bearer(mine), json={"name": "private"}).json()
        narrowed = target.login(target.admin, http, scope="items:read")["access_token"]
        assert http.get("/v1/items?all=true", headers=bearer(narrowed)).status_code == 403
        r = http.get(f"/v1/items?owner={owner.id}", headers=bearer(narrowed))
        assert r.status_code == 403
        assert http.get(f"/v1/items/{item['id']}", headers=bearer(narrowed)).status_code == 404

        full = target.login(target.admin, http, scope="items:read items:admin")["access_token"]
        assert http.get(f"/v1/items/{item['id']}", headers=bearer(full)).status_code == 200
        assert http.get("/v1/items?all=true", headers=bearer(full)).status_code == 200


def test_admin_scopes_profile_needs_a_scope(target: Attackable) -> None:
    user = target.register()
    with target.client() as http:
        items_only = target.login(user, http, scope="items:read")["access_token"]
        assert http.get("/v1/users/me", headers=bearer(items_only)).status_code == 403


def test_admin_scopes_email_change_needs_current_password(target: Attackable) -> None:
    user = target.register()
    with target.client() as http:
        token = target.login(user, http)["access_token"]
        r = http.patch("/v1/users/me", headers=bearer(token), json={"email": "thief@example.com"})
        assert r.status_code == 422
        r = http.patch(
            "/v1/users/me",
            headers=bearer(token),
            json={"email": f"{user.username}-new@example.com", "current_password": user.password},
        )
        assert r.status_code == 200


def test_admin_scopes_every_protected_route_declares_a_scope() -> None:
    spec = create_app(ApiSettings(docs_enabled=True)).openapi()
    missing = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if (method, path) in PUBLIC:
                continue
            scopes = [s for req in op.get("security", []) for v in req.values() for s in v]
            if not scopes:
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"protected routes without a scope: {missing}"
