"""Vault lost while api still holds a valid token: api keeps serving and its management
/readyz stays 200 but lists the failing renewal under `warnings`; once Vault is back the
warning clears. Only api reaches Vault through the gate: users and auth keep theirs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from bulwark_devstack import testkit
from bulwark_devstack import vault as devvault
from bulwark_devstack.gate import Gate


def test_readyz_lists_a_failing_vault_renewal_while_still_ready(
    stack_factory: Callable[..., Any], vault_server: devvault.VaultServer
) -> None:
    gate = Gate(vault_server.addr)
    gate.open()
    try:
        # A short token life: renewed 8 s after login, still valid 4 s after a failed renewal.
        stack = stack_factory(
            env={"api": {"VAULT_ADDR": gate.addr}},
            vault_setup={"BULWARK_SETUP_TOKEN_TTL": "12s", "BULWARK_SETUP_TOKEN_MAX_TTL": "1h"},
        )
        url = f"http://127.0.0.1:{stack.config.management_port}/readyz"
        before = httpx.get(url, timeout=5).json()
        assert before["status"] == "ok" and before["warnings"] == [], before

        gate.shut()
        seen: list[dict[str, Any]] = []

        def warned() -> bool:
            seen.append(httpx.get(url, timeout=5).json())
            return bool(seen[-1]["warnings"])

        assert testkit.until(warned, 15), seen[-1]
        body = seen[-1]
        assert body["status"] == "ok" and body["checks"]["vault"] == "ok", body
        expected = f"degraded: token renewal failing (vault unreachable at {gate.addr}); valid "
        assert any(w.startswith(expected) for w in body["warnings"]), body
        assert vault_server.root_token not in str(body)
        # Still serving on what it holds: a public read that needs only api's own secrets.
        assert httpx.get(f"{stack.config.api_url}/readyz", timeout=5).status_code == 200

        gate.open()
        assert testkit.until(lambda: httpx.get(url, timeout=5).json()["warnings"] == [], 15)
    finally:
        gate.stop()
