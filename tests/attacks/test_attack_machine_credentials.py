"""Attack 14: machine credentials leave a trail, never a secret. Creating, using and deleting
an API key and an OAuth2 client (wrong secrets included) writes audit events naming the key,
the client and the actor, and no service log line holds a key, a client secret or a token."""

from __future__ import annotations

import base64
import time
from typing import Any

from bulwark_devstack.target import Attackable
from bulwark_devstack.testkit import bearer


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _events(target: Attackable, service: str) -> list[dict[str, Any]]:
    return [r for r in target.log_records(service) if r.get("logger") == "bulwark.audit"]


def test_machine_credentials_audited_and_never_logged(target: Attackable) -> None:
    user = target.register()
    admin = target.login(target.admin)["access_token"]
    with target.client() as http:
        token = target.login(user, http)["access_token"]
        r = http.post(
            "/v1/users/me/api-keys",
            headers=bearer(token),
            json={"name": "audited", "scopes": ["items:read"], "expires_in_days": 1},
        )
        assert r.status_code == 201, r.text
        key, key_id = r.json()["key"], r.json()["id"]
        assert http.get("/v1/items", headers=bearer(key)).status_code == 200
        assert (
            http.delete(f"/v1/users/me/api-keys/{key_id}", headers=bearer(token)).status_code == 204
        )

        r = http.post(
            "/v1/clients", headers=bearer(admin), json={"name": "audited", "scopes": ["items:read"]}
        )
        assert r.status_code == 201, r.text
        client_id, secret = r.json()["client_id"], r.json()["client_secret"]
        form = {"grant_type": "client_credentials"}
        r = http.post("/v1/auth/token", headers=_basic(client_id, secret), data=form)
        assert r.status_code == 200, r.text
        client_token = r.json()["access_token"]
        wrong = http.post("/v1/auth/token", headers=_basic(client_id, secret + "x"), data=form)
        assert wrong.status_code == 401
        assert http.delete(f"/v1/clients/{client_id}", headers=bearer(admin)).status_code == 204

    wanted = {
        ("users", "api_key.created"),
        ("users", "api_key.deleted"),
        ("users", "client.created"),
        ("users", "client.auth_failure"),
        ("users", "client.deleted"),
        ("auth", "token.issued"),
    }
    deadline = time.monotonic() + 5
    while True:  # log lines are flushed by other processes: poll, bounded
        seen = {
            (svc, e.get("event"))
            for svc in ("users", "auth")
            for e in _events(target, svc)
            if e.get("key_id") == key_id or e.get("client_id") == client_id
        }
        if wanted <= seen or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert wanted <= seen, wanted - seen
    created = [e for e in _events(target, "users") if e.get("event") == "client.created"]
    assert any(e.get("client_id") == client_id and e.get("actor_id") for e in created)

    for service in ("api", "auth", "users"):
        text = "\n".join(str(r) for r in target.log_records(service))
        for name, value in (("key", key), ("secret", secret), ("token", client_token)):
            assert value not in text, f"{name} in {service}'s log"
            assert value[4:24] not in text, f"part of the {name} in {service}'s log"
