"""Per-record CRM write failures, retried by the next pass (retriable) or shown by `leadsync status`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select

from sync.state.engine import Database, chunks, unique
from sync.state.records import FailedWrite, from_row, string_dict
from sync.state.schema import t_failed_writes


class FailedWrites(Database):
    """Failed writes, one row per lead."""

    def record_failures(self, failures: Sequence[tuple[str, str, Mapping[str, str], str, bool]]) -> None:
        """Record per-record CRM write errors ``(lead_id, object_type, properties, message, retriable)``.

        A lead already recorded gets the new properties/message/retriable and ``attempts + 1``.
        """
        if not failures:
            return
        now = self._now()
        rows: dict[str, dict[str, Any]] = {}
        for lead_id, object_type, properties, message, retriable in failures:
            previous = rows.get(lead_id)
            rows[lead_id] = {
                "lead_id": lead_id,
                "object_type": object_type,
                "properties": string_dict(properties),
                "message": message,
                "retriable": bool(retriable),
                "attempts": (previous["attempts"] if previous else 0) + 1,
                "first_failed_at": now,
                "last_failed_at": now,
            }
        ins = self._insert(t_failed_writes)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_failed_writes.c.lead_id],
            set_={
                "object_type": ins.excluded.object_type,
                "properties": ins.excluded.properties,
                "message": ins.excluded.message,
                "retriable": ins.excluded.retriable,
                "attempts": t_failed_writes.c.attempts + ins.excluded.attempts,
                "last_failed_at": ins.excluded.last_failed_at,
            },
        )
        with self._begin() as conn:
            for chunk in chunks(list(rows.values()), 1000):
                conn.execute(stmt, list(chunk))

    def failed_writes(self, *, retriable_only: bool = False, limit: int | None = None) -> list[FailedWrite]:
        """Recorded failures, oldest first."""
        query = select(t_failed_writes).order_by(t_failed_writes.c.first_failed_at, t_failed_writes.c.lead_id)
        if retriable_only:
            query = query.where(t_failed_writes.c.retriable.is_(True))
        if limit is not None:
            query = query.limit(limit)
        with self._begin(write=False) as conn:
            rows = conn.execute(query).all()
        return [from_row(FailedWrite, r) for r in rows]

    def failure_counts(self) -> dict[str, int]:
        """``{"retriable": n, "permanent": m}``."""
        counts = {"retriable": 0, "permanent": 0}
        with self._begin(write=False) as conn:
            query = select(t_failed_writes.c.retriable, func.count()).group_by(t_failed_writes.c.retriable)
            for retriable, n in conn.execute(query):
                counts["retriable" if retriable else "permanent"] = int(n)
        return counts

    def clear_failures(self, lead_ids: Sequence[str]) -> None:
        with self._begin() as conn:
            for chunk in chunks(unique(lead_ids)):
                conn.execute(delete(t_failed_writes).where(t_failed_writes.c.lead_id.in_(chunk)))
