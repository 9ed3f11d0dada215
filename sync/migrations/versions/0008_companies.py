"""companies: the primary associated companies of cached leads, so company fields cost no re-read

Revision ID: 0008_companies
Revises: 0007_runs_partial
Create Date: 2026-12-04

Two new tables, nothing existing changes: ``companies`` keeps the mapped properties of each company a
cached lead is associated with (HubSpot's primary company), as of its last read, and ``lead_companies``
which company each lead belongs to. A company that changes is read again by the incremental company
search, and its leads are rescored from the cache without reading them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008_companies"
down_revision: str | Sequence[str] | None = "0007_runs_partial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cached_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_companies"),
    )
    op.create_table(
        "lead_companies",
        sa.Column("lead_id", sa.String(255), nullable=False),
        sa.Column("company_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name="pk_lead_companies"),
    )
    op.create_index("ix_lead_companies_company_id", "lead_companies", ["company_id"])


def downgrade() -> None:
    op.drop_index("ix_lead_companies_company_id", table_name="lead_companies")
    op.drop_table("lead_companies")
    op.drop_table("companies")
