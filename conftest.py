"""Fixtures every test folder shares: real PostgreSQL databases and Redis key prefixes,
each private to one test, created here and removed afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from bulwark_devstack import infra


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("BULWARK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    infra.require_redis(url)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    infra.drop_prefix(redis_url, prefix)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get(
        "BULWARK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    infra.require_postgres(url)
    return url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test only."""
    with infra.temporary_database(postgres_admin_url) as url:
        yield url
