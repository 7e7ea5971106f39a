"""Database.fetch_row: the driver-level single-row read keeps connect()'s guarantees, and
runs Core statements compiled once by psycopg_sql."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import bindparam, column, select, table
from sqlalchemy.exc import OperationalError, ProgrammingError

from bulwark_common.db import Database, database_url, psycopg_sql


@pytest.fixture
def db(postgres_url: str) -> Iterator[Database]:
    database = Database(database_url(postgres_url, Path(), "t"))
    with database.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id text PRIMARY KEY, tags json, at timestamptz)")
        conn.exec_driver_sql("""INSERT INTO t VALUES ('a', '["x", "y"]', now())""")
    yield database
    database.dispose()


def test_fetch_row_returns_driver_values_or_none(db: Database) -> None:
    row = db.fetch_row("SELECT id, tags, at FROM t WHERE id = %(id)s", {"id": "a"})
    assert row is not None
    assert row[:2] == ("a", ["x", "y"])
    assert row[2].tzinfo is not None
    assert db.fetch_row("SELECT id FROM t WHERE id = %(id)s", {"id": "b"}) is None


def test_fetch_row_raises_sqlalchemy_errors(db: Database) -> None:
    with pytest.raises(ProgrammingError):
        db.fetch_row("SELECT nope FROM t", {})
    # The connection went back to the pool usable.
    assert db.fetch_row("SELECT 1", {}) == (1,)


def test_a_connection_killed_under_the_pool_is_replaced(db: Database, postgres_url: str) -> None:
    pid = db.fetch_row("SELECT pg_backend_pid()", {})
    assert pid is not None
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", pid)
    # The dead connection fails this read as a database outage (UNAVAILABLE to callers)...
    with pytest.raises(OperationalError) as failed:
        db.fetch_row("SELECT 1", {})
    assert failed.value.connection_invalidated
    # ...and is not handed out again.
    assert db.fetch_row("SELECT 1", {}) == (1,)


def test_a_core_statement_runs_as_psycopg_sql(db: Database) -> None:
    t = table("t", column("id"), column("tags"))
    sql = psycopg_sql(select(t.c.id, t.c.tags).where(t.c.id == bindparam("id")))
    assert db.fetch_row(sql, {"id": "a"}) == ("a", ["x", "y"])
    assert db.fetch_row(sql, {"id": "b"}) is None
    # An IN list is rendered per call, so it has no fixed text.
    with pytest.raises(ValueError):
        psycopg_sql(select(t.c.id).where(t.c.id.in_(bindparam("ids", expanding=True))))
