"""The migration matches the model, and the service also runs on the SQLite default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bulwark_auth.models import Base, migrate
from bulwark_common.db import Database, database_url


def test_migration_matches_models(postgres_url: str, tmp_path: Path) -> None:
    db = Database(database_url(postgres_url, tmp_path, "auth"))
    try:
        migrate(db.url)
        with db.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"version_table": "alembic_version_auth"}),
                Base.metadata,
            )
            columns = {c["name"] for c in inspect(conn).get_columns("refresh_tokens")}
        assert diff == []
        assert "token" not in columns  # only the hash is stored
    finally:
        db.dispose()


def test_full_flow_on_sqlite(auth_factory: Any, redis_url: str, redis_prefix: str) -> None:
    with auth_factory(REDIS_URL=redis_url, BULWARK_REDIS_PREFIX=redis_prefix) as auth:
        assert auth.db.url.get_backend_name() == "sqlite"
        auth.users.add("alice")
        first = auth.login("alice")
        second = auth.refresh(first.refresh_token)
        with pytest.raises(grpc.RpcError) as reuse:
            auth.refresh(first.refresh_token)
        assert reuse.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as revoked:
            auth.refresh(second.refresh_token)  # the family was revoked
        assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED
