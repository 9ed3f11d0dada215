"""Properties and property groups: the contact schema HubSpot seeds, and the ``/crm/v3/properties`` endpoints."""

from __future__ import annotations

import time
from collections.abc import Mapping
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


_LIFECYCLE_OPTIONS = _options(
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)
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

#: (name, label, type, fieldType, group, read-only, options): HubSpot's standard contact properties
STANDARD_PROPERTIES: tuple[tuple[str, str, str, str, str, bool, list[dict[str, Any]]], ...] = (
    ("email", "Email", "string", "text", "contactinformation", False, []),
    ("firstname", "First Name", "string", "text", "contactinformation", False, []),
    ("lastname", "Last Name", "string", "text", "contactinformation", False, []),
    ("company", "Company Name", "string", "text", "contactinformation", False, []),
    ("jobtitle", "Job Title", "string", "text", "contactinformation", False, []),
    ("industry", "Industry", "string", "text", "contactinformation", False, []),
    ("country", "Country/Region", "string", "text", "contactinformation", False, []),
    ("website", "Website URL", "string", "text", "contactinformation", False, []),
    ("work_email", "Work email", "string", "text", "contactinformation", False, []),
    ("hs_additional_emails", "Additional email addresses", "string", "textarea", "contactinformation", True, []),
    ("hubspot_owner_id", "Contact owner", "string", "text", "sales_properties", False, []),
    ("numemployees", "Number of Employees", "enumeration", "select", "contactinformation", False, _EMPLOYEE_OPTIONS),
    ("annualrevenue", "Annual Revenue", "number", "number", "contactinformation", False, []),
    ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation", False, _LIFECYCLE_OPTIONS),
    ("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties", False, _LEAD_STATUS_OPTIONS),
    ("createdate", "Create Date", "datetime", "date", "contactinformation", False, []),
    ("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", True, []),
    ("hs_lastmodifieddate", "Object last modified date/time", "datetime", "date", "contactinformation", True, []),
    ("hs_object_id", "Record ID", "number", "number", "contactinformation", True, []),
    ("hs_email_domain", "Email Domain", "string", "text", "contactinformation", True, []),
    (
        "hs_email_optout",
        "Unsubscribed from all email",
        "bool",
        "booleancheckbox",
        "emailinformation",
        True,
        _BOOL_OPTIONS,
    ),
    ("hs_email_hard_bounce_reason", "Email hard bounce reason", "string", "text", "emailinformation", True, []),
    ("hs_email_bounce", "Marketing emails bounced", "number", "number", "emailinformation", True, []),
    ("hs_email_open", "Marketing emails opened", "number", "number", "emailinformation", True, []),
    ("hs_email_click", "Marketing emails clicked", "number", "number", "emailinformation", True, []),
    ("hs_email_replied", "Marketing emails replied", "number", "number", "emailinformation", True, []),
    ("hs_email_last_open_date", "Last marketing email open date", "datetime", "date", "emailinformation", True, []),
    ("hs_analytics_num_page_views", "Number of Pageviews", "number", "number", "analyticsinformation", True, []),
    ("hs_analytics_num_visits", "Number of Sessions", "number", "number", "analyticsinformation", True, []),
    ("hs_analytics_first_timestamp", "Time First Seen", "datetime", "date", "analyticsinformation", True, []),
    ("hs_analytics_last_visit_timestamp", "Time of Last Session", "datetime", "date", "analyticsinformation", True, []),
    ("num_conversion_events", "Number of Form Submissions", "number", "number", "conversioninformation", True, []),
    ("notes_last_contacted", "Last Contacted", "datetime", "date", "sales_properties", True, []),
    ("notes_last_updated", "Last Activity Date", "datetime", "date", "sales_properties", True, []),
    (
        "hs_sales_email_last_replied",
        "Recent Sales Email Replied Date",
        "datetime",
        "date",
        "emailinformation",
        True,
        [],
    ),
    *(
        (
            f"hs_lifecyclestage_{stage}_date",
            f"Became a {label} Date",
            "datetime",
            "date",
            "contactinformation",
            True,
            [],
        )
        for stage, label in (
            ("subscriber", "Subscriber"),
            ("lead", "Lead"),
            ("marketingqualifiedlead", "Marketing Qualified Lead"),
            ("salesqualifiedlead", "Sales Qualified Lead"),
            ("opportunity", "Opportunity"),
            ("customer", "Customer"),
            ("evangelist", "Evangelist"),
            ("other", "Other Lifecycle Stage"),
        )
    ),
)
_STANDARD_GROUPS: tuple[tuple[str, str], ...] = (
    ("contactinformation", "Contact information"),
    ("emailinformation", "Email information"),
    ("analyticsinformation", "Web analytics history"),
    ("conversioninformation", "Conversion information"),
    ("sales_properties", "Sales properties"),
)


