"""A real OpenBao for the suite: one `bao server -dev` per session (or BULWARK_TEST_VAULT_ADDR
with BULWARK_TEST_VAULT_TOKEN), and a private deployment prefix per test, provisioned with
deploy/vault/ over fresh PostgreSQL databases and a private Redis key prefix."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from bulwark_devstack import infra
from bulwark_devstack import vault as devvault
from bulwark_devstack.vault_testing import VaultStack, VaultStackFactory


@pytest.fixture
def vault_stack_factory(
    vault_server: devvault.VaultServer,
    postgres_admin_url: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> Iterator[VaultStackFactory]:
    """`make(setup_env={...})` provisions a fresh prefix; everything is removed afterwards."""
    with contextlib.ExitStack() as cleanup:

        def make(setup_env: Mapping[str, str] | None = None) -> VaultStack:
            dbs = {
                svc: cleanup.enter_context(infra.temporary_database(postgres_admin_url))
                for svc in devvault.SERVICES
            }
            prefix = f"t{uuid.uuid4().hex[:10]}"
            cleanup.callback(
                devvault.teardown,
                vault_server.addr,
                vault_server.root_token,
                prefix,
                dbs,
                redis_url,
            )
            provisioned = devvault.provision(
                vault_server.addr,
                vault_server.root_token,
                prefix,
                f"ns-{prefix}",
                dbs,
                redis_url,
                redis_prefix,
                tmp_path / prefix,
                setup_env,
            )
            stack = VaultStack(vault_server, provisioned, dbs, redis_url, redis_prefix)
            cleanup.callback(stack.close)
            return stack

        yield make


@pytest.fixture
def vault_stack(vault_stack_factory: VaultStackFactory) -> VaultStack:
    return vault_stack_factory()
