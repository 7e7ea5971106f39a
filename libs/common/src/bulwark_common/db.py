"""SQLAlchemy 2 engines and Alembic migrations, the same way for every service.

`DATABASE_URL` selects PostgreSQL (driven by psycopg 3, sync and async); without it each
service keeps a SQLite file under its data directory. With Vault, the URL carries no
credentials: `use_credentials` puts the current dynamic credential into every new connection."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, exc, text
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from bulwark_common import metrics

# Stable constraint names, so Alembic migrations are the same on PostgreSQL and SQLite.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING)


def database_url(url: str | None, data_dir: Path, service: str, *, asyncio: bool = False) -> URL:
    """Normalise the configured URL to the drivers we ship."""
    if not url:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = (data_dir / f"{service}.db").resolve()
        return make_url(f"sqlite{'+aiosqlite' if asyncio else ''}:///{path}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite" if asyncio else "sqlite")
    raise ValueError(f"unsupported database backend {parsed.get_backend_name()!r}")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def engine_options(url: URL, *, autocommit: bool = False) -> dict[str, Any]:
    """Pool settings for one engine. `autocommit=True` is for single statements (one SELECT,
    one INSERT), which are atomic on their own and then skip the BEGIN and COMMIT/ROLLBACK
    round trips (psycopg sends each separately). Such an engine gets its own pool, always in
    autocommit and never reset on check-in: sharing the transactional pool (SQLAlchemy's
    `execution_options(isolation_level=...)`) would switch each connection's isolation level
    on check-out and back on check-in, measured at ~170 us of CPU per statement."""
    mode: dict[str, Any] = (
        {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}
    )
    if url.get_backend_name() == "sqlite":
        return mode
    # Fail fast when the database is gone instead of hanging a request. No pre-ping: it is a
    # round trip per checkout; a connection that died is invalidated on first use instead
    # (that request gets a 503) and connections are recycled before servers drop them.
    # Two pools per service (transactional and autocommit) of at most 20 each, all 20 kept
    # once opened (opened on demand): with 10 + 10 overflow, 16 concurrent requests closed
    # and reopened a connection (a login to PostgreSQL) on most checkouts.
    return {
        **mode,
        "pool_size": 20,
        "max_overflow": 0,
        "pool_timeout": 5,
        "pool_recycle": 1800,
        "connect_args": {"connect_timeout": 3},
    }


class Credentials(Protocol):
    """Short-lived database credentials (`bulwark_common.vault.DatabaseCredentials`)."""

    @property
    def generation(self) -> int:
        """Changes whenever `current()` starts returning a new credential."""
        ...

    def current(self) -> tuple[str, str]: ...

    def lease_duration(self) -> float: ...


_GENERATION = "bulwark_credential_generation"


def use_credentials(engine: Engine | AsyncEngine, credentials: Credentials) -> None:
    """Every new connection of `engine` logs in with the current credential, and a pooled
    connection opened with an older one is replaced at checkout (before the old role is
    revoked at the end of its lease), so a rotation fails no request. `pool_recycle` below
    the lease's life also bounds how long any pooled connection lives."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    def connect(_dialect: Any, record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        # Generation first: a rotation in between only retires this connection early.
        record.info[_GENERATION] = credentials.generation
        cparams["user"], cparams["password"] = credentials.current()

    def checkout(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.get(_GENERATION) != credentials.generation:
            raise exc.DisconnectionError("database credential rotated")

    event.listen(sync, "do_connect", connect)
    event.listen(sync, "checkout", checkout)
    recycle = max(1, int(min(1800, credentials.lease_duration() / 3)))
    sync.pool._recycle = recycle


def create_sync_engine(
    url: URL, *, autocommit: bool = False, credentials: Credentials | None = None
) -> Engine:
    engine = create_engine(url, **engine_options(url, autocommit=autocommit))
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if credentials is not None:
        use_credentials(engine, credentials)
    return engine


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


_PSYCOPG = psycopg.dialect()  # type: ignore[no-untyped-call]


def psycopg_sql(stmt: ClauseElement) -> str:
    """`stmt` as the SQL text `Database.fetch_row` runs on PostgreSQL (psycopg's dialect,
    named `%(name)s` parameters), so a hot read is written once, in Core. Call it once, at
    import: compiling (~125 us) costs more CPU than the whole read (~65 us)."""
    compiled = stmt.compile(dialect=_PSYCOPG)
    # Expanding (IN) and literal parameters are rendered per call: no fixed text.
    if not isinstance(compiled, SQLCompiler) or (
        compiled.literal_execute_params or compiled.post_compile_params
    ):
        raise ValueError("not a query with a fixed text")
    return compiled.string


class Database:
    """An engine and its session factory. `transaction()` commits or rolls back as a whole,
    so a failed request leaves nothing half-written.

    `reads()` and `connect()` are for work that is a single statement: they use a second
    engine in autocommit mode (see `engine_options`)."""

    def __init__(self, url: URL, credentials: Credentials | None = None) -> None:
        self.url = url
        self.engine = create_sync_engine(url, credentials=credentials)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._autocommit = create_sync_engine(url, autocommit=True, credentials=credentials)
        self._reads = sessionmaker(self._autocommit, expire_on_commit=False)
        metrics.track_pool("transaction", self.engine)
        metrics.track_pool("autocommit", self._autocommit)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    @contextmanager
    def reads(self) -> Iterator[Session]:
        """A session for one read statement, outside any transaction."""
        with self._reads() as session:
            yield session

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A Core connection in autocommit mode, for self-contained statements: no ORM
        session to set up and tear down on hot paths."""
        with self._autocommit.connect() as conn:
            yield conn

    @property
    def postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    def fetch_row(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of one self-contained query, run on the autocommit pool's driver
        connection itself: on a hot primary-key read SQLAlchemy's Connection, execution
        context and result cost more CPU than the driver and the round trip (profiled on
        users' GetUser). `sql` is in the driver's dialect and parameter style (`psycopg_sql`
        makes it from a Core statement, once), and values come back as the driver makes
        them: no SQLAlchemy type processing. Errors come out as SQLAlchemy's, as from
        `connect()`, and a connection found dead leaves the pool."""
        engine = self._autocommit
        driver_error = engine.dialect.loaded_dbapi.Error
        try:
            fairy = engine.raw_connection()
        except driver_error as err:
            raise exc.DBAPIError.instance(
                sql, dict(params), err, driver_error, dialect=engine.dialect
            ) from err
        try:
            cursor = fairy.cursor()
            try:
                cursor.execute(sql, params)
                row: tuple[Any, ...] | None = cursor.fetchone()
                return row
            finally:
                cursor.close()
        except driver_error as err:
            gone = engine.dialect.is_disconnect(err, fairy.dbapi_connection, None)
            if gone:
                fairy.invalidate(err)
            raise exc.DBAPIError.instance(
                sql,
                dict(params),
                err,
                driver_error,
                connection_invalidated=gone,
                dialect=engine.dialect,
            ) from err
        finally:
            fairy.close()

    def ping(self) -> None:
        ping(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        self._autocommit.dispose()


def owner_role(url: URL) -> str:
    """The stable NOLOGIN role owning a service database's schema
    (deploy/vault/postgres-bootstrap.sql)."""
    return f"{url.database}_owner"


def alembic_config(
    script_location: Path,
    url: URL,
    *,
    owner_role: str | None = None,
    credentials: Credentials | None = None,
) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["url"] = url
    cfg.attributes["owner_role"] = owner_role
    cfg.attributes["credentials"] = credentials
    return cfg


def upgrade(
    script_location: Path,
    url: URL,
    *,
    owner_role: str | None = None,
    credentials: Credentials | None = None,
) -> None:
    """Apply every migration: `<svc> migrate` in production, on startup in dev. With
    `owner_role` the migrations run as that role (`SET ROLE`), so what they create is owned
    by it and never by the short-lived Vault user in `credentials`."""
    cfg = alembic_config(script_location, url, owner_role=owner_role, credentials=credentials)
    command.upgrade(cfg, "head")


def run_alembic_env(target_metadata: MetaData, service: str) -> None:
    """The body of every service's migrations/env.py (online mode only). Each service keeps
    its own version table, so even a database shared by mistake never confuses histories."""
    from alembic import context

    url = context.config.attributes["url"]
    owner = context.config.attributes.get("owner_role")
    engine = create_sync_engine(url, credentials=context.config.attributes.get("credentials"))
    with engine.connect() as connection:
        if owner:
            role = connection.dialect.identifier_preparer.quote(owner)
            connection.execute(text(f"SET ROLE {role}"))
            connection.commit()  # SET ROLE lasts for the session; alembic opens its own
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=url.get_backend_name() == "sqlite",
            compare_type=True,
            version_table=f"alembic_version_{service}",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
