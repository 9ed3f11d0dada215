"""Properties and property groups: the contact schema HubSpot seeds, and the ``/crm/v3/properties`` endpoints."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.hubspot._base import (
    _PROPERTY_NAME_RE,
    PortalError,
    _check_batch_size,
    _iso_ms,
    _standard_error,
)
from connectors.sandbox.hubspot._http import HubSpotRoutes

_TYPE_FIELD_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "file", "html", "phonenumber"}),
    "number": frozenset({"number", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"}),
    "bool": frozenset({"booleancheckbox"}),
}


# helpers -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PropertyDef:
    """A contact property definition, rendered as HubSpot's ``Property`` model."""

    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    read_only: bool = False
    hubspot_defined: bool = True
    has_unique_value: bool = False
    display_order: int = -1
    hidden: bool = False
    form_field: bool = False
    created_at: str = "2019-08-06T02:41:52.000Z"
    updated_at: str = "2019-08-06T02:41:52.000Z"
    archived: bool = False
    _values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.refresh_options()

    def refresh_options(self) -> None:
        self._values = frozenset(str(o["value"]) for o in self.options)

    @property
    def option_values(self) -> frozenset[str]:
        return self._values

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": self.display_order,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": self.form_field,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": self.archived,
        }
        return body


def _options(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"label": label, "value": value, "displayOrder": i, "hidden": False, "description": ""}
        for i, (value, label) in enumerate(pairs)
    ]


def _written_options(raw: list[Any]) -> list[dict[str, Any]]:
    """The options of a property create or update body, as stored (an option without a value is dropped)."""
    return [
        {
            "label": str(o.get("label") or o.get("value")),
            "value": str(o.get("value")),
            "displayOrder": int(o.get("displayOrder", i)),
            "hidden": bool(o.get("hidden", False)),
            "description": str(o.get("description") or ""),
        }
        for i, o in enumerate(raw)
        if isinstance(o, Mapping) and o.get("value") is not None
    ]


#: (value, label) of the lifecycle stages: the options of ``lifecyclestage``, and one date property each
_LIFECYCLE_STAGES: tuple[tuple[str, str], ...] = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)
_LIFECYCLE_OPTIONS = _options(*_LIFECYCLE_STAGES)
_LEAD_STATUS_OPTIONS = _options(
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
)
_EMPLOYEE_OPTIONS = _options(*((v, v) for v in ("1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+")))
_BOOL_OPTIONS = _options(("true", "True"), ("false", "False"))

#: the (type, fieldType) pairs of the standard properties: a property's kind is both at once
_TEXT, _TEXTAREA = ("string", "text"), ("string", "textarea")
_NUMBER, _DATETIME, _BOOL = ("number", "number"), ("datetime", "date"), ("bool", "booleancheckbox")
_SELECT, _RADIO = ("enumeration", "select"), ("enumeration", "radio")

