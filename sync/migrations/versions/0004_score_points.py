"""score points: the raw total beside the 0..100 score in the lead cache

Revision ID: 0004_score_points
Revises: 0005_models
Create Date: 2026-01-12

``scores.points`` is the unclamped total after part caps (``scoring.Score.points``): leads whose penalties
outweigh their points all score 0, and the points keep them apart for ranking. Nullable, no backfill: a row
scored before this revision has no points until its lead is scored again (the rounded parts would only
approximate them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004_score_points"
down_revision: str | Sequence[str] | None = "0005_models"  # the head when it was added
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable, no default): in place on SQLite and PostgreSQL
    op.add_column("scores", sa.Column("points", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scores") as batch:  # SQLite drops columns only by rebuilding the table
        batch.drop_column("points")
