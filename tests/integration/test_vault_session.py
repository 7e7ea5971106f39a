"""The Vault session against a real OpenBao: AppRole login, token renewal and re-login at the
max TTL, and Vault going away (at start-up, and later) behind a TCP gate we control."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hvac
import pytest

from bulwark_common.settings import VaultConfig
from bulwark_common.vault import Vault, VaultUnavailable
from bulwark_devstack.gate import Gate
from bulwark_devstack.vault_testing import VaultStack, VaultStackFactory


@pytest.fixture
def gate(vault_stack: VaultStack) -> Iterator[Gate]:
    g = Gate(vault_stack.server.addr)
    yield g
    g.stop()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.05)


def test_approle_login_renews_then_logs_in_again_at_max_ttl(
    vault_stack_factory: VaultStackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = vault_stack_factory(
        {"BULWARK_SETUP_TOKEN_TTL": "3s", "BULWARK_SETUP_TOKEN_MAX_TTL": "7s"}
    )
    root = hvac.Client(url=stack.server.addr, token=stack.server.root_token)
    root.secrets.kv.v2.create_or_update_secret(f"{stack.prefix}/users/config", secret={"a": 1})
    vault = stack.connect("users")
    first_token = vault.client.token
    first_expiry = vault.token_expires_at

    wait_for("a renewal of the same token", lambda: vault.token_expires_at > first_expiry + 0.5)
    assert vault.client.token == first_token
    wait_for("a new login once renewal is capped", lambda: vault.client.token != first_token)
    assert vault.readiness() is None
    assert vault.kv_read("users/config") == {"a": 1}

    secret_id = Path(stack.provisioned.env["users"]["BULWARK_VAULT_SECRET_ID_FILE"]).read_text()
    for secret in (first_token, vault.client.token, secret_id, stack.server.root_token):
        assert secret not in caplog.text


def test_vault_unreachable_at_start_is_retried_and_reported(
    vault_stack: VaultStack, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bulwark.vault")
    vault = Vault(vault_stack.config("users", VAULT_ADDR=gate.addr), "users")
    login = threading.Thread(target=vault.login)
    login.start()
    try:
        wait_for("a failed attempt", lambda: "unreachable" in (vault.readiness() or ""))
        assert f"vault unreachable at {gate.addr}" in (vault.readiness() or "")
        wait_for("a second attempt", lambda: caplog.text.count("retrying in") >= 2)
        assert f"vault login: vault unreachable at {gate.addr}: retrying in " in caplog.text
        gate.open()
        login.join(timeout=40)
        assert not login.is_alive()
        assert vault.readiness() is None
        assert vault.client.auth.token.lookup_self()["data"]["ttl"] > 0
    finally:
        vault.close()
        login.join()


def test_login_gives_up_only_when_told_to_stop(tmp_path: Path) -> None:
    gate = Gate("http://127.0.0.1:9")  # never opened
    secret = tmp_path / "secret-id"
    secret.write_text("unused")
    config = VaultConfig(
        VAULT_ADDR=gate.addr, BULWARK_VAULT_ROLE_ID="r", BULWARK_VAULT_SECRET_ID_FILE=secret
    )
    stop = threading.Event()
    started = time.monotonic()
    threading.Timer(1.5, stop.set).start()
    try:
        with pytest.raises(VaultUnavailable):
            Vault.connect(config, "users", stop)
    finally:
        gate.stop()
    assert time.monotonic() - started >= 1.5


def test_vault_lost_later_keeps_credentials_until_they_expire(
    vault_stack_factory: VaultStackFactory,
) -> None:
    stack = vault_stack_factory(
        {"BULWARK_SETUP_TOKEN_TTL": "3s", "BULWARK_SETUP_TOKEN_MAX_TTL": "60s"}
    )
    gate = Gate(stack.server.addr)
    gate.open()
    try:
        vault = stack.connect("users", VAULT_ADDR=gate.addr)
        creds = vault.database_credentials()
        before = creds.current()

        gate.shut()
        wait_for("a failed renewal reported", lambda: bool(vault.warnings()))
        assert vault.readiness() is None  # still serving on what it has
        assert "vault unreachable" in vault.warnings()[0]
        wait_for("the token to expire", lambda: "token expired" in (vault.readiness() or ""))
        assert creds.current() == before  # kept, never blanked

        gate.open()
        wait_for("recovery", lambda: vault.readiness() is None and not vault.warnings())
        wait_for("credentials under the new token", lambda: creds.current() != before)
    finally:
        gate.stop()
