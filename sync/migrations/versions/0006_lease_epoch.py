"""lease epoch: a fencing token that grows with every change of a lease's holder

Revision ID: 0006_lease_epoch
Revises: 0004_score_points
Create Date: 2026-12-03

A replica that takes a job over bumps ``leases.epoch``; every state-store write of the job's holder checks
the epoch it took the lease with, so a replica that lost the lease without knowing (its lock connection
killed, its process stalled) has its late commits refused instead of overwriting its successor's state.
Released leases now stay as expired rows so that the epoch never goes back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006_lease_epoch"
down_revision: str | Sequence[str] | None = "0004_score_points"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("leases", sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("epoch")
