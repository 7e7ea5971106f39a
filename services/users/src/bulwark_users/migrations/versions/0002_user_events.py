"""user events outbox

Revision ID: users_0002
Revises: users_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "users_0002"
down_revision: str | None = "users_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_user_events"),
    )
    op.create_index("ix_user_events_unpublished", "user_events", ["published_at", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_user_events_unpublished", table_name="user_events")
    op.drop_table("user_events")
