"""The workflow-trigger outbox: exactly one item per qualification, claimed before delivery."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from sync.state.engine import Database, aware, chunks
from sync.state.records import OutboxItem, from_row
from sync.state.schema import OUTBOX_STATUSES, t_outbox


class Outbox(Database):
    """Workflow-trigger items and their delivery state."""

    def enqueue_triggers(self, items: Sequence[tuple[str, str | None, datetime]]) -> int:
        """Enqueue ``(lead_id, email, qualified_at)``; one item per (lead, qualified_at), ever.

        Returns how many were newly enqueued (duplicates of existing items are ignored).
        """
        with self._begin() as conn:
            return self._enqueue_triggers(conn, items)

    def _enqueue_triggers(self, conn: Connection, items: Sequence[tuple[str, str | None, datetime]]) -> int:
        if not items:
            return 0
        now = self._now()
        rows: dict[tuple[str, datetime], dict[str, Any]] = {}
        for lead_id, email, qualified_at in items:
            key = (lead_id, aware(qualified_at, f"trigger for {lead_id}: qualified_at"))
            rows.setdefault(
                key,
                {
                    "lead_id": lead_id,
                    "email": email,
                    "qualified_at": qualified_at,
                    "status": "pending",
                    "attempts": 0,
                    "last_error": None,
                    "created_at": now,
                    "done_at": None,
                },
            )
        stmt = (
            self._insert(t_outbox)
            .on_conflict_do_nothing(index_elements=[t_outbox.c.lead_id, t_outbox.c.qualified_at])
            .returning(t_outbox.c.id)
        )
        added = 0
        for chunk in chunks(list(rows.values()), 1000):
            added += len(conn.execute(stmt, list(chunk)).all())
        return added

    def pending_triggers(self, limit: int = 100) -> list[OutboxItem]:
        """Pending items, oldest first."""
        query = select(t_outbox).where(t_outbox.c.status == "pending").order_by(t_outbox.c.id).limit(limit)
        with self._begin(write=False) as conn:
            rows = conn.execute(query).all()
        return [from_row(OutboxItem, r) for r in rows]

    def outbox_items(self, *, status: str | None = None, limit: int = 100) -> list[OutboxItem]:
        """Outbox items (newest first), optionally of one status (for `leadsync status`)."""
        query = select(t_outbox).order_by(t_outbox.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(t_outbox.c.status == status)
        with self._begin(write=False) as conn:
            rows = conn.execute(query).all()
        return [from_row(OutboxItem, r) for r in rows]

    def claim_trigger(self, item: OutboxItem, owner: str) -> bool:
        """Mark a pending item as being delivered by ``owner``, before the CRM call.

        A compare-and-set on the ``claimed_at`` the caller read: False when another process claimed or
        finished it meanwhile (it must then not be sent). An item found already claimed was possibly
        delivered by a process that died before recording it: check the CRM before sending it again.
        """
        with self._begin() as conn:
            result = conn.execute(
                update(t_outbox)
                .where(
                    t_outbox.c.id == item.id,
                    t_outbox.c.status == "pending",
                    t_outbox.c.claimed_at.is_(None)
                    if item.claimed_at is None
                    else t_outbox.c.claimed_at == item.claimed_at,
                )
                .values(claimed_at=self._now(), claimed_by=owner)
            )
            return bool(result.rowcount)

    def mark_triggered(self, item_id: int) -> None:
        with self._begin() as conn:
            result = conn.execute(
                update(t_outbox)
                .where(t_outbox.c.id == item_id)
                .values(status="done", attempts=t_outbox.c.attempts + 1, done_at=self._now())
            )
            if result.rowcount == 0:
                raise KeyError(f"no outbox item with id {item_id}")

    def settle_pending_triggers(self) -> int:
        """Mark every pending item done in one statement: for a CRM whose triggers need no call (its
        automation reacts to the written properties), there is nothing to deliver and nothing to claim."""
        with self._begin() as conn:
            result = conn.execute(
                update(t_outbox)
                .where(t_outbox.c.status == "pending")
                .values(status="done", attempts=t_outbox.c.attempts + 1, done_at=self._now())
            )
            return int(result.rowcount)

    def mark_trigger_failed(self, item_id: int, error: str, *, final: bool, release: bool = False) -> None:
        """Count a failed attempt; ``final`` gives up (status ``failed``), else the item stays pending.

        ``release`` clears the claim: the attempt surely did not deliver (the CRM answered with an error), so
        the next one need not ask the CRM, or doubt, before sending.
        """
        values: dict[str, Any] = {
            "status": "failed" if final else "pending",
            "attempts": t_outbox.c.attempts + 1,
            "last_error": error,
        }
        if release:
            values |= {"claimed_at": None, "claimed_by": None}
        with self._begin() as conn:
            result = conn.execute(update(t_outbox).where(t_outbox.c.id == item_id).values(**values))
            if result.rowcount == 0:
                raise KeyError(f"no outbox item with id {item_id}")

    def outbox_counts(self) -> dict[str, int]:
        """Items per status; every status is present (0 when none)."""
        counts = dict.fromkeys(OUTBOX_STATUSES, 0)
        with self._begin(write=False) as conn:
            for status, n in conn.execute(select(t_outbox.c.status, func.count()).group_by(t_outbox.c.status)):
                counts[status] = int(n)
        return counts


def unconfirmed_delivery(crm: str, item: OutboxItem) -> str:
    """Why an interrupted trigger is not sent again, for ``leadsync status`` and the log."""
    at = item.claimed_at.isoformat() if item.claimed_at is not None else "?"
    return (
        f"delivery interrupted: {item.claimed_by or 'a process'} sent it at {at} and stopped before recording "
        f"the answer, and {crm} cannot tell whether it arrived; not sent again, so that it never fires twice "
        f"(check record {item.lead_id} in the CRM and run its automation by hand if it did not)"
    )
