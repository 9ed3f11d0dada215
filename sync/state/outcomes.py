"""Outcomes: each lead's earliest conversion as the CRM shows it (idempotent; the earliest date wins)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Connection, func, select

from sync.state.engine import Database, aware, chunks, unique
from sync.state.history import epoch_us
from sync.state.records import StoredOutcome, from_row
from sync.state.schema import t_outcomes


class Outcomes(Database):
    """Who converted and when (one row per lead)."""

    def upsert_outcomes(self, outcomes: Sequence[StoredOutcome]) -> int:
        """Store outcomes; a lead's row changes only for an earlier conversion. Returns how many leads are new."""
        with self._begin() as conn:
            return self._upsert_outcomes(conn, outcomes)

    def _upsert_outcomes(self, conn: Connection, outcomes: Sequence[StoredOutcome]) -> int:
        if not outcomes:
            return 0
        earliest: dict[str, StoredOutcome] = {}
        for o in outcomes:
            aware(o.converted_at, "outcome converted_at")
            kept = earliest.get(o.lead_id)
            if kept is None or o.converted_at < kept.converted_at:
                earliest[o.lead_id] = o
        now = self._now()
        known = self._known(conn, list(earliest))
        rows = [
            {
                "lead_id": o.lead_id,
                "converted_at": o.converted_at,
                "source": o.source,
                "detail": dict(o.detail),
                "first_seen_at": now,
            }
            for o in earliest.values()
        ]
        ins = self._insert(t_outcomes)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_outcomes.c.lead_id],
            set_={name: ins.excluded[name] for name in ("converted_at", "source", "detail")},
            where=ins.excluded.converted_at < t_outcomes.c.converted_at,
        )
        for chunk in chunks(rows, 1000):
            conn.execute(stmt, list(chunk))
        return len(set(earliest) - known)

    def _known(self, conn: Connection, lead_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(unique(lead_ids)):
            found.update(conn.execute(select(t_outcomes.c.lead_id).where(t_outcomes.c.lead_id.in_(chunk))).scalars())
        return found

    def get_outcomes(self, lead_ids: Sequence[str]) -> dict[str, StoredOutcome]:
        rows = self._rows_with_keys(select(t_outcomes), t_outcomes.c.lead_id, lead_ids)
        return {r.lead_id: from_row(StoredOutcome, r) for r in rows}

    def iter_outcomes(self, chunk_size: int = 10_000) -> Iterator[list[StoredOutcome]]:
        """Every outcome, ordered by lead id, in keyset pages."""
        for rows in self._keyset_pages(select(t_outcomes), t_outcomes.c.lead_id, chunk_size):
            yield [from_row(StoredOutcome, r) for r in rows]

    def iter_outcome_columns(self, chunk_size: int = 200_000) -> Iterator[tuple[Sequence[str], Sequence[int]]]:
        """(lead ids, converted_at as integer microseconds since the epoch) pages, ordered by lead id."""
        o = t_outcomes
        query = select(o.c.lead_id, epoch_us(o.c.converted_at, self._dialect))
        for rows in self._keyset_pages(query, o.c.lead_id, chunk_size):
            ids, at = zip(*rows, strict=True)
            yield ids, at

    def count_outcomes(self) -> int:
        with self._begin(write=False) as conn:
            return int(conn.execute(select(func.count()).select_from(t_outcomes)).scalar_one())
