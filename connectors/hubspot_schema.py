"""HubSpot's schema for ``leadsync mappings discover`` / ``validate``: the properties API of contacts (and
companies where the portal serves them) with types, labels and enumeration options, and a sample of contacts
for fill rates and example values. Plain data out (see ``mappings.schema.CrmSchema.from_dict``).

Calls go through the connector's one call path (rate limiter, budget guard, retries, counting).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from connectors.errors import RequestRejected
from connectors.hubspot import LIST_PAGE_SIZE, HubSpotConnector

#: examples kept per field from the sample
EXAMPLES = 3


def _field(prop: Any) -> dict[str, Any]:
    options = [o for o in prop.options or [] if not getattr(o, "hidden", False)]
    data: dict[str, Any] = {"type": str(prop.type or "string"), "label": str(prop.label or "")}
    if options:
        data["options"] = [str(o.value) for o in options]
        labels = [str(o.label) for o in options]
        if labels != data["options"]:
            data["option_labels"] = labels
    if not getattr(prop, "hubspot_defined", True):
        data["custom"] = True
    return data


def _properties(connector: HubSpotConnector, object_type: str) -> dict[str, dict[str, Any]]:
    data, _ = connector._call(
        f"GET /crm/v3/properties/{object_type}",
        connector._properties.get_all_with_http_info,
        object_type=object_type,
    )
    return {str(p.name): _field(p) for p in data.results or [] if not getattr(p, "archived", False)}


def _sample_stats(fields: dict[str, dict[str, Any]], records: Iterable[dict[str, Any]]) -> None:
    rows = list(records)
    for name, info in fields.items():
        values = [r.get(name) for r in rows]
        filled = [str(v) for v in values if v not in (None, "")]
        info["fill_rate"] = round(len(filled) / len(rows), 3) if rows else None
        info["examples"] = list(dict.fromkeys(v[:60] for v in filled))[:EXAMPLES]


def read_schema(connector: HubSpotConnector, *, sample: int = LIST_PAGE_SIZE, companies: bool = True) -> dict[str, Any]:
    """Contact (and, with ``companies``, company) properties, plus fill rates and examples from ``sample``
    contacts (one page). Validation reads contacts only: 1 call."""
    before = connector.api_calls
    contacts = _properties(connector, "contacts")
    objects: dict[str, Any] = {"contacts": contacts}
    if companies:
        with contextlib.suppress(RequestRejected):  # a portal (or token scope) without company properties
            objects["companies"] = _properties(connector, "companies")
    if sample > 0:
        page, _ = connector._call(
            "GET /crm/v3/objects/contacts",
            connector._contacts_basic.get_page_with_http_info,
            limit=min(sample, LIST_PAGE_SIZE),
            properties=sorted(contacts),
            archived=False,
        )
        _sample_stats(contacts, (dict(obj.properties or {}) for obj in page.results or []))
    return {
        "crm": "hubspot",
        "objects": objects,
        "record_objects": {"contact": "contacts"},
        "relationships": {"company": "companies"} if "companies" in objects else {},
        "api_calls": connector.api_calls - before,
    }
