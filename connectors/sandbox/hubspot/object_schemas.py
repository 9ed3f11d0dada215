"""The property schemas of HubSpot's standard object types besides contacts, for ``/crm/v3/properties/{objectType}``.

Why: other HubSpot clients (dlt's source, Singer taps) discover each object type's properties before they read
it; a sandbox that answered only for contacts would stop them at their first call. Each type is reachable by
its plural name, its singular and its type id (``companies``, ``company``, ``0-2``), as the SDK's
``crm.properties.core_api`` and HubSpot accept. The schemas hold each type's common standard properties with
HubSpot's types; a property created on such a type is listed and read back like a contact's, but the
sandbox's objects of that type do not validate writes against it (their own rules apply).
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.sandbox.hubspot.activity_types import (
    _ENGAGEMENT_COMMON,
    _ENGAGEMENT_DATETIMES,
    _ENGAGEMENT_NUMBERS,
    _ENGAGEMENT_READ_ONLY,
    ENGAGEMENT_TYPES,
)
from connectors.sandbox.hubspot.properties import (
    _LIFECYCLE_OPTIONS,
    PropertyDef,
    _options,
    property_defs,
)

#: HubSpot's standard object types: plural name -> (singular, type id)
STANDARD_OBJECT_TYPES: Mapping[str, tuple[str, str]] = {
    "contacts": ("contact", "0-1"),
    "companies": ("company", "0-2"),
    "deals": ("deal", "0-3"),
    "tickets": ("ticket", "0-5"),
    "products": ("product", "0-7"),
    "line_items": ("line_item", "0-8"),
    "quotes": ("quote", "0-14"),
    "tasks": ("task", "0-27"),
    "notes": ("note", "0-46"),
    "meetings": ("meeting", "0-47"),
    "calls": ("call", "0-48"),
    "emails": ("email", "0-49"),
    "leads": ("lead", "0-136"),
}
_ALIASES: Mapping[str, str] = {
    alias: name for name, (singular, type_id) in STANDARD_OBJECT_TYPES.items() for alias in (name, singular, type_id)
}

_TEXT, _NUMBER, _DATETIME = ("string", "text"), ("number", "number"), ("datetime", "date")
_SELECT, _BOOL = ("enumeration", "select"), ("bool", "booleancheckbox")

#: (name, label, (type, fieldType), read-only) of every non-engagement object type
_COMMON: tuple[tuple[str, str, tuple[str, str], bool], ...] = (
    ("hs_object_id", "Record ID", _NUMBER, True),
    ("createdate", "Create Date", _DATETIME, True),
    ("hs_lastmodifieddate", "Last Modified Date", _DATETIME, True),
    ("hubspot_owner_id", "Owner", _TEXT, False),
)
_OWN: Mapping[str, tuple[tuple[str, str, tuple[str, str], bool], ...]] = {
    "companies": (
        ("name", "Company name", _TEXT, False),
        ("domain", "Company Domain Name", _TEXT, False),
        ("industry", "Industry", _TEXT, False),
        ("numberofemployees", "Number of Employees", _NUMBER, False),
        ("annualrevenue", "Annual Revenue", _NUMBER, False),
        ("country", "Country/Region", _TEXT, False),
        ("city", "City", _TEXT, False),
        ("phone", "Phone Number", _TEXT, False),
        ("website", "Website URL", _TEXT, False),
        ("lifecyclestage", "Lifecycle Stage", ("enumeration", "radio"), False),
    ),
    "deals": (
        ("dealname", "Deal Name", _TEXT, False),
        ("dealstage", "Deal Stage", ("enumeration", "radio"), False),
        ("pipeline", "Pipeline", _SELECT, False),
        ("amount", "Amount", _NUMBER, False),
        ("closedate", "Close Date", _DATETIME, False),
        ("hs_is_closed_won", "Is Closed Won", _BOOL, True),
        ("hs_is_closed", "Is Deal Closed?", _BOOL, True),
    ),
    "tickets": (
        ("subject", "Ticket name", _TEXT, False),
        ("content", "Ticket description", ("string", "textarea"), False),
        ("hs_pipeline", "Pipeline", _SELECT, False),
        ("hs_pipeline_stage", "Ticket status", _SELECT, False),
        ("hs_ticket_priority", "Priority", _SELECT, False),
    ),
    "products": (
        ("name", "Name", _TEXT, False),
        ("description", "Description", ("string", "textarea"), False),
        ("price", "Unit price", _NUMBER, False),
        ("hs_sku", "SKU", _TEXT, False),
    ),
    "line_items": (
        ("name", "Name", _TEXT, False),
        ("quantity", "Quantity", _NUMBER, False),
        ("price", "Unit price", _NUMBER, False),
        ("amount", "Net price", _NUMBER, True),
        ("hs_product_id", "Product ID", _TEXT, False),
    ),
    "quotes": (
        ("hs_title", "Quote Name", _TEXT, False),
        ("hs_expiration_date", "Expiration date", _DATETIME, False),
        ("hs_status", "Quote approval status", _SELECT, False),
    ),
    "leads": (
        ("hs_lead_name", "Lead name", _TEXT, False),
        ("hs_pipeline", "Pipeline", _SELECT, False),
        ("hs_pipeline_stage", "Lead stage", _SELECT, False),
    ),
}
_OPTIONS: Mapping[tuple[str, str], list[dict[str, object]]] = {
    ("companies", "lifecyclestage"): _LIFECYCLE_OPTIONS,
    ("deals", "dealstage"): _options(
        ("appointmentscheduled", "Appointment Scheduled"),
        ("qualifiedtobuy", "Qualified To Buy"),
        ("presentationscheduled", "Presentation Scheduled"),
        ("decisionmakerboughtin", "Decision Maker Bought-In"),
        ("contractsent", "Contract Sent"),
        ("closedwon", "Closed Won"),
        ("closedlost", "Closed Lost"),
    ),
    ("deals", "pipeline"): _options(("default", "Sales Pipeline")),
    ("tickets", "hs_pipeline"): _options(("0", "Support Pipeline")),
    ("tickets", "hs_pipeline_stage"): _options(("1", "New"), ("2", "Waiting on contact"), ("4", "Closed")),
    ("tickets", "hs_ticket_priority"): _options(("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")),
    ("quotes", "hs_status"): _options(
        ("DRAFT", "Draft"),
        ("APPROVAL_NOT_NEEDED", "Approval not needed"),
        ("PENDING_APPROVAL", "Pending approval"),
        ("APPROVED", "Approved"),
        ("REJECTED", "Rejected"),
    ),
    ("leads", "hs_pipeline"): _options(("lead-pipeline-id", "Lead pipeline")),
    ("leads", "hs_pipeline_stage"): _options(
        ("new-stage-id", "New"), ("attempting-stage-id", "Attempting"), ("connected-stage-id", "Connected")
    ),
}


def object_type_name(raw: str) -> str | None:
    """The plural name of a standard object type given as HubSpot accepts it (None: not a standard type)."""
    return _ALIASES.get(raw.strip().lower())


def group_of(object_type: str) -> tuple[str, str]:
    """The (name, label) of the one property group each non-contact type is seeded with."""
    singular = STANDARD_OBJECT_TYPES[object_type][0]
    return f"{singular}information", f"{singular.replace('_', ' ').capitalize()} information"


def object_properties(object_type: str) -> dict[str, PropertyDef]:
    """A fresh copy of one non-contact standard type's properties by name."""
    group = group_of(object_type)[0]
    engagement = ENGAGEMENT_TYPES.get(object_type)
    if engagement is not None:
        out: dict[str, PropertyDef] = {}
        for name in (*_ENGAGEMENT_COMMON, *engagement.properties):
            enum = engagement.enums.get(name)
            if enum is not None:
                kind = _SELECT
                options = _options(*((v, v.replace("_", " ").title()) for v in sorted(enum)))
            else:
                kind = (
                    _DATETIME
                    if name in _ENGAGEMENT_DATETIMES
                    else _NUMBER
                    if name in {*_ENGAGEMENT_NUMBERS, "hs_object_id"}
                    else _TEXT
                )
                options = []
            label = name.removeprefix("hs_").replace("_", " ").capitalize()
            out[name] = PropertyDef(
                name, label, kind[0], kind[1], group, options=options, read_only=name in _ENGAGEMENT_READ_ONLY
            )
        return out
    rows = (
        (name, label, kind, group, read_only) for name, label, kind, read_only in (*_COMMON, *_OWN.get(object_type, ()))
    )
    options = {name: values for (of_type, name), values in _OPTIONS.items() if of_type == object_type}
    return property_defs(rows, options)
