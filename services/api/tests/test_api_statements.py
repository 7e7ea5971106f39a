"""The hot statements' asyncpg pool on a real PostgreSQL: a statement that fails or is
interrupted never leaves its connection in the pool (statements.py)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, literal_column, select
from sqlalchemy.engine import make_url

from bulwark_api.statements import PgStatements

PID = select(func.pg_backend_pid().label("pid"))
SLOW = select(func.pg_sleep(literal_column("5")).label("slept"))
FAILS = select((literal_column("1") / literal_column("0")).label("boom"))  # division_by_zero


def reads_on(url: str) -> PgStatements:
    return PgStatements(make_url(url.replace("postgresql://", "postgresql+psycopg://")), None)


async def _pids_after(reads: PgStatements, interrupt: str) -> tuple[int, int]:
    first = await reads.one(PID, {})
    assert first is not None
    if interrupt == "cancelled":
        task = asyncio.create_task(reads.one(SLOW, {}))
        await asyncio.sleep(0.2)  # the statement is on the server (it sleeps 5 s)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        with pytest.raises(Exception, match="division by zero"):
            await reads.one(FAILS, {})
    second = await reads.one(PID, {})
    assert second is not None
    return first["pid"], second["pid"]


@pytest.mark.parametrize("interrupt", ["cancelled", "failed"])
def test_a_broken_statement_does_not_return_its_connection(
    postgres_url: str, interrupt: str
) -> None:
    async def scenario() -> tuple[int, int]:
        reads = reads_on(postgres_url)
        try:
            return await _pids_after(reads, interrupt)
        finally:
            await reads.close()

    first, second = asyncio.run(scenario())
    # One connection was open and idle before; the broken statement ran on it and it was
    # closed, so the read after it needed a new backend.
    assert first != second