#: the options of the standard enumeration properties (a ``bool`` property has ``_BOOL_OPTIONS``)
_STANDARD_OPTIONS: Mapping[str, list[dict[str, Any]]] = {
    "numemployees": _EMPLOYEE_OPTIONS,
    "lifecyclestage": _LIFECYCLE_OPTIONS,
    "hs_lead_status": _LEAD_STATUS_OPTIONS,
}
#: (name, label, (type, fieldType), group, read-only): HubSpot's standard contact properties
STANDARD_PROPERTIES: tuple[tuple[str, str, tuple[str, str], str, bool], ...] = (
    ("email", "Email", _TEXT, "contactinformation", False),
    ("firstname", "First Name", _TEXT, "contactinformation", False),
    ("lastname", "Last Name", _TEXT, "contactinformation", False),
    ("company", "Company Name", _TEXT, "contactinformation", False),
    ("jobtitle", "Job Title", _TEXT, "contactinformation", False),
    ("industry", "Industry", _TEXT, "contactinformation", False),
    ("country", "Country/Region", _TEXT, "contactinformation", False),
    ("website", "Website URL", _TEXT, "contactinformation", False),
    ("work_email", "Work email", _TEXT, "contactinformation", False),
    ("hs_additional_emails", "Additional email addresses", _TEXTAREA, "contactinformation", True),
    ("hubspot_owner_id", "Contact owner", _TEXT, "sales_properties", False),
    ("numemployees", "Number of Employees", _SELECT, "contactinformation", False),
    ("annualrevenue", "Annual Revenue", _NUMBER, "contactinformation", False),
    ("lifecyclestage", "Lifecycle Stage", _RADIO, "contactinformation", False),
    ("hs_lead_status", "Lead Status", _RADIO, "sales_properties", False),
    ("createdate", "Create Date", _DATETIME, "contactinformation", False),
    ("lastmodifieddate", "Last Modified Date", _DATETIME, "contactinformation", True),
    ("hs_lastmodifieddate", "Object last modified date/time", _DATETIME, "contactinformation", True),
    ("hs_object_id", "Record ID", _NUMBER, "contactinformation", True),
    ("hs_email_domain", "Email Domain", _TEXT, "contactinformation", True),
    ("hs_email_optout", "Unsubscribed from all email", _BOOL, "emailinformation", True),
    ("hs_email_hard_bounce_reason", "Email hard bounce reason", _TEXT, "emailinformation", True),
    ("hs_email_bounce", "Marketing emails bounced", _NUMBER, "emailinformation", True),
    ("hs_email_open", "Marketing emails opened", _NUMBER, "emailinformation", True),
    ("hs_email_click", "Marketing emails clicked", _NUMBER, "emailinformation", True),
    ("hs_email_replied", "Marketing emails replied", _NUMBER, "emailinformation", True),
    ("hs_email_last_open_date", "Last marketing email open date", _DATETIME, "emailinformation", True),
    ("hs_analytics_num_page_views", "Number of Pageviews", _NUMBER, "analyticsinformation", True),
    ("hs_analytics_num_visits", "Number of Sessions", _NUMBER, "analyticsinformation", True),
    ("hs_analytics_first_timestamp", "Time First Seen", _DATETIME, "analyticsinformation", True),
    ("hs_analytics_last_visit_timestamp", "Time of Last Session", _DATETIME, "analyticsinformation", True),
    ("num_conversion_events", "Number of Form Submissions", _NUMBER, "conversioninformation", True),
    ("notes_last_contacted", "Last Contacted", _DATETIME, "sales_properties", True),
    ("notes_last_updated", "Last Activity Date", _DATETIME, "sales_properties", True),
    ("hs_sales_email_last_replied", "Recent Sales Email Replied Date", _DATETIME, "emailinformation", True),
    *(
        (
            f"hs_lifecyclestage_{stage}_date",
            f"Became a {'Other Lifecycle Stage' if stage == 'other' else label} Date",
            _DATETIME,
            "contactinformation",
            True,
        )
        for stage, label in _LIFECYCLE_STAGES
    ),
)


#: one seeded property: name, label, (type, fieldType), group, read-only
PropertyRow = tuple[str, str, tuple[str, str], str, bool]


def property_defs(rows: Iterable[PropertyRow], options: Mapping[str, list[dict[str, Any]]]) -> dict[str, PropertyDef]:
    """Fresh :class:`PropertyDef` copies by name (each portal's schema changes on its own); a bool property
    without options of its own gets true/false."""
    return {
        name: PropertyDef(
            name,
            label,
            ptype,
            field_type,
            group,
            options=[dict(o) for o in options.get(name, _BOOL_OPTIONS if ptype == "bool" else [])],
            read_only=read_only,
        )
        for name, label, (ptype, field_type), group, read_only in rows
    }


def standard_properties() -> dict[str, PropertyDef]:
    """A fresh copy of the standard contact properties by name."""
    return property_defs(STANDARD_PROPERTIES, _STANDARD_OPTIONS)


_STANDARD_GROUPS: tuple[tuple[str, str], ...] = (
    ("contactinformation", "Contact information"),
    ("emailinformation", "Email information"),
    ("analyticsinformation", "Web analytics history"),
    ("conversioninformation", "Conversion information"),
    ("sales_properties", "Sales properties"),
)


