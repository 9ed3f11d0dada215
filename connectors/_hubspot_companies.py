"""The primary associated company of HubSpot contacts, and companies read by id or by modification time.

Why this shape: firmographics (industry, employees, revenue, country) live on the company in most portals.
The cheapest exact read for a page of contacts is one ``POST /crm/v4/associations/contacts/companies/batch/read``
for up to 1,000 contacts, keeping the association of HUBSPOT_DEFINED type 1 ("Primary"), then
``POST /crm/v3/objects/companies/batch/read`` for the companies not known yet, 100 per call. A company that
changes later is found by ``POST /crm/v3/objects/companies/search`` on ``hs_lastmodifieddate`` (200 per page,
keyset-paged by ``hs_object_id`` like contacts, so the 10,000-result cap cannot loop or skip): its new values
come with the search page, so 100 changed companies cost at most one call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from connectors._hubspot_activities import (
    AssociationReadStats,
    CallFn,
    keyset_search,
    parse_hubspot_time,
    read_associations,
    read_objects,
)
from connectors.base import RawRecord
from connectors.errors import AuthError

__all__ = ["COMPANY_CURSOR", "PRIMARY_COMPANY_TYPE_ID", "HubSpotCompanyReader"]

#: HUBSPOT_DEFINED contact -> company "Primary" (the unlabeled one is 279)
PRIMARY_COMPANY_TYPE_ID = 1
#: companies' modification cursor (contacts use lastmodifieddate)
COMPANY_CURSOR = "hs_lastmodifieddate"


def _record(obj: Any) -> RawRecord:
    """A company from a raw JSON object or an SDK model."""
    if isinstance(obj, dict):
        raw_id, properties, updated = obj.get("id"), dict(obj.get("properties") or {}), obj.get("updatedAt")
    else:
        raw_id, properties, updated = obj.id, dict(obj.properties or {}), obj.updated_at
    stamp = parse_hubspot_time(properties.get(COMPANY_CURSOR)) or parse_hubspot_time(updated)
    return RawRecord(
        id="" if raw_id is None else str(raw_id).strip(), object_type="company", properties=properties, updated_at=stamp
    )


class HubSpotCompanyReader:
    """Reads companies through the connector's call path (``call``: rate limits, retries, counting)."""

    def __init__(self, call: CallFn, client: Any) -> None:
        self._connector_call = call
        self._associations = client.crm.associations.v4.batch_api
        self._objects = client.crm.objects.batch_api
        self._search = client.crm.companies.search_api
        #: what the last association or batch read did, for logs and tests
        self.last = AssociationReadStats()

    def _call(self, label: str, fn: Any, **kwargs: Any) -> tuple[Any, int]:
        """The connector's call path; a 403 says which scope company fields need."""
        try:
            return self._connector_call(label, fn, **kwargs)
        except AuthError as exc:
            if exc.status != 403:
                raise
            msg = (
                f"{exc}; company fields ({label}) need the private app's crm.objects.companies.read scope "
                "(or leave the company.* sources out of the mapping)"
            )
            raise AuthError(msg, status=403) from exc

    def primary_companies(self, contact_ids: Sequence[str]) -> dict[str, str]:
        """contact id -> its primary company's id (contacts without one are absent)."""
        ids = list(dict.fromkeys(i for i in contact_ids if i))
        stats = self.last = AssociationReadStats(records=len(ids))
        if not ids:
            return {}
        found = read_associations(
            self._call, self._associations, "companies", ids, stats, type_id=PRIMARY_COMPANY_TYPE_ID
        )
        return {contact: targets[0] for contact, targets in found.items() if targets}

    def read(self, company_ids: Sequence[str], properties: Sequence[str]) -> list[RawRecord]:
        """The companies with these ids, 100 per call; missing ones are counted in ``last.missing``."""
        ids = list(dict.fromkeys(i for i in company_ids if i))
        stats = self.last = AssociationReadStats(records=len(ids))
        props = sorted({*properties, COMPANY_CURSOR})
        return [_record(obj) for obj in read_objects(self._call, self._objects, "companies", ids, props, stats)]

    def changed(self, start_ms: str, end_ms: str, properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        """Pages of the companies with ``start_ms <= hs_lastmodifieddate < end_ms`` (epoch ms), by id."""
        props = sorted({*properties, COMPANY_CURSOR})
        label = "POST /crm/v3/objects/companies/search"
        yield from keyset_search(self._call, self._search, label, COMPANY_CURSOR, (start_ms, end_ms), props, _record)
