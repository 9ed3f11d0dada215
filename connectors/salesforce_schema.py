"""Salesforce's schema for ``leadsync mappings discover`` / ``validate``: ``describe`` of Lead, Contact and
Account (types, labels, active picklist values, relationships), and a sample of each record object for fill
rates and example values. Plain data out (see ``mappings.schema.CrmSchema.from_dict``).

Calls go through the connector's one call path (budget guard, session renewal, retries, counting).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from connectors.salesforce import SOBJECTS, SalesforceConnector, _flatten, _query, _text

#: examples kept per field from the sample
EXAMPLES = 3
#: records sampled per object (one query page)
SAMPLE = 200
#: field types never sampled (long text bloats the query and says nothing about a mapping)
_UNSAMPLED = frozenset({"textarea", "base64", "address", "location", "anyType"})


def _describe(connector: SalesforceConnector, sobject: str) -> dict[str, Any]:
    data: Any = connector._call(lambda sf: sf.restful(f"sobjects/{sobject}/describe"))
    return dict(data or {})


def _field(raw: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"type": str(raw.get("type") or "string"), "label": str(raw.get("label") or "")}
    values = [p for p in raw.get("picklistValues") or [] if p.get("active", True)]
    if values:
        data["options"] = [str(p.get("value")) for p in values]
        labels = [str(p.get("label") or p.get("value")) for p in values]
        if labels != data["options"]:
            data["option_labels"] = labels
    if raw.get("custom"):
        data["custom"] = True
    return data


def read_schema(connector: SalesforceConnector, *, sample: int = SAMPLE) -> dict[str, Any]:
    """Describe of the record objects the connector reads and of Account, plus a sample of each."""
    before = connector.api_calls
    record_objects = {kind: SOBJECTS[kind] for kind in connector.objects}
    objects: dict[str, Any] = {}
    relationships: dict[str, str] = {}
    for sobject in [*record_objects.values(), "Account"]:
        described = _describe(connector, sobject)
        raw_fields = described.get("fields") or []
        objects[sobject] = {str(f["name"]): _field(f) for f in raw_fields}
        for f in raw_fields:
            targets = f.get("referenceTo") or []
            if f.get("relationshipName") and len(targets) == 1:
                relationships[str(f["relationshipName"])] = str(targets[0])
        if sample > 0 and sobject in record_objects.values():
            names = [str(f["name"]) for f in raw_fields if f.get("type") not in _UNSAMPLED]
            soql = f"SELECT {', '.join(names)} FROM {sobject} ORDER BY Id LIMIT {int(sample)}"
            page: Any = connector._call(partial(_query, soql=soql))
            rows = [_flatten(r) for r in page.get("records") or []]
            for name in names:
                filled = [t for t in (_text(r.get(name)) for r in rows) if t not in (None, "")]
                info = objects[sobject][name]
                info["fill_rate"] = round(len(filled) / len(rows), 3) if rows else None
                info["examples"] = list(dict.fromkeys(t[:60] for t in filled if t is not None))[:EXAMPLES]
    return {
        "crm": "salesforce",
        "objects": objects,
        "record_objects": record_objects,
        "relationships": {k: v for k, v in relationships.items() if v in objects},
        "api_calls": connector.api_calls - before,
    }