class PropertiesRoutes(HubSpotRoutes):
    """``/crm/v3/properties/{objectType}``: properties and groups of every standard object type.

    Contacts have the portal's own schema (the one their writes are validated against); the other standard
    types (:mod:`connectors.sandbox.hubspot.object_schemas`) each get theirs on first use.
    """

    def _schema(self, object_type: str) -> tuple[dict[str, PropertyDef], dict[str, dict[str, Any]]]:
        """(properties, groups) of the path's object type. :raises PortalError: 400 for an unknown type."""
        from connectors.sandbox.hubspot.object_schemas import group_of, object_properties, object_type_name

        name = object_type_name(object_type)
        if name is None:
            raise PortalError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
        if name == "contacts":
            return self.portal.properties, self.portal.groups
        schemas = self.portal.object_schemas
        if name not in schemas:
            group, label = group_of(name)
            schemas[name] = (
                object_properties(name),
                {group: {"name": group, "label": label, "displayOrder": 0, "archived": False}},
            )
        return schemas[name]

    def _property(self, object_type: str, name: str, *, archived: bool = False) -> PropertyDef:
        """A property of the path; an archived one only with ``archived``. :raises PortalError: 400, 404."""
        prop = self._schema(object_type)[0].get(name)
        if prop is None or (prop.archived and not archived):
            raise PortalError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name} on object type {object_type}")
        return prop

    def _group(self, object_type: str, name: str, *, archived: bool = False) -> dict[str, Any]:
        """A property group of the path; an archived one only with ``archived``. :raises PortalError: 400, 404."""
        group = self._schema(object_type)[1].get(name)
        if group is None or (group["archived"] and not archived):
            raise PortalError(404, "OBJECT_NOT_FOUND", f"Unable to find property group {name}")
        return group

    def _list_properties(self, request: Request, objectType: str) -> Response:
        archived = self._flag(request, "archived")
        props = [p.to_json() for p in self._schema(objectType)[0].values() if p.archived == archived]
        return json_response({"results": props})

    def _read_property(self, request: Request, objectType: str, propertyName: str) -> Response:
        prop = self._property(objectType, propertyName, archived=self._flag(request, "archived"))
        return json_response(prop.to_json())

    def _new_property(self, body: Mapping[str, Any], object_type: str = "contacts") -> PropertyDef:
        name = str(body.get("name") or "")
        if not _PROPERTY_NAME_RE.match(name):
            raise PortalError(
                400,
                "VALIDATION_ERROR",
                f"Invalid property name {name!r}: use lower-case letters, digits and underscores",
            )
        properties, groups = self._schema(object_type)
        if name in properties:
            raise PortalError(
                409,
                "OBJECT_ALREADY_EXISTS",
                f"Property named '{name}' already exists.",
                subCategory="PropertyValidationError.PROPERTY_EXISTS",
                context={"name": [name]},
            )
        ptype = str(body.get("type") or "")
        field_type = str(body.get("fieldType") or "")
        if ptype not in _TYPE_FIELD_TYPES:
            raise PortalError(400, "VALIDATION_ERROR", f"Invalid property type {ptype!r}")
        if field_type not in _TYPE_FIELD_TYPES[ptype]:
            raise PortalError(400, "VALIDATION_ERROR", f"fieldType {field_type!r} is not valid for a {ptype} property")
        group = str(body.get("groupName") or "")
        if group not in groups or groups[group]["archived"]:
            raise PortalError(400, "VALIDATION_ERROR", f"Property group {group!r} does not exist")
        label = str(body.get("label") or "")
        if not label:
            raise PortalError(400, "VALIDATION_ERROR", "label is required")
        options = _written_options(body.get("options") or [])
        if ptype == "bool" and not options:
            options = [dict(o) for o in _BOOL_OPTIONS]
        now = _iso_ms(time.time_ns() // 1_000_000)
        return PropertyDef(
            name=name,
            label=label,
            type=ptype,
            field_type=field_type,
            group_name=group,
            description=str(body.get("description") or ""),
            options=options,
            hubspot_defined=False,
            has_unique_value=bool(body.get("hasUniqueValue", False)),
            display_order=int(body.get("displayOrder", -1)),
            hidden=bool(body.get("hidden", False)),
            form_field=bool(body.get("formField", False)),
            created_at=now,
            updated_at=now,
        )

    def _create_property(self, request: Request, objectType: str) -> Response:
        prop = self._new_property(self._body(request), objectType)
        self._schema(objectType)[0][prop.name] = prop
        return json_response(prop.to_json(), 201)

    def _update_property(self, request: Request, objectType: str, propertyName: str) -> Response:
        prop = self._property(objectType, propertyName)
        body = self._body(request)
        if prop.hubspot_defined and set(body) - {"options", "label", "description", "displayOrder", "hidden"}:
            raise PortalError(400, "VALIDATION_ERROR", f"{propertyName} is a HubSpot-defined property")
        for key, attr in (("label", "label"), ("description", "description"), ("groupName", "group_name")):
            if key in body:
                setattr(prop, attr, str(body[key]))
        if "options" in body and isinstance(body["options"], list):
            prop.options = _written_options(body["options"])
            prop.refresh_options()
        prop.updated_at = _iso_ms(time.time_ns() // 1_000_000)
        return json_response(prop.to_json())

    def _archive_property(self, request: Request, objectType: str, propertyName: str) -> Response:
        prop = self._property(objectType, propertyName)
        if prop.hubspot_defined:
            raise PortalError(
                400, "VALIDATION_ERROR", f"{propertyName} is a HubSpot-defined property and cannot be archived"
            )
        prop.archived = True  # the name stays reserved, as in HubSpot's recycle bin
        return Response(status=204)

    def _batch_read_properties(self, request: Request, objectType: str) -> Response:
        properties = self._schema(objectType)[0]
        started = _iso_ms(time.time_ns() // 1_000_000)
        inputs = self._body(request).get("inputs") or []
        _check_batch_size(inputs)
        found = [properties.get(str(i.get("name"))) for i in inputs]
        results = [p.to_json() for p in found if p is not None and not p.archived]
        return self._batch_body(200, results, [], started)

    def _batch_create_properties(self, request: Request, objectType: str) -> Response:
        properties = self._schema(objectType)[0]
        started = _iso_ms(time.time_ns() // 1_000_000)
        inputs = self._body(request).get("inputs") or []
        _check_batch_size(inputs)
        results, errors = [], []
        for item in inputs:
            try:
                prop = self._new_property(item, objectType)
            except PortalError as exc:
                errors.append(_standard_error(exc.category, exc.message, [str(item.get("name"))]))
                continue
            properties[prop.name] = prop
            results.append(prop.to_json())
        return self._batch_body(201, results, errors, started)

    def _list_groups(self, request: Request, objectType: str) -> Response:
        groups = self._schema(objectType)[1]
        return json_response({"results": [dict(g) for g in groups.values() if not g["archived"]]})

    def _read_group(self, request: Request, objectType: str, groupName: str) -> Response:
        group = self._group(objectType, groupName, archived=True)
        return json_response(dict(group))

    def _update_group(self, request: Request, objectType: str, groupName: str) -> Response:
        group = self._group(objectType, groupName)
        body = self._body(request)
        if "label" in body:
            group["label"] = str(body["label"])
        if "displayOrder" in body:
            group["displayOrder"] = int(body["displayOrder"])
        return json_response(dict(group))

    def _archive_group(self, request: Request, objectType: str, groupName: str) -> Response:
        group = self._group(objectType, groupName)
        if any(p.group_name == groupName and not p.archived for p in self._schema(objectType)[0].values()):
            raise PortalError(400, "VALIDATION_ERROR", f"Property group {groupName} still has properties")
        group["archived"] = True
        return Response(status=204)

    def _create_group(self, request: Request, objectType: str) -> Response:
        groups = self._schema(objectType)[1]
        body = self._body(request)
        name = str(body.get("name") or "")
        if not _PROPERTY_NAME_RE.match(name) or not body.get("label"):
            raise PortalError(400, "VALIDATION_ERROR", "A property group needs a lower-case name and a label")
        if name in groups:
            raise PortalError(
                409, "OBJECT_ALREADY_EXISTS", f"Property group named '{name}' already exists.", context={"name": [name]}
            )
        group = {
            "name": name,
            "label": str(body["label"]),
            "displayOrder": int(body.get("displayOrder", -1)),
            "archived": False,
        }
        groups[name] = group
        return json_response(dict(group), 201)
