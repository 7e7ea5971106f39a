"""api's own database: the items table. Async engine on the request path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bulwark_common import db as common_db
from bulwark_common import metrics

MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    metadata = common_db.make_metadata()


def _now() -> datetime:
    return datetime.now(UTC)


class Item(Base):
    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    owner_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    # Keyset pagination: the caller's items, newest first.
    __table_args__ = (Index("ix_items_owner_created", "owner_id", "created_at", "id"),)


def async_engine(
    url: str | None,
    data_dir: Path,
    *,
    autocommit: bool = False,
    credentials: common_db.Credentials | None = None,
) -> AsyncEngine:
    aurl = common_db.database_url(url, data_dir, "api", asyncio=True)
    engine = create_async_engine(aurl, **common_db.engine_options(aurl, autocommit=autocommit))
    if credentials is not None and aurl.get_backend_name() == "postgresql":
        common_db.use_credentials(engine, credentials)
    metrics.track_pool("autocommit" if autocommit else "transaction", engine.sync_engine)
    return engine


def sync_url(url: str | None, data_dir: Path) -> URL:
    return common_db.database_url(url, data_dir, "api")


def sessions(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    return async_sessionmaker(engine, expire_on_commit=False)


def migrate(url: str | None, data_dir: Path) -> None:
    common_db.upgrade(MIGRATIONS, common_db.database_url(url, data_dir, "api"))
