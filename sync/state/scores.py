"""The last score per lead and the properties last written to the CRM (diff before write); soon score history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, cast, func, select
from sqlalchemy.sql.elements import ColumnElement

from sync.state.engine import Database, chunks
from sync.state.records import StoredScore, from_row, string_dict
from sync.state.schema import t_scores, t_written


class Scores(Database):
    """Scores and written state, per lead."""

    def save_scores(self, scores: Sequence[StoredScore]) -> None:
        with self._begin() as conn:
            self._save_scores(conn, scores)

    def _save_scores(self, conn: Connection, scores: Sequence[StoredScore]) -> None:
        if not scores:
            return
        by_id = {s.lead_id: s for s in scores}
        rows = [
            {
                "lead_id": s.lead_id,
                "total": s.total,
                "fit": s.fit,
                "engagement": s.engagement,
                "penalties": s.penalties,
                "grade": s.grade,
                "qualified": s.qualified,
                "qualified_at": s.qualified_at,
                "hits": [dict(h) for h in s.hits],
                "reasons": s.reasons,
                "rules_version": s.rules_version,
                "scored_at": s.scored_at,
                # only when known: a score without points leaves the column alone (and stores from before
                # revision 0004_score_points have none)
                **({"points": s.points} if s.points is not None else {}),
            }
            for s in by_id.values()
        ]
        if any("points" in row for row in rows):
            for row in rows:
                row.setdefault("points", None)
        ins = self._insert(t_scores)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_scores.c.lead_id],
            set_={name: ins.excluded[name] for name in rows[0] if name != "lead_id"},
        )
        for chunk in chunks(rows, 1000):
            conn.execute(stmt, list(chunk))

    def get_scores(self, lead_ids: Sequence[str]) -> dict[str, StoredScore]:
        rows = self._rows_with_keys(select(t_scores), t_scores.c.lead_id, lead_ids)
        return {r.lead_id: from_row(StoredScore, r) for r in rows}

    def get_written(self, lead_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """What was last written to the CRM, per lead (leads never written are absent)."""
        query = select(t_written.c.lead_id, t_written.c.properties)
        return {
            r.lead_id: string_dict(r.properties) for r in self._rows_with_keys(query, t_written.c.lead_id, lead_ids)
        }

    def record_written(self, written: Mapping[str, Mapping[str, str]]) -> None:
        """Merge the properties just written into each lead's stored dict (other keys are kept)."""
        with self._begin() as conn:
            self._record_written(conn, written)

    def _record_written(self, conn: Connection, written: Mapping[str, Mapping[str, str]]) -> None:
        if not written:
            return
        now = self._now()
        rows = [
            {"lead_id": lead_id, "properties": string_dict(props), "updated_at": now}
            for lead_id, props in written.items()
        ]
        ins = self._insert(t_written)
        merged: ColumnElement[Any]
        if self._dialect == "sqlite":
            # values are strings, never null, so RFC 7386 merge-patch is a plain key-wise merge
            merged = func.json_patch(t_written.c.properties, ins.excluded.properties)
        else:
            from sqlalchemy.dialects.postgresql import JSONB  # the PostgreSQL dialect only for a PostgreSQL store

            merged = cast(cast(t_written.c.properties, JSONB).op("||")(cast(ins.excluded.properties, JSONB)), JSON)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_written.c.lead_id],
            set_={"properties": merged, "updated_at": ins.excluded.updated_at},
        )
        for chunk in chunks(rows, 1000):
            conn.execute(stmt, list(chunk))
