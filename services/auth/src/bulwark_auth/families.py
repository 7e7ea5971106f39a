"""Refresh-token rows in PostgreSQL: lookup, usability, and revocation by family or user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.orm import Session

from bulwark_auth.models import RefreshToken as TokenRow
from bulwark_common.db import Database

# A Core INSERT on the table with bound parameters: compiled once and cached, where the ORM
# unit of work or .values() would rebuild and coerce the statement on every token.
_INSERT_TOKEN = insert(cast(Table, TokenRow.__table__))


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def find(session: Session, token_hash: str) -> TokenRow | None:
    return session.execute(
        select(TokenRow).where(TokenRow.token_hash == token_hash)
    ).scalar_one_or_none()


def usable(session: Session, row: TokenRow, now: datetime) -> bool:
    if row.used_at is not None or row.revoked_at is not None:
        return False
    if utc(row.expires_at) <= now:
        return False
    # Revocation is sticky per family: a row added after a family was revoked (a rotation
    # racing the revocation) is still refused, because older rows stay revoked.
    revoked = session.execute(
        select(TokenRow.id)
        .where(TokenRow.family_id == row.family_id, TokenRow.revoked_at.is_not(None))
        .limit(1)
    ).first()
    return revoked is None


def insert_row(db: Session | Connection, values: dict[str, Any]) -> None:
    db.execute(_INSERT_TOKEN, values)


def revoke_family_in(session: Session, family_id: str, now: datetime) -> None:
    session.execute(
        update(TokenRow)
        .where(TokenRow.family_id == family_id, TokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def revoke_family(db: Database, family_id: str, now: datetime) -> None:
    with db.transaction() as session:
        revoke_family_in(session, family_id, now)


def revoke_user_before(db: Database, user_id: str, before: float, now: datetime) -> None:
    cutoff = datetime.fromtimestamp(before, UTC)
    with db.transaction() as session:
        session.execute(
            update(TokenRow)
            .where(
                TokenRow.user_id == user_id,
                TokenRow.issued_at <= cutoff,
                TokenRow.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
