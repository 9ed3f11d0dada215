"""The lead cache: every lead read, so a rules change rescores without reading the CRM; values are bounded."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Text, cast, delete, func, select

from sync.state.engine import Database, chunks, log, unique
from sync.state.records import CachedLead, from_row
from sync.state.schema import t_failed_writes, t_lead_companies, t_leads, t_scores, t_written

#: longest string value kept in the lead cache unless the caller gives the CRM's own limit for the property
#: (HubSpot text properties hold at most 65,536 characters); longer values are cut and counted
MAX_VALUE_CHARS: Final = 65_536


def _bounded(value: Any, limit: int) -> tuple[Any, int]:
    """``value`` with every string in it cut to ``limit`` characters, and how many were cut."""
    if isinstance(value, str):
        return (value[:limit], 1) if len(value) > limit else (value, 0)
    if isinstance(value, dict):
        cut = 0
        items = {}
        for key, item in value.items():
            items[key], n = _bounded(item, limit)
            cut += n
        return items, cut
    if isinstance(value, list):
        cut = 0
        elements = []
        for item in value:
            bounded, n = _bounded(item, limit)
            elements.append(bounded)
            cut += n
        return elements, cut
    return value, 0


@dataclass(frozen=True)
class CacheChunk:
    """Cached leads read in bulk, column by column, with their stored qualification (hysteresis) state.

    ``properties`` and ``activities`` are each lead's JSON text as stored, decoded by the caller once per
    chunk (``json.loads``), not per rule set or per lead object.
    """

    ids: list[str]
    object_types: list[str]
    emails: list[str | None]
    properties: list[str]
    activities: list[str]
    #: the stored score's qualified flag (False when the lead has no stored score) and ``qualified_at``
    qualified: list[bool]
    qualified_at: list[datetime | None]

    def __len__(self) -> int:
        return len(self.ids)


class LeadCache(Database):
    """The local copy of every lead read (raw CRM properties and activities)."""

    def upsert_leads(self, leads: Sequence[CachedLead], *, max_chars: Mapping[str, int] | None = None) -> int:
        """Insert or replace cached leads (properties and activities are replaced whole).

        Every string value is stored up to a bound: ``max_chars[property]`` (the CRM's own limit for the
        property, when the caller knows it), else :data:`MAX_VALUE_CHARS`, so one hostile 20 MB value cannot
        bloat the store. Returns how many values were cut (also added to :attr:`values_truncated`).
        """
        if not leads:
            return 0
        with self._begin() as conn:
            return self._upsert_leads(conn, leads, max_chars)

    def _upsert_leads(
        self, conn: Connection, leads: Sequence[CachedLead], max_chars: Mapping[str, int] | None = None
    ) -> int:
        """:meth:`upsert_leads` inside the caller's transaction (a pass caches a lead with its score)."""
        if not leads:
            return 0
        now = self._now()
        by_id = {lead.id: lead for lead in leads}  # last one wins; one statement must not hit a row twice
        rows = []
        truncated = 0
        for lead in by_id.values():
            properties: dict[str, Any] = {}
            for name, value in lead.properties.items():
                limit = (max_chars or {}).get(name, MAX_VALUE_CHARS)
                properties[name], cut = _bounded(value, limit)
                if cut:
                    log.warning("state.value_truncated", lead_id=lead.id, property=name, max_chars=limit)
                truncated += cut
            activities, cut = _bounded([dict(a) for a in lead.activities], MAX_VALUE_CHARS)
            if cut:
                log.warning("state.value_truncated", lead_id=lead.id, property="activities", max_chars=MAX_VALUE_CHARS)
            truncated += cut
            rows.append(
                {
                    "id": lead.id,
                    "object_type": lead.object_type,
                    "email": lead.email,
                    "email_lower": lead.email.strip().lower() if lead.email else None,
                    "properties": properties,
                    "activities": activities,
                    "updated_at": lead.updated_at,
                    "cached_at": now,
                }
            )
        ins = self._insert(t_leads)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_leads.c.id],
            set_={name: ins.excluded[name] for name in rows[0] if name != "id"},
        )
        for chunk in chunks(rows, 1000):
            conn.execute(stmt, list(chunk))
        with self._counter_lock:
            self.values_truncated += truncated
        return truncated

    _LEAD_COLUMNS: Final = (
        t_leads.c.id,
        t_leads.c.object_type,
        t_leads.c.email,
        t_leads.c.properties,
        t_leads.c.activities,
        t_leads.c.updated_at,
    )

    def iter_leads(self, chunk_size: int = 1000) -> Iterator[list[CachedLead]]:
        """Every cached lead, in chunks of at most ``chunk_size``, ordered by id (keyset pages, one short
        transaction each: the caller may write to the store between chunks)."""
        for rows in self._keyset_pages(select(*self._LEAD_COLUMNS), t_leads.c.id, chunk_size):
            yield [from_row(CachedLead, r) for r in rows]

    def iter_lead_chunks(self, chunk_size: int = 5_000) -> Iterator[CacheChunk]:
        """Every cached lead in bulk: one keyset query per chunk (ordered by id, left-joined to its stored
        score's qualification), the JSON columns returned as text for the caller to decode once."""
        query = select(
            t_leads.c.id,
            t_leads.c.object_type,
            t_leads.c.email,
            cast(t_leads.c.properties, Text),
            cast(t_leads.c.activities, Text),
            t_scores.c.qualified,
            t_scores.c.qualified_at,
        ).select_from(t_leads.outerjoin(t_scores, t_scores.c.lead_id == t_leads.c.id))
        for rows in self._keyset_pages(query, t_leads.c.id, chunk_size):
            ids, kinds, emails, props, acts, qualified, at = (list(c) for c in zip(*rows, strict=True))
            yield CacheChunk(ids, kinds, emails, props, acts, [bool(q) for q in qualified], at)

    def iter_lead_values(
        self, prop: str, chunk_size: int = 10_000, *, after: str | None = None
    ) -> Iterator[list[tuple[str, str | None]]]:
        """(id, one raw property as text) of every cached lead, ordered by id, without loading whole leads.

        Evaluation needs only each lead's creation date of a million leads: the JSON is read by the database.
        ``after``: start after this id (the outcome re-check resumes where its last pass stopped).
        """
        query = select(t_leads.c.id, t_leads.c.properties[prop].as_string())
        for rows in self._keyset_pages(query, t_leads.c.id, chunk_size, after=after):
            yield [(str(r[0]), None if r[1] is None else str(r[1])) for r in rows]

    def find_lead(self, id_or_email: str) -> CachedLead | None:
        """A lead by exact id, else by email (case-insensitive; the most recently updated if several)."""
        key = id_or_email.strip()
        with self._begin(write=False) as conn:
            row = conn.execute(select(*self._LEAD_COLUMNS).where(t_leads.c.id == key)).first()
            if row is None and key:
                row = conn.execute(
                    select(*self._LEAD_COLUMNS)
                    .where(t_leads.c.email_lower == key.lower())
                    .order_by(t_leads.c.updated_at.desc().nulls_last(), t_leads.c.id)
                    .limit(1)
                ).first()
        return None if row is None else from_row(CachedLead, row)

    def get_leads(self, lead_ids: Sequence[str]) -> dict[str, CachedLead]:
        rows = self._rows_with_keys(select(*self._LEAD_COLUMNS), t_leads.c.id, lead_ids)
        return {row.id: from_row(CachedLead, row) for row in rows}

    def count_leads(self) -> int:
        with self._begin(write=False) as conn:
            return int(conn.execute(select(func.count()).select_from(t_leads)).scalar_one())

    def delete_leads(self, lead_ids: Sequence[str]) -> None:
        """Forget leads (deleted or merged away in the CRM): cache, score, written state, failures.

        The outbox keeps its history; a cached company stays (other leads may belong to it).
        """
        with self._begin() as conn:
            for chunk in chunks(unique(lead_ids)):
                conn.execute(delete(t_leads).where(t_leads.c.id.in_(chunk)))
                for table in (t_scores, t_written, t_failed_writes, t_lead_companies):
                    conn.execute(delete(table).where(table.c.lead_id.in_(chunk)))
