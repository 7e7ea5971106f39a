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
from bulwark_devstack.stack import Stack, StackConfig

StackFactory = Callable[..., Stack]


@pytest.fixture(scope="session")
def stack_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StackFactory]:
    """Start a stack with extra environment; every stack started is stopped at the end."""
    redis_url = os.environ.get("BULWARK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    pg_admin = os.environ.get(
        "BULWARK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    try:
        infra.require_redis(redis_url)
        infra.require_postgres(pg_admin)
    except infra.MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)

    with contextlib.ExitStack() as cleanup:

        def start(env: dict[str, dict[str, str]] | None = None, redis: str | None = None) -> Stack:
            root: Path = tmp_path_factory.mktemp("stack")
            prefix = f"test:{uuid.uuid4().hex[:12]}:"
            dbs = {
                svc: cleanup.enter_context(infra.temporary_database(pg_admin))
                for svc in ("users", "auth", "api")
            }
            config = StackConfig(
                data_dir=root / "data",
                redis_url=redis or redis_url,
                redis_prefix=prefix,
                database_urls=dict(dbs),
                env=env or {},
                log_dir=root / "logs",
            )
            stack = Stack(config)
            cleanup.callback(infra.drop_prefix, redis or redis_url, prefix)
            cleanup.callback(stack.stop_all)
            stack.start_all()
            stack.wait_ready(timeout=90)
            return stack

        yield start
