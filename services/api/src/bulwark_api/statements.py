"""The hot single statements (read one item, one keyset page; create an item): SELECTs and
an INSERT built with SQLAlchemy Core from the one table definition in `db.py`, executed on
PostgreSQL through an asyncpg pool.

Why not the SQLAlchemy engine: profiled under load, SQLAlchemy's async adaptation (greenlet
hops, result processing) and psycopg's per-execute work cost as much CPU as the rest of the
request; asyncpg runs each statement as a cached prepared statement with binary results.
Each statement is atomic on its own (autocommit: no BEGIN/COMMIT round trips). Writes of more
than one statement stay on the SQLAlchemy session (transactions, the ORM). Without PostgreSQL
(dev with SQLite) the same statements run on the SQLAlchemy autocommit engine.

Rows come back as mappings (column name -> value), datetimes timezone-aware (UTC)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import asyncpg
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Insert, Select

from bulwark_common.vault import DatabaseCredentials

Row = Mapping[str, Any]
Statement = Select[Any] | Insert
_DIALECT = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]
# At most this many connections on this pool (the transactional engine has its own).
POOL_MAX = 20


class Unavailable(Exception):
    """The database cannot answer (down, refusing, out of connections, timed out): a 503,
    like SQLAlchemy's OperationalError on the other paths (problems.py)."""


# asyncpg's "cannot talk to the database" errors; anything else (a bad query) is our bug.
_DOWN = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # revoked credential
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
    asyncpg.InternalClientError,  # a connection left broken by an outage (closed: _run)
)


class Statements(Protocol):
    async def one(self, stmt: Select[Any], params: Mapping[str, Any]) -> Row | None: ...

    async def all(self, stmt: Select[Any], params: Mapping[str, Any]) -> Sequence[Row]: ...

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> None: ...

    async def close(self) -> None: ...


class _Compiled:
    """A Core statement as asyncpg SQL ($1, $2, ...) and the order of its parameters."""

    __slots__ = ("names", "sql")

    def __init__(self, stmt: Statement) -> None:
        compiled = stmt.compile(dialect=_DIALECT)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())


class PgStatements:
    """asyncpg pool on api's database. With Vault, every new connection logs in with the
    current dynamic credential and a rotation expires the pooled ones (replaced at their next
    checkout, those in use when released), before the old role is revoked."""

    def __init__(self, url: URL, credentials: DatabaseCredentials | None) -> None:
        self._url = url.set(drivername="postgresql")
        self._credentials = credentials
        self._pool: asyncpg.Pool | None = None
        self._compiled: dict[int, tuple[Statement, _Compiled]] = {}
        self._opening = asyncio.Lock()

    async def _connect(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        if self._credentials is not None:
            kwargs["user"], kwargs["password"] = self._credentials.current()
        try:
            return await asyncpg.connect(*args, **kwargs)
        except (*_DOWN, asyncpg.PostgresError) as exc:
            # Whatever refuses a new connection (the database gone too) is "down", as
            # psycopg's OperationalError is on the SQLAlchemy paths.
            raise Unavailable(type(exc).__name__) from exc

    async def _pool_(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                dsn = self._url.render_as_string(hide_password=False)
                self._pool = await asyncpg.create_pool(
                    dsn,
                    min_size=0,  # opened lazily: start-up needs no database
                    max_size=POOL_MAX,
                    connect=self._connect,
                    # Autocommit single statements leave no session state: nothing to reset
                    # (the default reset is one more round trip per request).
                    reset=_no_reset,
                    timeout=3,
                    command_timeout=5,
                    max_inactive_connection_lifetime=300,
                )
                if self._credentials is not None:
                    loop = asyncio.get_running_loop()
                    pool = self._pool

                    def renewed() -> None:  # the renewer's thread: the pool is the loop's
                        loop.call_soon_threadsafe(pool.expire_connections)

                    self._credentials.subscribe(renewed)
            return self._pool

    def _sql(self, stmt: Statement) -> _Compiled:
        # Keyed by identity: the routes pass prebuilt statements (held alive by the cache).
        found = self._compiled.get(id(stmt))
        if found is None or found[0] is not stmt:
            found = self._compiled[id(stmt)] = (stmt, _Compiled(stmt))
        return found[1]

    async def _run(self, stmt: Statement, params: Mapping[str, Any], how: str) -> Any:
        c = self._sql(stmt)
        args = [params[n] for n in c.names]
        try:
            pool = self._pool or await self._pool_()
            async with pool.acquire() as conn:
                try:
                    return await getattr(conn, how)(c.sql, *args)
                except BaseException:
                    # Without a reset on release (see the pool), a connection whose
                    # statement failed or was interrupted could go back to the pool in the
                    # middle of the protocol ("another operation is in progress", seen
                    # under a PostgreSQL outage): it is closed instead.
                    conn.terminate()
                    raise
        except _DOWN as exc:
            raise Unavailable(type(exc).__name__) from exc

    async def one(self, stmt: Select[Any], params: Mapping[str, Any]) -> Row | None:
        row: Row | None = await self._run(stmt, params, "fetchrow")
        return row

    async def all(self, stmt: Select[Any], params: Mapping[str, Any]) -> Sequence[Row]:
        rows: Sequence[Row] = await self._run(stmt, params, "fetch")
        return rows

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> None:
        await self._run(stmt, params, "execute")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


class EngineStatements:
    """The same statements on the SQLAlchemy autocommit engine (SQLite in dev)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def one(self, stmt: Select[Any], params: Mapping[str, Any]) -> Row | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt, dict(params))).first()
        return None if row is None else row._mapping

    async def all(self, stmt: Select[Any], params: Mapping[str, Any]) -> Sequence[Row]:
        async with self._engine.connect() as conn:
            return [r._mapping for r in (await conn.execute(stmt, dict(params))).all()]

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(stmt, dict(params))

    async def close(self) -> None:
        return None  # the engine is the caller's (Backends.single)


def open_statements(
    url: URL, engine: AsyncEngine, credentials: DatabaseCredentials | None
) -> Statements:
    if url.get_backend_name() == "postgresql":
        return PgStatements(url, credentials)
    return EngineStatements(engine)
