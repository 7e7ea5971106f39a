"""Logs are JSON lines that carry trace ids and audit events, and never a password, a hash
or a token, whatever the flow."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import bearer, strong_password, unique_name


def test_no_secret_reaches_the_logs(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(env={"*": {"LOG_LEVEL": "DEBUG"}})
    api = stack.config.api_url
    name, password, new_password = unique_name(), strong_password(), strong_password()
    r = httpx.post(
        f"{api}/v1/users",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert r.status_code == 201
    user_id = r.json()["id"]
    bad = httpx.post(
        f"{api}/v1/auth/token",
        data={"grant_type": "password", "username": name, "password": password + "-wrong"},
    )
    assert bad.status_code == 400
    tokens = httpx.post(
        f"{api}/v1/auth/token",
        data={"grant_type": "password", "username": name, "password": password},
    ).json()
    rotated = httpx.post(
        f"{api}/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    ).json()
    httpx.post(  # reuse: revokes the family, logs an audit event
        f"{api}/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    httpx.patch(
        f"{api}/v1/users/me",
        headers=bearer(rotated["access_token"]),
        json={"password": new_password, "current_password": password},
    )
    httpx.post(f"{api}/v1/auth/revoke", data={"token": rotated["access_token"]})
    for svc in ("api", "auth", "users"):
        stack.stop(svc)

    assert stack.config.log_dir is not None
    text = "".join(p.read_text() for p in sorted(stack.config.log_dir.glob("*.log")))
    secrets = [
        password,
        new_password,
        tokens["access_token"],
        tokens["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
        "$argon2id$",
    ]
    for secret in secrets:
        assert secret not in text, f"a secret reached the logs: {secret[:12]}..."

    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    audit = {e["event"]: e for e in events if e.get("audit")}
    for event in (
        "user.created",
        "login.failure",
        "login.success",
        "token.issued",
        "token.refreshed",
        "token.reuse_detected",
        "token.revoked",
    ):
        assert event in audit, f"missing audit event {event}"
    assert audit["token.reuse_detected"]["user_id"] == user_id
    assert audit["token.issued"]["client_ip"] == "127.0.0.1"
    assert audit["token.issued"]["trace_id"]
