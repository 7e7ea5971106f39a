"""Suite-level fixtures: the three services as real processes on free ports, each with its
own PostgreSQL database and a private Redis key prefix, so tests run beside `make dev`."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bulwark_devstack import infra
from bulwark_devstack import vault as devvault
from bulwark_devstack.stack import Stack, StackConfig

StackFactory = Callable[..., Stack]


@pytest.fixture(scope="session")
def vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devvault.VaultServer]:
    """One real OpenBao dev server for the session (or BULWARK_TEST_VAULT_ADDR/_TOKEN)."""
    try:
        with devvault.dev_server(tmp_path_factory.mktemp("bao")) as server:
            yield server
    except infra.MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def stack_factory(
    tmp_path_factory: pytest.TempPathFactory, vault_server: devvault.VaultServer
) -> Iterator[StackFactory]:
    """Start a stack with extra environment. Each stack gets its own Vault prefix (policies,
    AppRoles, PKI and database roles) over its own databases, provisioned by deploy/vault/ as
    in a cluster. A stack lives until the end of the test module that started it (a running
    stack holds PostgreSQL connections, and the server allows 100), or of the session with
    `session=True`."""
    redis_url = os.environ.get("BULWARK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    pg_admin = os.environ.get(
        "BULWARK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    try:
        infra.require_redis(redis_url)
        infra.require_postgres(pg_admin)
    except infra.MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)

    with contextlib.ExitStack() as session_cleanup:

        def start(
            env: dict[str, dict[str, str]] | None = None,
            redis: str | None = None,
            vault_setup: dict[str, str] | None = None,
            session: bool = False,
        ) -> Stack:
            cleanup = contextlib.ExitStack()
            (session_cleanup.enter_context if session else _MODULE_STACKS.append)(cleanup)
            root: Path = tmp_path_factory.mktemp("stack")
            uid = uuid.uuid4().hex[:10]
            prefix = f"test:{uid}:"
            dbs = {
                svc: cleanup.enter_context(infra.temporary_database(pg_admin))
                for svc in ("users", "auth", "api")
            }
            kv = redis or redis_url
            # Left after the stack stopped, before its databases are dropped.
            vault = cleanup.enter_context(
                devvault.deployment(
                    vault_server,
                    f"t{uid}",
                    "bulwark-test",
                    dbs,
                    kv,
                    prefix,
                    root / "vault",
                    vault_setup,
                )
            )
            config = StackConfig(
                data_dir=root / "data",
                redis_url=kv,
                redis_prefix=prefix,
                database_urls=dict(dbs),
                env=env or {},
                log_dir=root / "logs",
                vault=vault,
            )
            stack = Stack(config)
            cleanup.callback(infra.drop_prefix, kv, prefix)
            cleanup.callback(stack.stop_all)
            stack.provision_keys()
            stack.start_all()
            stack.wait_ready(timeout=90)
            return stack

        yield start


# Stacks started by the current test module, stopped when it ends.
_MODULE_STACKS: list[contextlib.ExitStack] = []


@pytest.fixture(scope="module", autouse=True)
def _stop_module_stacks() -> Iterator[None]:
    yield
    while _MODULE_STACKS:
        _MODULE_STACKS.pop().close()
