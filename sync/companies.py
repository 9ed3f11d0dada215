"""Company fields: each lead's primary company, merged into its properties as ``company.<property>``.

Why here: HubSpot keeps firmographics on the company, and a contact's company is a separate object. The
mapping names what it reads of it (``company.industry``, the sources ``LeadMapping.company_properties``);
this module gets it to the records before they are mapped, so scoring, the lead cache, ``explain`` and a
rules-change rescoring all see the company's values as part of the lead.

What it costs, per pass:

* changed records: one associations read per 1,000 (their primary company), and one companies batch read per
  100 companies not cached yet (a full pass reads each company again once, so the cache starts exact);
* changed companies: the company search on ``hs_lastmodifieddate`` over the pass's window, 200 a page, whose
  pages carry the new values: at most 1 call per 100 changed companies (1 per 200 once there are many). The
  leads of a company whose mapped values changed are rescored from the cache, without reading them again.

A company whose unmapped properties change (its phone, say) rescores nothing. Salesforce needs none of this
(``Account.Industry`` comes with the Contact in the same query): its connector is no ``CompanyReader``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import structlog

from connectors.base import CompanyReader, Connector, RawRecord, Window
from mappings import LeadMapping
from mappings.mapping import COMPANY_PREFIX
from scoring import Activity
from sync.state import CachedCompany, CachedLead, StateStore

log = structlog.get_logger("leadsync.sync")

__all__ = ["RESCORE_CHUNK", "CompanyFields"]

#: cached leads rescored per group after their companies changed
RESCORE_CHUNK = 500


def _same_values(a: Mapping[str, Any], b: Mapping[str, Any], names: Sequence[str]) -> bool:
    return all((a.get(n) or "") == (b.get(n) or "") for n in names)


class CompanyFields:
    """The company side of a pass: enrich records, notice changed companies, rescore their leads."""

    def __init__(self, connector: Connector, mapping: LeadMapping, store: StateStore) -> None:
        self.reader: CompanyReader | None = connector if isinstance(connector, CompanyReader) else None
        #: the company properties the mapping reads (empty: nothing to do)
        self.properties: list[str] = mapping.company_properties
        self.store = store
        #: re-read every company a page names, cached or not (a full pass: the cache starts exact)
        self.fresh = False
        #: companies whose mapped values changed in this pass's window (set by :meth:`refresh`)
        self.changed: dict[str, CachedCompany] = {}
        #: companies this pass read and cached already (a full pass reads each of them once)
        self.read_in_pass: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.reader is not None and bool(self.properties)

    def merged(self, record: RawRecord, company: CachedCompany | None) -> RawRecord:
        """The record with its company's mapped values as ``company.<property>`` (none without a company)."""
        own = {k: v for k, v in record.properties.items() if not k.startswith(COMPANY_PREFIX)}
        if company is not None:
            own.update({f"{COMPANY_PREFIX}{n}": company.properties.get(n) for n in self.properties})
        return RawRecord(record.id, record.object_type, own, record.updated_at)

    def enrich(self, page: Sequence[RawRecord], *, persist: bool) -> list[RawRecord]:
        """The records with their primary company's values; ``persist``: cache the companies and links."""
        if not self.enabled or not page:
            return list(page)
        assert self.reader is not None
        ids = [r.id for r in page]
        primary = dict(self.reader.read_primary_companies(ids))
        wanted = sorted(set(primary.values()))
        known = self.store.get_companies([i for i in wanted if i in self.read_in_pass] if self.fresh else wanted)
        known.update({i: c for i, c in self.changed.items() if i in set(wanted)})
        # a company cached before the mapping read one of these properties is read again
        usable = {i: c for i, c in known.items() if set(self.properties) <= set(c.properties)}
        missing = [i for i in wanted if i not in usable]
        read = [
            CachedCompany(r.id, {n: r.properties.get(n) for n in self.properties}, r.updated_at)
            for r in (self.reader.read_companies(missing, self.properties) if missing else [])
        ]
        companies = {**usable, **{c.id: c for c in read}}
        if persist:
            self.store.upsert_companies(read)
            self.store.link_companies({i: primary.get(i) for i in ids})
            self.read_in_pass.update(c.id for c in read)
        return [self.merged(r, companies.get(primary.get(r.id, ""))) for r in page]

    def refresh(self, window: Window, *, persist: bool) -> list[str]:
        """Read the companies modified within ``window``; returns the ids of the cached leads whose company's
        mapped values changed (those companies are kept in :attr:`changed`, and cached with ``persist``)."""
        self.changed, self.read_in_pass = {}, set()
        if not self.enabled or window.start is None:
            return []
        assert self.reader is not None
        seen = 0
        for page in self.reader.read_changed_companies(window, self.properties):
            seen += len(page)
            known = self.store.get_companies([r.id for r in page])
            for r in page:
                cached = known.get(r.id)
                if cached is not None and not _same_values(cached.properties, r.properties, self.properties):
                    values = {n: r.properties.get(n) for n in self.properties}
                    self.changed[r.id] = CachedCompany(r.id, values, r.updated_at)
        if persist:
            self.store.upsert_companies(list(self.changed.values()))
        leads = self.store.company_leads(sorted(self.changed)) if self.changed else {}
        affected = sorted({lead for ids in leads.values() for lead in ids})
        if seen:
            log.info("companies.changed", modified=seen, changed=len(self.changed), leads=len(affected))
        return affected

    def rescore_pages(
        self, lead_ids: Sequence[str], skip: set[str], *, persist: bool
    ) -> Iterator[tuple[list[RawRecord], dict[str, list[Activity]]]]:
        """Cached leads (not in ``skip``: those the pass read anyway) with their changed company's values, in
        groups, with their cached activities: what the pipeline rescores without reading the CRM. With
        ``persist`` the lead cache takes the new values first (a failed pass finds the companies again)."""
        from sync.scoring_step import activities_from_dicts

        todo = [i for i in lead_ids if i not in skip]
        for start in range(0, len(todo), RESCORE_CHUNK):
            chunk = todo[start : start + RESCORE_CHUNK]
            cached = self.store.get_leads(chunk)
            links = self.store.lead_companies(chunk)
            companies = self.store.get_companies(sorted(set(links.values())))
            companies.update({i: c for i, c in self.changed.items() if i in companies})
            records = [
                self.merged(
                    RawRecord(c.id, c.object_type, c.properties, c.updated_at), companies.get(links.get(c.id, ""))
                )
                for c in (cached[i] for i in chunk if i in cached)
            ]
            if persist:
                self.store.upsert_leads(
                    [
                        CachedLead(
                            r.id,
                            cached[r.id].object_type,
                            cached[r.id].email,
                            dict(r.properties),
                            cached[r.id].activities,
                            r.updated_at,
                        )
                        for r in records
                    ]
                )
            yield records, {r.id: activities_from_dicts(r.id, cached[r.id].activities) for r in records}
