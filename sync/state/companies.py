"""Companies: the primary associated company of each cached lead and its mapped properties, so that company
fields are read once per change of the company (not with every lead), and a company change rescores its
leads from the cache."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import delete, select

from sync.state.engine import Database, chunks, unique
from sync.state.records import CachedCompany, from_row
from sync.state.schema import t_companies, t_lead_companies


class Companies(Database):
    """Cached companies (``companies``) and which company each lead belongs to (``lead_companies``)."""

    def upsert_companies(self, companies: Sequence[CachedCompany]) -> None:
        """Insert or replace companies (properties are replaced whole)."""
        if not companies:
            return
        now = self._now()
        by_id = {c.id: c for c in companies}  # one statement must not hit a row twice
        rows = [
            {"id": c.id, "properties": dict(c.properties), "updated_at": c.updated_at, "cached_at": now}
            for c in by_id.values()
        ]
        ins = self._insert(t_companies)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_companies.c.id],
            set_={name: ins.excluded[name] for name in ("properties", "updated_at", "cached_at")},
        )
        with self._begin() as conn:
            for chunk in chunks(rows, 1000):
                conn.execute(stmt, list(chunk))

    def get_companies(self, company_ids: Sequence[str]) -> dict[str, CachedCompany]:
        rows = self._rows_with_keys(select(t_companies), t_companies.c.id, company_ids)
        return {row.id: from_row(CachedCompany, row) for row in rows}

    def link_companies(self, links: Mapping[str, str | None]) -> None:
        """Set each lead's primary company (None: the lead has none any more)."""
        if not links:
            return
        linked = [{"lead_id": lead, "company_id": company} for lead, company in links.items() if company]
        with self._begin() as conn:
            for chunk in chunks(unique(list(links))):
                conn.execute(delete(t_lead_companies).where(t_lead_companies.c.lead_id.in_(chunk)))
            for rows in chunks(linked, 1000):
                conn.execute(t_lead_companies.insert(), list(rows))

    def lead_companies(self, lead_ids: Sequence[str]) -> dict[str, str]:
        """lead id -> its primary company's id (leads without one are absent)."""
        query = select(t_lead_companies.c.lead_id, t_lead_companies.c.company_id)
        return {str(r[0]): str(r[1]) for r in self._rows_with_keys(query, t_lead_companies.c.lead_id, lead_ids)}

    def company_leads(self, company_ids: Sequence[str]) -> dict[str, list[str]]:
        """company id -> the ids of its leads, ascending (companies without leads are absent)."""
        query = select(t_lead_companies.c.company_id, t_lead_companies.c.lead_id)
        out: dict[str, list[str]] = {}
        for company, lead in self._rows_with_keys(query, t_lead_companies.c.company_id, company_ids):
            out.setdefault(str(company), []).append(str(lead))
        return {company: sorted(leads) for company, leads in out.items()}