class PropertiesRoutes(HubSpotRoutes):
    """``/crm/v3/properties/{objectType}``: properties and groups (contacts only)."""

    def _list_properties(self, request: Request, objectType: str) -> Response:
        self._object_type(objectType)
        archived = self._flag(request, "archived")
        props = [p.to_json() for p in self.portal.properties.values() if p.archived == archived]
        return json_response({"results": props})

    def _read_property(self, request: Request, objectType: str, propertyName: str) -> Response:
        self._object_type(objectType)
        prop = self.portal.properties.get(propertyName)
        if prop is None or (prop.archived and not self._flag(request, "archived")):
            raise PortalError(
                404, "OBJECT_NOT_FOUND", f"Unable to find property {propertyName} on object type contacts"
            )
        return json_response(prop.to_json())

    def _new_property(self, body: Mapping[str, Any]) -> PropertyDef:
        name = str(body.get("name") or "")
        if not _PROPERTY_NAME_RE.match(name):
            raise PortalError(
                400,
                "VALIDATION_ERROR",
                f"Invalid property name {name!r}: use lower-case letters, digits and underscores",
            )
        if name in self.portal.properties:
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
        if group not in self.portal.groups or self.portal.groups[group]["archived"]:
            raise PortalError(400, "VALIDATION_ERROR", f"Property group {group!r} does not exist")
        label = str(body.get("label") or "")
        if not label:
            raise PortalError(400, "VALIDATION_ERROR", "label is required")
        options = [
            {
                "label": str(o.get("label") or o.get("value")),
                "value": str(o.get("value")),
                "displayOrder": int(o.get("displayOrder", i)),
                "hidden": bool(o.get("hidden", False)),
                "description": str(o.get("description") or ""),
            }
            for i, o in enumerate(body.get("options") or [])
            if isinstance(o, Mapping) and o.get("value") is not None
        ]
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
        self._object_type(objectType)
        prop = self._new_property(self._body(request))
        self.portal.properties[prop.name] = prop
        return json_response(prop.to_json(), 201)

    def _update_property(self, request: Request, objectType: str, propertyName: str) -> Response:
        self._object_type(objectType)
        prop = self.portal.properties.get(propertyName)
        if prop is None or prop.archived:
            raise PortalError(
                404, "OBJECT_NOT_FOUND", f"Unable to find property {propertyName} on object type contacts"
            )
        body = self._body(request)
        if prop.hubspot_defined and set(body) - {"options", "label", "description", "displayOrder", "hidden"}:
            raise PortalError(400, "VALIDATION_ERROR", f"{propertyName} is a HubSpot-defined property")
        for key, attr in (("label", "label"), ("description", "description"), ("groupName", "group_name")):
            if key in body:
                setattr(prop, attr, str(body[key]))
        if "options" in body and isinstance(body["options"], list):
            prop.options = [
                {
                    "label": str(o.get("label") or o.get("value")),
                    "value": str(o.get("value")),
                    "displayOrder": int(o.get("displayOrder", i)),
                    "hidden": bool(o.get("hidden", False)),
                    "description": str(o.get("description") or ""),
                }
                for i, o in enumerate(body["options"])
                if isinstance(o, Mapping)
            ]
            prop.refresh_options()
        prop.updated_at = _iso_ms(time.time_ns() // 1_000_000)
        return json_response(prop.to_json())

    def _archive_property(self, request: Request, objectType: str, propertyName: str) -> Response:
        self._object_type(objectType)
        prop = self.portal.properties.get(propertyName)
        if prop is None or prop.archived:
            raise PortalError(
                404, "OBJECT_NOT_FOUND", f"Unable to find property {propertyName} on object type contacts"
            )
        if prop.hubspot_defined:
            raise PortalError(
                400, "VALIDATION_ERROR", f"{propertyName} is a HubSpot-defined property and cannot be archived"
            )
        prop.archived = True  # the name stays reserved, as in HubSpot's recycle bin
        return Response(status=204)

    def _batch_read_properties(self, request: Request, objectType: str) -> Response:
        self._object_type(objectType)
        started = _iso_ms(time.time_ns() // 1_000_000)
        inputs = self._body(request).get("inputs") or []
        _check_batch_size(inputs)
        found = [self.portal.properties.get(str(i.get("name"))) for i in inputs]
        results = [p.to_json() for p in found if p is not None and not p.archived]
        return self._batch_body(200, results, [], started)

    def _batch_create_properties(self, request: Request, objectType: str) -> Response:
        self._object_type(objectType)
        started = _iso_ms(time.time_ns() // 1_000_000)
        inputs = self._body(request).get("inputs") or []
        _check_batch_size(inputs)
        results, errors = [], []
        for item in inputs:
            try:
                prop = self._new_property(item)
            except PortalError as exc:
                errors.append(_standard_error(exc.category, exc.message, [str(item.get("name"))]))
                continue
            self.portal.properties[prop.name] = prop
            results.append(prop.to_json())
        return self._batch_body(201, results, errors, started)

    def _list_groups(self, request: Request, objectType: str) -> Response:
        self._object_type(objectType)
        return json_response({"results": [dict(g) for g in self.portal.groups.values() if not g["archived"]]})

    def _read_group(self, request: Request, objectType: str, groupName: str) -> Response:
        self._object_type(objectType)
        group = self.portal.groups.get(groupName)
        if group is None:
            raise PortalError(404, "OBJECT_NOT_FOUND", f"Unable to find property group {groupName}")
        return json_response(dict(group))

    def _update_group(self, request: Request, objectType: str, groupName: str) -> Response:
        self._object_type(objectType)
        group = self.portal.groups.get(groupName)
        if group is None or group["archived"]:
            raise PortalError(404, "OBJECT_NOT_FOUND", f"Unable to find property group {groupName}")
        body = self._body(request)
        if "label" in body:
            group["label"] = str(body["label"])
        if "displayOrder" in body:
            group["displayOrder"] = int(body["displayOrder"])
        return json_response(dict(group))

    def _archive_group(self, request: Request, objectType: str, groupName: str) -> Response:
        self._object_type(objectType)
        group = self.portal.groups.get(groupName)
        if group is None or group["archived"]:
            raise PortalError(404, "OBJECT_NOT_FOUND", f"Unable to find property group {groupName}")
        if any(p.group_name == groupName and not p.archived for p in self.portal.properties.values()):
            raise PortalError(400, "VALIDATION_ERROR", f"Property group {groupName} still has properties")
        group["archived"] = True
        return Response(status=204)

    def _create_group(self, request: Request, objectType: str) -> Response:
        self._object_type(objectType)
        body = self._body(request)
        name = str(body.get("name") or "")
        if not _PROPERTY_NAME_RE.match(name) or not body.get("label"):
            raise PortalError(400, "VALIDATION_ERROR", "A property group needs a lower-case name and a label")
        if name in self.portal.groups:
            raise PortalError(
                409, "OBJECT_ALREADY_EXISTS", f"Property group named '{name}' already exists.", context={"name": [name]}
            )
        group = {
            "name": name,
            "label": str(body["label"]),
            "displayOrder": int(body.get("displayOrder", -1)),
            "archived": False,
        }
        self.portal.groups[name] = group
        return json_response(dict(group), 201)
