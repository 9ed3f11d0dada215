"""Score history: a row per lead and arm when its total, grade or qualification changes (compact by design).

Evaluation needs the score a lead had *before* its outcome; the current score alone would include the
engagement of the sales cycle itself. Rows are only appended, never updated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, ColumnElement, Connection, Integer, cast, func, select

from sync.state.engine import Database, aware, chunks, unique
from sync.state.records import HistoryRow, from_row
from sync.state.schema import ARMS, t_score_history

_KEY = ("total", "grade", "qualified")


class HistoryColumns(NamedTuple):
    """One page of history as columns (tuples of plain values): what a vectorised reader needs, no row objects."""

    lead_ids: Sequence[str]
    #: microseconds since 1970-01-01 UTC
    at_us: Sequence[int]
    totals: Sequence[int]
    grades: Sequence[str]
    qualified: Sequence[bool]
    arms: Sequence[str]


def epoch_us(column: ColumnElement[Any], dialect: str) -> ColumnElement[int]:
    """A UTCDateTime column as integer microseconds since the epoch, computed by the database.

    Decoding a million timestamps into aware ``datetime`` objects in Python costs seconds; an integer is exact
    (SQLite keeps UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``; PostgreSQL's ``extract`` is numeric since 14).
    """
    if dialect == "sqlite":
        seconds = cast(func.strftime("%s", column), Integer)
        micros = cast(func.substr(column, 21, 6), Integer)  # '' (no fraction) casts to 0
        return seconds * 1_000_000 + micros
    return cast(func.round(func.extract("epoch", column) * 1_000_000), BigInteger)


def _same(a: HistoryRow, b: HistoryRow) -> bool:
    return (a.total, a.grade, bool(a.qualified)) == (b.total, b.grade, bool(b.qualified))


class ScoreHistory(Database):
    """Append-only score history per lead and arm."""

    def append_history(self, rows: Sequence[HistoryRow]) -> int:
        """Append the rows that change their lead's last (total, grade, qualified); returns how many landed."""
        with self._begin() as conn:
            return self._append_history(conn, rows)

    def _append_history(self, conn: Connection, rows: Sequence[HistoryRow]) -> int:
        if not rows:
            return 0
        for row in rows:
            if row.arm not in ARMS:
                raise ValueError(f"score history arm must be one of {', '.join(ARMS)}; got {row.arm!r}")
            aware(row.at, "score history at")
        added = 0
        for arm in dict.fromkeys(r.arm for r in rows):
            # the last row of a lead in this batch wins over earlier ones only if it changed from them
            batch = [r for r in rows if r.arm == arm]
            last = self._last_history(conn, [r.lead_id for r in batch], arm)
            fresh: list[dict[str, Any]] = []
            for row in sorted(batch, key=lambda r: r.at):
                previous = last.get(row.lead_id)
                if previous is not None and (_same(previous, row) or row.at < previous.at):
                    continue
                last[row.lead_id] = row
                fresh.append(
                    {
                        "lead_id": row.lead_id,
                        "at": row.at,
                        "total": row.total,
                        "grade": row.grade,
                        "qualified": bool(row.qualified),
                        "rules_version": row.rules_version,
                        "arm": arm,
                    }
                )
            for chunk in chunks(fresh, 1000):
                conn.execute(t_score_history.insert(), list(chunk))
            added += len(fresh)
        return added

    def _last_history(self, conn: Connection, lead_ids: Sequence[str], arm: str) -> dict[str, HistoryRow]:
        found: dict[str, HistoryRow] = {}
        h = t_score_history
        for chunk in chunks(unique(lead_ids)):
            ranked = (
                select(
                    h,
                    func.row_number()
                    .over(partition_by=h.c.lead_id, order_by=(h.c.at.desc(), h.c.id.desc()))
                    .label("n"),
                )
                .where(h.c.lead_id.in_(chunk), h.c.arm == arm)
                .subquery()
            )
            for r in conn.execute(select(ranked).where(ranked.c.n == 1)):
                found[r.lead_id] = from_row(HistoryRow, r)
        return found

    def last_history(self, lead_ids: Sequence[str], arm: str = "champion") -> dict[str, HistoryRow]:
        """Each lead's latest history row of ``arm`` (leads without history are absent)."""
        with self._begin(write=False) as conn:
            return self._last_history(conn, lead_ids, arm)

    def iter_history(self, *, arm: str | None = None, chunk_size: int = 10_000) -> Iterator[list[HistoryRow]]:
        """Every history row ordered by lead, then time, a whole number of leads per page.

        Pages are ranges of lead ids (``last < lead_id <= upto``, ``upto`` found by an index-only offset), one
        short transaction each: memory stays bounded and no page rescans the table (a keyset condition on
        (lead, at, id) would, on SQLite). A page may exceed ``chunk_size`` rows by one lead's rows.
        """
        h = t_score_history
        for rows in self._history_pages(list(h.c), arm, chunk_size):
            yield [
                HistoryRow(r.lead_id, r.at, r.total, r.grade, bool(r.qualified), r.rules_version, r.arm) for r in rows
            ]

    def iter_history_columns(self, *, arm: str | None = None, chunk_size: int = 200_000) -> Iterator[HistoryColumns]:
        """Like :meth:`iter_history` (same order, whole leads per page) but as plain columns, timestamps as
        integer microseconds: evaluation of a million leads reads their history without a row object each.
        """
        h = t_score_history
        columns = [h.c.lead_id, epoch_us(h.c.at, self._dialect), h.c.total, h.c.grade, h.c.qualified, h.c.arm]
        for rows in self._history_pages(columns, arm, chunk_size):
            ids, ats, totals, grades, qualified, arms = zip(*rows, strict=True)
            yield HistoryColumns(ids, ats, totals, grades, tuple(map(bool, qualified)), arms)

    def _history_pages(self, columns: list[Any], arm: str | None, chunk_size: int) -> Iterator[Sequence[Any]]:
        """The paging both readers share: ranges of whole leads in (lead, at, id) order, non-empty pages only."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        h = t_score_history
        last: str | None = None
        while True:
            bound = select(h.c.lead_id).order_by(h.c.lead_id).offset(chunk_size - 1).limit(1)
            query = select(*columns).order_by(h.c.lead_id, h.c.at, h.c.id)
            if arm is not None:
                bound = bound.where(h.c.arm == arm)
                query = query.where(h.c.arm == arm)
            if last is not None:
                bound = bound.where(h.c.lead_id > last)
                query = query.where(h.c.lead_id > last)
            with self._begin(write=False) as conn:
                upto = conn.execute(bound).scalar()
                if upto is not None:
                    query = query.where(h.c.lead_id <= upto)
                rows = conn.execute(query).fetchall()
            if rows:
                yield rows
            if upto is None or not rows:
                return
            last = upto

    def count_history(self, arm: str | None = None) -> int:
        query = select(func.count()).select_from(t_score_history)
        if arm is not None:
            query = query.where(t_score_history.c.arm == arm)
        with self._begin(write=False) as conn:
            return int(conn.execute(query).scalar_one())
