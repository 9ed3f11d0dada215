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

from hubspot.crm.companies import Filter, FilterGroup, PublicObjectSearchRequest

from connectors._hubspot_activities import (
    AssociationReadStats,
    CallFn,
    parse_hubspot_time,
    read_associations,
    read_objects,
)
from connectors.base import RawRecord
from connectors.errors import AuthError, ConnectorError, MalformedResponse

__all__ = ["COMPANY_CURSOR", "PRIMARY_COMPANY_TYPE_ID", "HubSpotCompanyReader"]

#: HUBSPOT_DEFINED contact -> company "Primary" (the unlabeled one is 279)
PRIMARY_COMPANY_TYPE_ID = 1
#: companies' modification cursor (contacts use lastmodifieddate)
COMPANY_CURSOR = "hs_lastmodifieddate"
ID_PROPERTY = "hs_object_id"
SEARCH_PAGE_SIZE = 200


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
        last_id = 0
        while True:
            filters = [
                Filter(property_name=COMPANY_CURSOR, operator="GTE", value=start_ms),
                Filter(property_name=COMPANY_CURSOR, operator="LT", value=end_ms),
                Filter(property_name=ID_PROPERTY, operator="GT", value=str(last_id)),
            ]
            request = PublicObjectSearchRequest(
                filter_groups=[FilterGroup(filters=filters)],
                sorts=[{"propertyName": ID_PROPERTY, "direction": "ASCENDING"}],
                properties=props,
                limit=SEARCH_PAGE_SIZE,
            )
            page, _ = self._call(
                "POST /crm/v3/objects/companies/search",
                self._search.do_search_with_http_info,
                search=True,
                public_object_search_request=request,
            )
            records = [_record(obj) for obj in page.results or []]
            if not records:
                return
            yield records
            numeric = [int(r.id) for r in records if r.id.isdigit()]
            if not numeric:
                raise MalformedResponse(f"HubSpot company search returned {len(records)} companies without ids")
            if numeric[-1] <= last_id:  # ids must strictly increase, or the window would loop
                raise ConnectorError(f"HubSpot company search returned id {numeric[-1]} after {last_id}")
            last_id = numeric[-1]
            if len(records) < SEARCH_PAGE_SIZE:
                return
