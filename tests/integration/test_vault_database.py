"""Dynamic PostgreSQL credentials: Vault-created roles, one database each, schema owned by
the stable owner role, DML-only runtime role, and rotation under load with zero failures."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from bulwark_common import db as common_db
from bulwark_devstack.vault import bare_url
from bulwark_devstack.vault_testing import VaultStack, VaultStackFactory
from bulwark_users.models import MIGRATIONS


def _roles(admin_url: str, like: str) -> set[str]:
    with psycopg.connect(admin_url) as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (like,))
        return {r[0] for r in rows}


def _connect(url: str, user: str, password: str) -> psycopg.Connection:
    u = make_url(url)
    return psycopg.connect(
        host=u.host, port=u.port, dbname=u.database, user=user, password=password
    )


def test_dynamic_roles_touch_only_their_own_database(vault_stack: VaultStack) -> None:
    vault = vault_stack.connect("users")
    users = vault.database_credentials()
    user, password = users.current()
    assert user.startswith(f"v-{vault_stack.prefix}-users-")
    admin = vault_stack.databases["users"]
    assert user in _roles(admin, "v-%")
    assert users.seconds_to_expiry() > 0

    with _connect(admin, user, password) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (user,)
    for other in ("auth", "api"):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            _connect(vault_stack.databases[other], user, password)

    # Closing with revoke ends the token's leases: Vault drops the role now, not at max TTL.
    vault.close(revoke=True)
    deadline = time.monotonic() + 10
    while user in _roles(admin, "v-%"):
        assert time.monotonic() < deadline, "the role outlived its revoked token"
        time.sleep(0.1)


def test_migrations_create_tables_owned_by_the_owner_role(
    vault_stack: VaultStack, tmp_path: Path
) -> None:
    vault = vault_stack.connect("users")
    admin = vault_stack.databases["users"]
    url = common_db.database_url(bare_url(admin), tmp_path, "users")
    migrate = vault.database_credentials(f"{vault_stack.prefix}-users-migrate")
    common_db.upgrade(MIGRATIONS, url, owner_role=common_db.owner_role(url), credentials=migrate)

    with psycopg.connect(admin) as conn:
        owners = dict(
            conn.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
        )
    assert "users" in owners
    assert set(owners.values()) == {f"{url.database}_owner"}

    # The runtime role reads and writes rows but changes no schema.
    runtime = common_db.Database(url, credentials=vault.database_credentials())
    try:
        with runtime.connect() as conn:
            conn.execute(text("SELECT count(*) FROM users")).scalar_one()
            conn.execute(text("DELETE FROM users WHERE false"))
            version = "UPDATE alembic_version_users SET version_num = version_num"
            assert conn.execute(text(version)).rowcount == 1
            for ddl in (
                "CREATE TABLE sneaky (id int)",
                "DROP TABLE users",
                "ALTER TABLE users ADD x int",
            ):
                with pytest.raises(ProgrammingError, match=r"permission denied|must be owner"):
                    conn.execute(text(ddl))
    finally:
        runtime.dispose()


def test_async_engines_log_in_with_the_current_credential(
    vault_stack: VaultStack, tmp_path: Path
) -> None:
    creds = vault_stack.connect("api").database_credentials()
    url = common_db.database_url(bare_url(vault_stack.databases["api"]), tmp_path, "api")
    engine = create_async_engine(url, **common_db.engine_options(url))
    common_db.use_credentials(engine, creds)

    async def who() -> str:
        async with engine.connect() as conn:
            return str((await conn.execute(text("SELECT current_user"))).scalar_one())

    try:
        assert asyncio.run(who()) == creds.current()[0]
    finally:
        asyncio.run(engine.dispose())


def test_rotation_under_load_fails_no_query(
    vault_stack_factory: VaultStackFactory, tmp_path: Path
) -> None:
    """Leases of 4 s capped at 8 s: the credential is re-issued every ~5 s and the old role is
    dropped by Vault when its lease ends, while four threads query without pause."""
    stack = vault_stack_factory({"BULWARK_SETUP_DB_TTL": "4s", "BULWARK_SETUP_DB_MAX_TTL": "8s"})
    creds = stack.connect("users").database_credentials()
    admin = stack.databases["users"]
    first_user = creds.current()[0]
    database = common_db.Database(
        common_db.database_url(bare_url(admin), tmp_path, "users"), credentials=creds
    )
    done = threading.Event()
    seen: set[str] = set()
    failures: list[BaseException] = []
    queries = [0]

    def hammer(transactional: bool) -> None:
        while not done.is_set():
            try:
                if transactional:
                    with database.transaction() as session:
                        user = session.execute(text("SELECT current_user")).scalar_one()
                else:
                    with database.connect() as conn:
                        user = conn.execute(text("SELECT current_user")).scalar_one()
                seen.add(str(user))
                queries[0] += 1
            except Exception as exc:
                failures.append(exc)

    threads = [threading.Thread(target=hammer, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 40
        # Two rotations, the newest credential in use, and the first role dropped by Vault
        # at the end of its lease.
        while (
            creds.generation < 3
            or creds.current()[0] not in seen
            or first_user in _roles(admin, "v-%")
        ):
            assert time.monotonic() < deadline, "no rotation and revocation within 40 s"
            time.sleep(0.2)
    finally:
        done.set()
        for t in threads:
            t.join()
        database.dispose()
    assert not failures, f"{len(failures)} failed of {queries[0]}: {failures[:3]}"
    assert len(seen) >= 3 and first_user in seen
    assert queries[0] > 100
