"""runs.status 'partial': a pass that finished but refused some of the CRM's records

Revision ID: 0007_runs_partial
Revises: 0006_lease_epoch
Create Date: 2026-12-04

A record the CRM sent malformed (an id of the wrong type, a value over the size limit, an unparseable page
element) is refused on its own; the rest of the pass goes on. Such a pass is neither ``ok`` (something was
not scored) nor ``failed`` (the watermark still moves for what was read), so it gets a status of its own that
``leadsync status`` and the metrics show.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_runs_partial"
down_revision: str | Sequence[str] | None = "0006_lease_epoch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WITH_PARTIAL = "status IN ('running', 'ok', 'partial', 'failed', 'stopped')"
_WITHOUT_PARTIAL = "status IN ('running', 'ok', 'failed', 'stopped')"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("ck_runs_status", type_="check")
        batch.create_check_constraint("ck_runs_status", _WITH_PARTIAL)


def downgrade() -> None:
    op.execute("UPDATE runs SET status = 'ok' WHERE status = 'partial'")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("ck_runs_status", type_="check")
        batch.create_check_constraint("ck_runs_status", _WITHOUT_PARTIAL)
