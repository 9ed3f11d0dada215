"""score history and outcomes: the learning loop's memory (what each lead scored over time, who converted)

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-25

Two new tables, nothing existing changes: ``score_history`` gets a row when a lead's total, grade or
qualification changes (per arm: the champion rules, or a shadow challenger), ``outcomes`` the earliest
conversion the CRM shows for a lead. Evaluation reads the score a lead had *before* its outcome from them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "score_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(32), nullable=False),
        sa.Column("qualified", sa.Boolean(), nullable=False),
        sa.Column("rules_version", sa.String(255), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_score_history"),
        sa.CheckConstraint("arm IN ('champion', 'challenger')", name="ck_score_history_arm"),
    )
    op.create_index("ix_score_history_lead_id_arm_at", "score_history", ["lead_id", "arm", "at"])
    op.create_table(
        "outcomes",
        sa.Column("lead_id", sa.String(255), nullable=False),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name="pk_outcomes"),
    )


def downgrade() -> None:
    op.drop_table("outcomes")
    op.drop_index("ix_score_history_lead_id_arm_at", table_name="score_history")
    op.drop_table("score_history")
