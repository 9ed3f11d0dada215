"""outbox claims: an item being delivered is marked before the CRM call, so a crash cannot fire it twice

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-24

A trigger whose delivery was started (``claimed_at`` set) but never confirmed is checked against the CRM
before it is sent again. Both columns are nullable, so existing rows need no backfill: an unclaimed item
has never been sent.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable, no default): SQLite and PostgreSQL both do it in place, no table rebuild
    op.add_column("outbox", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox", sa.Column("claimed_by", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:  # SQLite drops columns only by rebuilding the table
        batch.drop_column("claimed_by")
        batch.drop_column("claimed_at")
