"""initial schema: runs, watermarks, lead cache, scores, written state, failed writes, outbox, leases

Revision ID: 0001
Revises:
Create Date: 2025-11-23

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(200), nullable=False),
        _ts("started_at", nullable=False),
        _ts("finished_at", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.CheckConstraint("status IN ('running', 'ok', 'failed', 'stopped')", name="ck_runs_status"),
    )
    op.create_index("ix_runs_job_started_at", "runs", ["job", "started_at"])

    op.create_table(
        "watermarks",
        sa.Column("stream", sa.String(200), nullable=False),
        _ts("value", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("stream", name="pk_watermarks"),
    )

    op.create_table(
        "leads",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_lower", sa.Text(), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("activities", sa.JSON(), nullable=False),
        _ts("updated_at", nullable=True),
        _ts("cached_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_leads"),
    )
    op.create_index("ix_leads_email_lower", "leads", ["email_lower"])

    op.create_table(
        "scores",
        sa.Column("lead_id", sa.String(255), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("fit", sa.Integer(), nullable=False),
        sa.Column("engagement", sa.Integer(), nullable=False),
        sa.Column("penalties", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(32), nullable=False),
        sa.Column("qualified", sa.Boolean(), nullable=False),
        _ts("qualified_at", nullable=True),
        sa.Column("hits", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("rules_version", sa.String(255), nullable=False),
        _ts("scored_at", nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name="pk_scores"),
    )

    op.create_table(
        "written",
        sa.Column("lead_id", sa.String(255), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name="pk_written"),
    )

    op.create_table(
        "failed_writes",
        sa.Column("lead_id", sa.String(255), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("retriable", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("first_failed_at", nullable=False),
        _ts("last_failed_at", nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name="pk_failed_writes"),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(255), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        _ts("qualified_at", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("done_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        # exactly one trigger per qualification, however often it is enqueued
        sa.UniqueConstraint("lead_id", "qualified_at", name="uq_outbox_lead_id_qualified_at"),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name="ck_outbox_status"),
    )
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])

    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        _ts("acquired_at", nullable=False),
        _ts("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_outbox_status_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("failed_writes")
    op.drop_table("written")
    op.drop_table("scores")
    op.drop_index("ix_leads_email_lower", table_name="leads")
    op.drop_table("leads")
    op.drop_table("watermarks")
    op.drop_index("ix_runs_job_started_at", table_name="runs")
    op.drop_table("runs")
