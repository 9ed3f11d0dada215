"""HubSpot sandbox: an in-memory portal behind a real HTTP server that ``hubspot-api-client`` talks to unchanged.

Start one with :func:`start_hubspot_sandbox` (background thread, for tests and ``leadsync demo``) or
:func:`serve_hubspot_sandbox` (foreground, for ``leadsync sandbox hubspot``), then point the SDK at it::

    with start_hubspot_sandbox(contacts=500, seed=7) as sandbox:
        client = hubspot.Client.create(access_token=sandbox.token, host=sandbox.url, base_url=sandbox.url)
        page = client.crm.contacts.basic_api.get_page(limit=100)

What is emulated, and where the emulator chose a behaviour HubSpot does not document precisely:

* Auth: ``Authorization: Bearer <token>`` on everything but ``/__sandbox/*``; 401 ``INVALID_AUTHENTICATION``
  (unknown token) or ``EXPIRED_AUTHENTICATION`` (see :meth:`HubSpotSandbox.expire_token`).
* Contacts ``/crm/v3/objects/contacts``: create, read (``idProperty=email`` too), update, archive, list
  (``limit`` <= 100, ``after`` cursor, id order), batch read/create/update/archive, search.
  Property values are strings; datetimes ISO-8601 with milliseconds and ``Z``.
* Writes are validated against the property schema. On batch endpoints, an unknown property, a read-only
  property, a non-number for a number property, a bad datetime or an enumeration value outside the
  options fail **that record** (HTTP 207, ``BatchResponseSimplePublicObjectWithErrors``; the good records
  land). These fail the **whole batch** with a 400 ``VALIDATION_ERROR`` and nothing lands, the way
  HubSpot rejects some inputs wholesale (a connector must split the batch to isolate the bad record):
  a value longer than :data:`MAX_VALUE_LENGTH` characters, an invalid address in the ``email`` property,
  duplicate ids in one batch, and more than :data:`BATCH_MAX_INPUTS` inputs.
* A write bumps ``lastmodifieddate``/``hs_lastmodifieddate`` when it changes a value (the portal clock is
  the wall clock in ms, never going backwards, so writes in one millisecond share it; :meth:`HubSpotPortal.bulk_stamp`
  gives many records one identical timestamp, as a bulk edit in the HubSpot UI does). A write that
  changes nothing leaves the record untouched.
* ``lifecyclestage`` only moves forward along the options' order (``other`` may go anywhere): an earlier
  stage is ignored (the call succeeds, the value is kept); ``""`` clears it. Entering a stage stamps
  ``hs_lifecyclestage_<stage>_date`` when empty.
* Search: filterGroups (OR of ANDs) with every operator of the SDK's ``Filter`` model, numeric comparison
  for numbers and datetimes (epoch-ms or ISO values), string comparison case-insensitive, one sort
  (default: id ascending; ties by id; records without a value last), ``limit`` <= 200 (default 10),
  ``after`` offset, ``total``; paging at or beyond :data:`SEARCH_RESULT_CAP` answers 400; filter-count
  limits answer 400 (:class:`SearchLimits`). With ``index_lag_s`` a record changed less than that long
  ago is searched (and returned by search) in its previous version, or not at all when new.
* Properties and property groups (list, read, create with 409 on conflict, update, archive, batch read
  and create), seeded with HubSpot's standard contact properties (:data:`STANDARD_PROPERTIES`).
* Rate limits (off unless ``rate_limit`` is set): a rolling window per token with HubSpot's
  ``X-HubSpot-RateLimit-*`` headers and a ``TEN_SECONDLY_ROLLING`` 429; a daily budget (``DAILY`` 429);
  search's own per-second limit (429 "You have reached your secondly limit.", no rate-limit headers on
  search responses). Every 429 carries ``Retry-After`` (seconds).
* Activity objects ``/crm/v3/objects/{calls|emails|meetings|notes|tasks}`` (plural, singular or type id
  such as ``0-48``): list, read (``associations=contacts`` too), create and batch create with
  ``associations`` to contacts (HubSpot's default type ids only: call 194, email 198, meeting 200,
  note 202, task 204; ``hs_timestamp`` required; enumerations validated), batch read (<= 100 ids, 207
  ``OBJECT_NOT_FOUND`` for missing ones). No search, update or archive of activities. Logging an activity
  (API or :meth:`HubSpotPortal.add_engagement`) modifies the contact like HubSpot does: ``lastmodifieddate``
  moves, ``notes_last_updated`` / ``notes_last_contacted`` follow, an ``INCOMING_EMAIL`` counts in
  ``hs_email_replied``. Seeded contacts get activity objects derived from ``person.events()`` (see
  :func:`seeded_engagements`), built lazily on first access from id blocks reserved at seeding, so that
  seeding stays fast and ids do not depend on the order of reads. Page views, visits, form submissions,
  email opens and clicks are not CRM objects in HubSpot's v3 API: they stay counters on the contact.
* Associations v4: ``POST /crm/v4/associations/{from}/{to}/batch/read`` (<= 1000 inputs, else 400; each
  result pages its ``to`` list at :data:`ASSOCIATION_PAGE_SIZE` with an opaque keyset ``paging.next.after``
  that the next request passes as the input's ``after``; an object with no association, or unknown, is a
  207 error entry ``NO_ASSOCIATIONS_FOUND``) and ``GET /crm/v4/objects/{type}/{id}/associations/{toType}``
  (``limit`` <= 500, ``after``), between contacts and activity types in either direction. HubSpot does not
  document the batch read's page size: 500 here, ``association_page_size`` to change it.
* Legacy workflow enrollment ``POST /automation/v2/workflows/{workflowId}/enrollments/contacts/{email}``:
  204, recorded (``GET /__sandbox/enrollments``, ``enrollments`` in stats), 404 for an unknown email.
  ``GET /automation/v2/workflows/enrollments/contacts/{vid}`` lists the workflows a contact is enrolled in.
* Fault injection and ``GET /__sandbox/stats``: see :mod:`connectors.sandbox._server`.
"""

from __future__ import annotations

import base64
import bisect
import fnmatch
import json
import math
import random
import re
import signal
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    FAULT_KINDS,
    Abort,
    RateLimit,
    RollingWindowLimiter,
    Route,
    SandboxApp,
    SandboxServer,
    gc_paused,
    json_response,
    parse_rate_limit,
    retry_after_header,
)
from connectors.sandbox.synthetic import SyntheticPerson, employee_bucket, iter_people

if TYPE_CHECKING:
    import hubspot

__all__ = [
    "ALWAYS_RETURNED_PROPERTIES",
    "ASSOCIATION_BATCH_MAX_INPUTS",
    "ASSOCIATION_PAGE_SIZE",
    "BATCH_MAX_INPUTS",
    "CALL_DISPOSITIONS",
    "COUNTER_KINDS",
    "DEFAULT_PROPERTIES",
    "ENGAGEMENT_TYPES",
    "LIFECYCLE_ORDER",
    "MAX_VALUE_LENGTH",
    "SEARCH_RESULT_CAP",
    "STANDARD_PROPERTIES",
    "EngagementType",
    "HubSpotPortal",
    "HubSpotSandbox",
    "HubSpotSandboxServer",
    "PortalError",
    "SearchLimits",
    "engagement_type",
    "person_properties",
    "seeded_engagements",
    "serve_hubspot_sandbox",
    "start_hubspot_sandbox",
]

#: search answers 400 when paging reaches this many results
SEARCH_RESULT_CAP = 10_000
SEARCH_MAX_LIMIT = 200
SEARCH_DEFAULT_LIMIT = 10
LIST_MAX_LIMIT = 100
LIST_DEFAULT_LIMIT = 10
BATCH_MAX_INPUTS = 100
#: longer string values reject the whole batch
MAX_VALUE_LENGTH = 65_536
#: rolling-window length of HubSpot's burst limit
RATE_WINDOW_S = 10.0
DEFAULT_DAILY_LIMIT = 250_000
#: CRM search's own limit, per token per second, when rate limiting is on
DEFAULT_SEARCH_PER_SECOND = 5
#: properties returned when a request names none (HubSpot's documented default for contacts)
DEFAULT_PROPERTIES: tuple[str, ...] = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
#: returned whatever the request asks for
ALWAYS_RETURNED_PROPERTIES: tuple[str, ...] = ("createdate", "hs_object_id", "lastmodifieddate")
#: the default lifecycle order; ``other`` sits outside it
LIFECYCLE_ORDER: tuple[str, ...] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
)
#: ``hubspot-api-client`` takes ``objectType`` as a name or as HubSpot's type id
_CONTACT_TYPES = frozenset({"contacts", "contact", "0-1"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;.]{2,}$")
_PROPERTY_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TOKEN_SPLIT_RE = re.compile(r"[\s@.,;:/\-_+()]+")
_INF = math.inf

_TYPE_FIELD_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "file", "html", "phonenumber"}),
    "number": frozenset({"number", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"}),
    "bool": frozenset({"booleancheckbox"}),
}


# helpers -------------------------------------------------------------------------------------------------


def _ms_of(dt: datetime) -> int:
    """Epoch milliseconds, floored (HubSpot stores ms)."""
    return (dt - _EPOCH) // _MS


def _iso_ms(ms: int) -> str:
    """HubSpot's datetime format: ``2024-05-01T12:34:56.789Z`` (exact integer arithmetic, no float)."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(value: datetime) -> str:
    """Like :func:`_iso_ms` for a datetime (the fast path when seeding many contacts)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


def _parse_ms(value: str) -> int | None:
    """Epoch ms from an epoch-ms string, an ISO datetime (naive = UTC) or an ISO date; None if neither."""
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _ms_of(parsed)


def _correlation_id() -> str:
    return str(uuid.uuid4())


def _error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": _correlation_id(), "category": category, **extra}


class PortalError(Exception):
    """A request the portal refuses, with HubSpot's status, category and message."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        return json_response(_error_body(self.category, self.message, **self.extra), self.status)


def _validation_message(problems: Sequence[Mapping[str, Any]]) -> str:
    return "Property values were not valid: " + json.dumps(list(problems), separators=(",", ":"))


def _problem(name: str, error: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name, "localizedErrorMessage": message}


# property schema -----------------------------------------------------------------------------------------


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


def person_properties(person: SyntheticPerson) -> dict[str, str]:
    """The HubSpot property values of a synthetic person (non-empty values only, as HubSpot stores them)."""

    def dt(value: datetime | None) -> str:
        return _iso(value) if value is not None else ""

    props = {
        "email": person.email,
        "firstname": person.first_name,
        "lastname": person.last_name,
        "company": person.company,
        "jobtitle": person.job_title,
        "industry": person.industry,
        "country": person.country,
        "website": f"https://www.{person.company_domain}" if person.company_domain else "",
        "work_email": person.work_email,
        "numemployees": employee_bucket(person.employees),
        "annualrevenue": str(person.annual_revenue) if person.annual_revenue is not None else "",
        "lifecyclestage": person.lifecycle_stage,
        "hs_lead_status": person.lead_status,
        "createdate": dt(person.created_at),
        "hs_email_domain": person.email_domain,
        "hs_email_optout": "true" if person.opted_out else "false",
        "hs_email_hard_bounce_reason": person.hard_bounce_reason,
        "hs_email_bounce": "1" if person.hard_bounced else "0",
        "hs_email_open": str(person.email_opens),
        "hs_email_click": str(person.email_clicks),
        "hs_email_replied": str(person.email_replies),
        "hs_email_last_open_date": dt(person.last_email_open_at),
        "hs_analytics_num_page_views": str(person.page_views),
        "hs_analytics_num_visits": str(person.visits),
        "hs_analytics_first_timestamp": dt(person.first_visit_at),
        "hs_analytics_last_visit_timestamp": dt(person.last_visit_at),
        "num_conversion_events": str(person.form_submissions),
        "hs_lifecyclestage_customer_date": dt(person.customer_at),
    }
    if person.lifecycle_stage and person.lifecycle_stage != "customer":
        # the other stage dates are not modelled; stamp the current stage at the last change
        props[f"hs_lifecyclestage_{person.lifecycle_stage}_date"] = dt(person.updated_at)
    if person.meetings or person.calls:
        props["notes_last_contacted"] = dt(min(person.updated_at, person.customer_at or person.updated_at))
    return {k: v for k, v in props.items() if v}


# engagements (activity objects) and their associations ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngagementType:
    """One HubSpot activity object type: names, association type ids (HUBSPOT_DEFINED) and properties."""

    name: str
    singular: str
    type_id: str
    #: association type id activity -> contact (HubSpot's defaults, API_NOTES 1.8)
    to_contact: int
    #: association type id contact -> activity
    from_contact: int
    properties: tuple[str, ...]
    enums: Mapping[str, frozenset[str]] = field(default_factory=dict)


#: properties every activity object has; the last three are set by HubSpot (read-only)
_ENGAGEMENT_COMMON = ("hs_timestamp", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate", "hs_object_id")
_ENGAGEMENT_READ_ONLY = frozenset({"hs_createdate", "hs_lastmodifieddate", "hs_object_id"})
_ENGAGEMENT_DATETIMES = frozenset(
    {"hs_timestamp", "hs_createdate", "hs_lastmodifieddate", "hs_meeting_start_time", "hs_meeting_end_time"}
)
_ENGAGEMENT_NUMBERS = frozenset({"hs_call_duration"})
#: returned whatever a read asks for (HubSpot's default properties of non-contact objects)
ENGAGEMENT_DEFAULT_PROPERTIES: tuple[str, ...] = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
#: engagement ids start here (HubSpot's activity ids are large numbers, far from contact ids)
ENGAGEMENT_ID_BASE = 40_000_000_001
#: HubSpot's limit on ``inputs`` of an associations batch read (changelog, February 2025)
ASSOCIATION_BATCH_MAX_INPUTS = 1000
#: associated ids per "from" object in one page (batch read and GET); HubSpot does not document the
#: batch read's page size, the GET's ``limit`` is at most 500: the emulator pages both at 500
ASSOCIATION_PAGE_SIZE = 500
NO_ASSOCIATIONS_SUBCATEGORY = "crm.associations.NO_ASSOCIATIONS_FOUND"
#: HubSpot's default call dispositions (outcome label -> the GUID stored in ``hs_call_disposition``)
CALL_DISPOSITIONS: Mapping[str, str] = {
    "Busy": "9d9162e7-6cf3-4944-bf63-4dff82258764",
    "Connected": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
    "Left live message": "a4c4c377-d246-4b32-a13b-75a56a4cd0ff",
    "Left voicemail": "b2cf5968-551e-4856-9783-52b3da59a7d0",
    "No answer": "73a0d17f-1163-4015-bdd5-ec830791da20",
    "Wrong number": "17b47fee-58de-441e-a44c-c6300d46f273",
}

ENGAGEMENT_TYPES: Mapping[str, EngagementType] = {
    t.name: t
    for t in (
        EngagementType(
            "calls",
            "call",
            "0-48",
            194,
            193,
            (
                "hs_call_title",
                "hs_call_body",
                "hs_call_direction",
                "hs_call_disposition",
                "hs_call_duration",
                "hs_call_status",
                "hs_call_from_number",
                "hs_call_to_number",
            ),
            {
                "hs_call_direction": frozenset({"INBOUND", "OUTBOUND"}),
                "hs_call_status": frozenset(
                    {"BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED"}
                    | {"IN_PROGRESS", "MISSED", "NO_ANSWER", "QUEUED", "RINGING"}
                ),
            },
        ),
        EngagementType(
            "emails",
            "email",
            "0-49",
            198,
            197,
            ("hs_email_direction", "hs_email_subject", "hs_email_text", "hs_email_html", "hs_email_status"),
            {
                "hs_email_direction": frozenset({"EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"}),
                "hs_email_status": frozenset({"BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"}),
            },
        ),
        EngagementType(
            "meetings",
            "meeting",
            "0-47",
            200,
            199,
            (
                "hs_meeting_title",
                "hs_meeting_body",
                "hs_internal_meeting_notes",
                "hs_meeting_location",
                "hs_meeting_start_time",
                "hs_meeting_end_time",
                "hs_meeting_outcome",
            ),
            {"hs_meeting_outcome": frozenset({"SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"})},
        ),
        EngagementType("notes", "note", "0-46", 202, 201, ("hs_note_body",)),
        EngagementType(
            "tasks",
            "task",
            "0-27",
            204,
            203,
            ("hs_task_subject", "hs_task_body", "hs_task_status", "hs_task_priority", "hs_task_type"),
            {
                "hs_task_status": frozenset({"NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"}),
                "hs_task_priority": frozenset({"NONE", "LOW", "MEDIUM", "HIGH"}),
                "hs_task_type": frozenset({"EMAIL", "CALL", "TODO"}),
            },
        ),
    )
}
#: ``objectType`` as the SDK may send it: plural name, singular name or HubSpot's type id
_ENGAGEMENT_ALIASES: Mapping[str, EngagementType] = {
    alias: spec for spec in ENGAGEMENT_TYPES.values() for alias in (spec.name, spec.singular, spec.type_id)
}
#: ``HubSpotPortal.add_engagement`` kinds that create an activity object: (object type, default properties)
_KIND_OBJECTS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "email_sent": ("emails", {"hs_email_direction": "EMAIL", "hs_email_status": "SENT"}),
    "email_reply": ("emails", {"hs_email_direction": "INCOMING_EMAIL"}),
    "call": ("calls", {"hs_call_direction": "OUTBOUND", "hs_call_status": "COMPLETED"}),
    "meeting": ("meetings", {"hs_meeting_outcome": "COMPLETED"}),
    "note": ("notes", {}),
    "task": ("tasks", {"hs_task_status": "NOT_STARTED", "hs_task_type": "TODO"}),
}
#: kinds that are no CRM object in HubSpot's v3 API (analytics and marketing email): counters only
COUNTER_KINDS: tuple[str, ...] = ("email_open", "email_click", "page_view", "visit", "form_submission")


def engagement_type(name: str) -> EngagementType | None:
    """The activity type an ``objectType`` path segment names (``calls``, ``call``, ``0-48``...), or None."""
    return _ENGAGEMENT_ALIASES.get(name.lower())


def _seeded_engagement_count(person: SyntheticPerson) -> int:
    """How many activity objects :func:`seeded_engagements` makes, known without generating the events."""
    return person.calls + 2 * person.meetings + 2 * person.email_replies


def seeded_engagements(person: SyntheticPerson) -> list[tuple[int, EngagementType, dict[str, str]]]:
    """The CRM activity objects of a synthetic person: (``hs_timestamp`` in ms, type, properties), by time.

    Derived from ``person.events()`` so that they agree with the contact's counters: every meeting and
    call; every email reply as the logged thread (the sales email, sent when the preceding open of that
    campaign happened, and the ``INCOMING_EMAIL`` reply: ``hs_email_replied`` counts them); a rep's note
    after each meeting. Opens, clicks, page views, visits and form submissions are not CRM objects in
    HubSpot's v3 API (analytics, marketing email and forms APIs): they stay counters on the contact.
    """
    emails, calls, meetings, notes = (ENGAGEMENT_TYPES[n] for n in ("emails", "calls", "meetings", "notes"))
    end = max(person.updated_at, person.last_visit_at or person.created_at)
    who = f"{person.first_name} {person.last_name}".strip() or person.email or "contact"
    half_hour = timedelta(minutes=30)
    last_open: dict[str, datetime] = {}
    out: list[tuple[int, EngagementType, dict[str, str]]] = []
    for event in person.events():
        kind, at, attrs = event.kind, event.timestamp, event.attributes
        if kind == "email_open":
            last_open[attrs.get("campaign", "")] = at
        elif kind == "email_reply":
            campaign = attrs.get("campaign", "")
            sent = last_open.get(campaign, at)
            out.append(
                (
                    _ms_of(sent),
                    emails,
                    {"hs_email_direction": "EMAIL", "hs_email_status": "SENT", "hs_email_subject": campaign},
                )
            )
            out.append(
                (_ms_of(at), emails, {"hs_email_direction": "INCOMING_EMAIL", "hs_email_subject": f"Re: {campaign}"})
            )
        elif kind == "meeting":
            outcome = attrs.get("outcome", "COMPLETED")
            props = {
                "hs_meeting_title": f"Meeting with {who}",
                "hs_meeting_outcome": outcome,
                "hs_meeting_start_time": _iso(at),
                "hs_meeting_end_time": _iso(at + half_hour),
            }
            out.append((_ms_of(at), meetings, props))
            note_at = min(at + half_hour, max(end, at))
            out.append((_ms_of(note_at), notes, {"hs_note_body": f"Meeting with {who}: {outcome.lower()}."}))
        elif kind == "call":
            outcome = attrs.get("outcome", "Connected")
            props = {
                "hs_call_title": f"Call with {who}",
                "hs_call_direction": "OUTBOUND",
                "hs_call_status": "COMPLETED",
                "hs_call_disposition": CALL_DISPOSITIONS.get(outcome, CALL_DISPOSITIONS["Connected"]),
                "hs_call_duration": str(int(attrs.get("duration_s", "0")) * 1000),
            }
            out.append((_ms_of(at), calls, props))
    out.sort(key=lambda item: item[0])
    return out


def _cursor(type_id: int, last_id: int) -> str:
    """An opaque ``after`` token like HubSpot's (base64 of ``0-<typeId>-<last id>``): keyset, not offset."""
    return base64.urlsafe_b64encode(f"0-{type_id}-{last_id}".encode()).decode()


def _cursor_id(after: str) -> int:
    try:
        text = base64.urlsafe_b64decode(after.encode() + b"=" * (-len(after) % 4)).decode()
        return int(text.rsplit("-", 1)[1])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise PortalError(400, "VALIDATION_ERROR", f"Invalid after value: {after}") from None


@dataclass(slots=True, eq=False)
class _Engagement:
    id: int
    spec: EngagementType
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    #: associated contacts
    contacts: list[int]


# the portal ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """Filter limits of one search request (HubSpot documents 5 groups, 6 filters per group, 18 in total)."""

    max_groups: int = 5
    max_filters_per_group: int = 6
    max_filters_total: int = 18


@dataclass(slots=True, eq=False)
class _Contact:
    id: int
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None
    #: typed values of ``properties`` for search, filled lazily, cleared on change
    typed: dict[str, Any] = field(default_factory=dict)
    #: the version search still serves while the index lags (None: not indexed yet)
    indexed: dict[str, str] | None = None
    #: monotonic time of the last change (index lag)
    changed_at: float = -_INF


View = Mapping[str, str]
_Predicate = Callable[[_Contact, View], bool]
_Getter = Callable[[_Contact, View], Any]


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _narrowest(ranges: list[list[int]]) -> list[int]:
    """The smallest id set an index gives for one filter group (the group's other filters still apply)."""
    return min(ranges, key=len)


def _combine(groups: Sequence[tuple[list[_Predicate], Any]]) -> _Predicate | None:
    """One predicate for OR-of-AND filter groups, without generator overhead in the common shapes."""
    if not groups:
        return None

    def all_of(preds: tuple[_Predicate, ...]) -> _Predicate:
        return lambda c, v: all(p(c, v) for p in preds)

    per_group = tuple(preds[0] if len(preds) == 1 else all_of(tuple(preds)) for preds, _ranges in groups)
    if len(per_group) == 1:
        return per_group[0]
    return lambda c, v: any(g(c, v) for g in per_group)


class HubSpotPortal:
    """The in-memory HubSpot account: contacts with indexes, the property schema, enrollments, a clock.

    Thread-safe: every public method takes :attr:`lock` (re-entrant; the HTTP app holds it around each
    handler). Raises :class:`PortalError` with HubSpot's status/category/message for refused requests.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        index_lag_s: float = 0.0,
        search_limits: SearchLimits | None = None,
        search_result_cap: int = SEARCH_RESULT_CAP,
        portal_id: int = 4_242_424,
        association_page_size: int = ASSOCIATION_PAGE_SIZE,
    ) -> None:
        self.lock = threading.RLock()
        self.portal_id = portal_id
        self.index_lag_s = index_lag_s
        self.search_limits = search_limits or SearchLimits()
        self.search_result_cap = search_result_cap
        self._id_rng = random.Random(f"hubspot-ids:{seed}")
        self._next_id = 101 + self._id_rng.randrange(50)
        self._contacts: dict[int, _Contact] = {}
        self._ids: list[int] = []
        self._archived: dict[int, _Contact] = {}
        self._by_email: dict[str, int] = {}
        self._by_updated: list[tuple[int, int]] = []
        self._recent: dict[int, float] = {}
        self._last_ms = 0
        self._version = 0
        self._search_cache: OrderedDict[str, list[tuple[_Contact, View]]] = OrderedDict()
        self._enrollments: list[dict[str, Any]] = []
        #: activity objects by id; per contact, per activity type, the associated ids ascending
        self.association_page_size = association_page_size
        self._engagements: dict[int, _Engagement] = {}
        self._activity: dict[int, dict[str, list[int]]] = {}
        self._next_engagement_id = ENGAGEMENT_ID_BASE
        #: seeded contacts whose activity objects are not built yet: reserved id blocks (see _reserve_engagements)
        self._lazy_starts: list[int] = []
        self._lazy_owners: list[int] = []
        self._lazy_people: dict[int, tuple[int, int, SyntheticPerson]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.properties: dict[str, PropertyDef] = {}
        for order, (name, label) in enumerate(_STANDARD_GROUPS):
            self.groups[name] = {"name": name, "label": label, "displayOrder": order, "archived": False}
        for name, label, ptype, ftype, group, read_only, options in STANDARD_PROPERTIES:
            self.properties[name] = PropertyDef(
                name, label, ptype, ftype, group, options=[dict(o) for o in options], read_only=read_only
            )

    # clock and bookkeeping

    def _tick(self) -> int:
        """Next write timestamp: wall clock in ms, never earlier than an earlier write.

        Writes in the same millisecond share a timestamp (a batch of 100 usually does in HubSpot too), so
        the clock never runs ahead of real time and readers must handle ties.
        """
        ms = max(time.time_ns() // 1_000_000, self._last_ms)
        self._last_ms = ms
        return ms

    @property
    def version(self) -> int:
        """Bumped by every change (search results are cached per version)."""
        return self._version

    def _changed(self) -> None:
        self._version += 1
        self._search_cache.clear()

    def _index_add(self, contact: _Contact) -> None:
        bisect.insort(self._by_updated, (contact.updated_ms, contact.id))

    def _index_remove(self, contact: _Contact) -> None:
        key = (contact.updated_ms, contact.id)
        i = bisect.bisect_left(self._by_updated, key)
        if i < len(self._by_updated) and self._by_updated[i] == key:
            del self._by_updated[i]

    def _note_change(self, contact: _Contact) -> None:
        """Before a change: remember the version search keeps serving while its index lags."""
        if self.index_lag_s <= 0:
            return
        now = time.monotonic()
        if now - contact.changed_at >= self.index_lag_s:
            # the index had caught up with the current version; a record still lagging keeps the older one
            # (or none, when it was created within the lag)
            contact.indexed = dict(contact.properties)
        contact.changed_at = now
        self._recent[contact.id] = now

    # seeding

    def seed_people(self, people: Iterable[SyntheticPerson]) -> list[str]:
        """Add synthetic people as contacts (no validation: real portals hold invalid legacy data too)."""
        ids: list[str] = []
        with self.lock, gc_paused():
            for person in people:
                props = person_properties(person)
                contact_id = self._next_id
                self._next_id += 1 if self._id_rng.random() < 0.9 else self._id_rng.randint(2, 60)
                created_ms, updated_ms = _ms_of(person.created_at), _ms_of(person.updated_at)
                props["hs_object_id"] = str(contact_id)
                props["lastmodifieddate"] = props["hs_lastmodifieddate"] = _iso(person.updated_at)
                contact = _Contact(contact_id, props, created_ms, updated_ms)
                self._contacts[contact_id] = contact
                self._ids.append(contact_id)
                if person.email:
                    self._by_email.setdefault(person.email.lower(), contact_id)
                self._by_updated.append((updated_ms, contact_id))
                self._reserve_engagements(contact_id, person)
                self._last_ms = max(self._last_ms, updated_ms)
                ids.append(str(contact_id))
            self._by_updated.sort()
            self._changed()
        return ids

    # reading

    def __len__(self) -> int:
        return len(self._contacts)

    def contact_ids(self, *, archived: bool = False) -> list[str]:
        """Ids in ascending order (active contacts, or archived ones)."""
        with self.lock:
            source = self._archived if archived else self._contacts
            return [str(i) for i in sorted(source)]

    def contact(self, contact_id: str | int) -> dict[str, str] | None:
        """A copy of an active contact's stored properties (empty values are absent), or None."""
        with self.lock:
            found = self._get(contact_id)
            return dict(found.properties) if found else None

    def find_by_email(self, email: str) -> str | None:
        with self.lock:
            found = self._by_email.get(email.strip().lower())
            return str(found) if found is not None else None

    def enrollments(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self._enrollments]

    def property(self, name: str) -> PropertyDef | None:
        with self.lock:
            found = self.properties.get(name)
            return found if found and not found.archived else None

    def _get(self, contact_id: str | int, *, archived: bool = False) -> _Contact | None:
        key = _int_id(contact_id)
        if key is None:
            return None
        return (self._archived if archived else self._contacts).get(key)

    def _lookup(self, value: str, id_property: str | None, *, archived: bool = False) -> _Contact | None:
        if id_property and id_property not in ("hs_object_id", "id"):
            if id_property != "email":
                prop = self.properties.get(id_property)
                if prop is None or not prop.has_unique_value:
                    raise PortalError(400, "VALIDATION_ERROR", f"{id_property} is not a unique identifier property")
                source = self._archived if archived else self._contacts
                return next((c for c in source.values() if c.properties.get(id_property) == value), None)
            if archived:
                return next(
                    (c for c in self._archived.values() if c.properties.get("email", "").lower() == value.lower()), None
                )
            found = self._by_email.get(value.strip().lower())
            return self._contacts.get(found) if found is not None else None
        return self._get(value, archived=archived)

    # validation and writes

    def _normalize(self, prop: PropertyDef, raw: Any) -> tuple[str, dict[str, Any] | None]:
        """(stored value, problem) for one written value; ``""`` clears the property."""
        if raw is None:
            return "", None
        value = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        if value == "":
            return "", None
        name = prop.name
        if prop.type == "number":
            try:
                number = float(value.strip())
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                return "", _problem(name, "INVALID_FLOAT", f"{value} was not a valid number.")
            return value.strip(), None
        if prop.type == "bool":
            if value.lower() not in ("true", "false"):
                return "", _problem(
                    name, "INVALID_OPTION", f"{value} was not one of the allowed options: [true, false]"
                )
            return value.lower(), None
        if prop.type == "enumeration":
            parts = value.split(";") if prop.field_type == "checkbox" else [value]
            bad = [p for p in parts if p not in prop.option_values]
            if bad:
                allowed = ", ".join(str(o["value"]) for o in prop.options)
                return "", _problem(name, "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{allowed}]")
            return value, None
        if prop.type in ("datetime", "date"):
            ms = _parse_ms(value)
            if ms is None:
                return "", _problem(name, "INVALID_DATE", f"{value} is not a valid date or datetime")
            if prop.type == "date":
                if ms % 86_400_000:
                    return "", _problem(name, "INVALID_DATE", f"{value} is not at midnight UTC")
                return _iso_ms(ms)[:10], None
            return _iso_ms(ms), None
        return value, None

    def _whole_request_problems(self, inputs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Problems that make HubSpot refuse the whole request (see the module docstring)."""
        problems: list[dict[str, Any]] = []
        for item in inputs:
            for name, raw in (item.get("properties") or {}).items():
                value = raw if isinstance(raw, str) else ""
                if len(value) > MAX_VALUE_LENGTH:
                    problems.append(
                        _problem(
                            name,
                            "MAX_LENGTH_EXCEEDED",
                            f"Property value exceeds the maximum length of {MAX_VALUE_LENGTH} characters",
                        )
                    )
                elif name == "email" and value and not _EMAIL_RE.match(value.strip()):
                    problems.append(_problem(name, "INVALID_EMAIL", f"Email address {value} is invalid"))
        return problems

    def _record_problems(self, properties: Mapping[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Normalized values and the per-record problems of one input."""
        normalized: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        if not isinstance(properties, Mapping):
            return normalized, [_problem("properties", "INVALID_INPUT", "properties must be an object")]
        for name, raw in properties.items():
            prop = self.properties.get(name)
            if prop is None or prop.archived:
                problems.append(_problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if prop.read_only:
                problems.append(
                    _problem(name, "READ_ONLY_VALUE", f"{name} is a read only property; its value cannot be set.")
                )
                continue
            value, problem = self._normalize(prop, raw)
            if problem is not None:
                problems.append(problem)
            else:
                normalized[name] = value
        return normalized, problems

    def _stage_rank(self) -> dict[str, int]:
        prop = self.properties["lifecyclestage"]
        order = sorted(prop.options, key=lambda o: o.get("displayOrder", 0))
        return {str(o["value"]): i for i, o in enumerate(order) if o["value"] != "other"}

    def _apply(self, contact: _Contact, values: Mapping[str, str]) -> bool:
        """Apply normalized values; returns whether anything changed (and then bumps the timestamps)."""
        props = contact.properties
        updates: dict[str, str] = {}
        for name, value in values.items():
            current = props.get(name, "")
            if value == current:
                continue
            if name == "lifecyclestage" and value and current:
                ranks = self._stage_rank()
                if value in ranks and current in ranks and ranks[value] < ranks[current]:
                    continue  # lifecycle never moves backwards; HubSpot answers 200 and keeps the value
            updates[name] = value
        if not updates:
            return False
        new_email = updates.get("email")
        if new_email:
            owner = self._by_email.get(new_email.lower())
            if owner is not None and owner != contact.id:
                raise PortalError(
                    409, "CONFLICT", f"Contact already exists. Existing ID: {owner}", context={"id": [str(owner)]}
                )
        self._note_change(contact)
        if "email" in updates:
            old = props.get("email", "").lower()
            if old and self._by_email.get(old) == contact.id:
                del self._by_email[old]
            if new_email:
                self._by_email[new_email.lower()] = contact.id
                updates["hs_email_domain"] = new_email.rsplit("@", 1)[-1].lower()
            else:
                updates["hs_email_domain"] = ""
        ms = self._tick()
        stage = updates.get("lifecyclestage")
        if stage and not props.get(f"hs_lifecyclestage_{stage}_date"):
            updates[f"hs_lifecyclestage_{stage}_date"] = _iso_ms(ms)
        if updates.get("createdate"):
            contact.created_ms = _parse_ms(updates["createdate"]) or contact.created_ms
        for name, value in updates.items():
            if value:
                props[name] = value
            else:
                props.pop(name, None)
        self._stamp(contact, ms)
        return True

    def _stamp(self, contact: _Contact, ms: int) -> None:
        self._index_remove(contact)
        contact.updated_ms = ms
        contact.properties["lastmodifieddate"] = contact.properties["hs_lastmodifieddate"] = _iso_ms(ms)
        contact.typed.clear()
        self._index_add(contact)
        self._changed()

    def _create(self, values: Mapping[str, str]) -> _Contact:
        email = values.get("email", "")
        if email and email.lower() in self._by_email:
            owner = self._by_email[email.lower()]
            raise PortalError(
                409, "CONFLICT", f"Contact already exists. Existing ID: {owner}", context={"id": [str(owner)]}
            )
        ms = self._tick()
        contact_id = self._next_id
        self._next_id += 1
        props = {k: v for k, v in values.items() if v}
        created_ms = _parse_ms(props["createdate"]) if props.get("createdate") else ms
        props["createdate"] = _iso_ms(created_ms or ms)
        props["hs_object_id"] = str(contact_id)
        props["lastmodifieddate"] = props["hs_lastmodifieddate"] = _iso_ms(ms)
        if email:
            props["hs_email_domain"] = email.rsplit("@", 1)[-1].lower()
        stage = props.get("lifecyclestage")
        if stage:
            props[f"hs_lifecyclestage_{stage}_date"] = _iso_ms(ms)
        contact = _Contact(contact_id, props, created_ms or ms, ms)
        if self.index_lag_s > 0:
            contact.changed_at = time.monotonic()
            self._recent[contact_id] = contact.changed_at
        self._contacts[contact_id] = contact
        self._ids.append(contact_id)
        if email:
            self._by_email[email.lower()] = contact_id
        self._index_add(contact)
        self._changed()
        return contact

    def _check_whole(self, inputs: Sequence[Mapping[str, Any]]) -> None:
        problems = self._whole_request_problems(inputs)
        if problems:
            raise PortalError(400, "VALIDATION_ERROR", _validation_message(problems), errors=_error_details(problems))

    def create_contact(self, properties: Mapping[str, Any]) -> str:
        """Create a contact the way ``POST /crm/v3/objects/contacts`` does; returns its id.

        :raises PortalError: 400 on invalid values, 409 when the email exists.
        """
        with self.lock:
            self._check_whole([{"properties": properties}])
            values, problems = self._record_problems(properties)
            if problems:
                raise PortalError(
                    400, "VALIDATION_ERROR", _validation_message(problems), errors=_error_details(problems)
                )
            return str(self._create(values).id)

    def update_contact(self, contact_id: str | int, properties: Mapping[str, Any]) -> bool:
        """Update like ``PATCH /crm/v3/objects/contacts/{id}``; returns whether anything changed.

        :raises PortalError: 404 for an unknown id, 400 on invalid values.
        """
        with self.lock:
            contact = self._get(contact_id)
            if contact is None:
                raise _not_found(str(contact_id))
            self._check_whole([{"properties": properties}])
            values, problems = self._record_problems(properties)
            if problems:
                raise PortalError(
                    400, "VALIDATION_ERROR", _validation_message(problems), errors=_error_details(problems)
                )
            return self._apply(contact, values)

    def track_engagement(self, contact_id: str | int, properties: Mapping[str, Any]) -> bool:
        """Change read-only analytics properties the way HubSpot's own tracking does (page views, opens...).

        API clients cannot write these (``update_contact`` refuses them); the demo and tests use this to
        play the part of a visitor. Values are stored as given; the modification timestamp moves.
        """
        with self.lock:
            contact = self._get(contact_id)
            if contact is None:
                raise _not_found(str(contact_id))
            return self._apply(contact, {k: str(v) for k, v in properties.items()})

    def archive_contact(self, contact_id: str | int) -> bool:
        """Archive (soft-delete): the contact leaves list, search and email lookups at once."""
        with self.lock:
            contact = self._get(contact_id)
            if contact is None:
                return False
            del self._contacts[contact.id]
            i = bisect.bisect_left(self._ids, contact.id)
            del self._ids[i]
            self._index_remove(contact)
            email = contact.properties.get("email", "").lower()
            if email and self._by_email.get(email) == contact.id:
                del self._by_email[email]
            contact.archived_ms = self._tick()
            self._archived[contact.id] = contact
            self._recent.pop(contact.id, None)
            self._changed()
            return True

    def bulk_stamp(
        self,
        ids: Iterable[str | int] | None = None,
        *,
        count: int | None = None,
        at: datetime | None = None,
    ) -> int:
        """Give many contacts one identical ``lastmodifieddate``, as a bulk edit in HubSpot does.

        ``ids`` (default: the first ``count`` contacts by id, or all of them); ``at`` (default: the next
        tick of the portal clock). Returns the timestamp in epoch ms. This is how tests build more than
        10,000 records sharing one timestamp.
        """
        with self.lock:
            if ids is None:
                chosen = list(self._contacts.values())[: count if count is not None else None]
            else:
                chosen = [c for c in (self._get(i) for i in ids) if c is not None]
            ms = _ms_of(at) if at is not None else self._tick()
            self._last_ms = max(self._last_ms, ms)
            iso = _iso_ms(ms)
            for contact in chosen:
                self._note_change(contact)
                contact.updated_ms = ms
                contact.properties["lastmodifieddate"] = contact.properties["hs_lastmodifieddate"] = iso
                contact.typed.clear()
            self._by_updated = sorted((c.updated_ms, c.id) for c in self._contacts.values())
            self._changed()
            return ms

    def record_enrollment(self, workflow_id: str, email: str) -> dict[str, Any]:
        """Enroll a contact by email into a (legacy) workflow.

        :raises PortalError: 404 when no active contact has that email.
        """
        with self.lock:
            found = self._by_email.get(email.strip().lower())
            if found is None:
                raise PortalError(404, "OBJECT_NOT_FOUND", f"Contact with email {email} does not exist")
            entry = {
                "workflowId": workflow_id,
                "email": email,
                "contactId": str(found),
                "enrolledAt": _iso_ms(time.time_ns() // 1_000_000),
            }
            self._enrollments.append(entry)
            return dict(entry)

    # engagements and associations

    def _take_engagement_id(self) -> int:
        engagement_id = self._next_engagement_id
        self._next_engagement_id += 1
        return engagement_id

    def _reserve_engagements(self, contact_id: int, person: SyntheticPerson) -> None:
        """Reserve the id block of a seeded contact's activity objects; they are built on first access.

        Generating every person's events at seeding time would triple the time it takes to seed a large
        portal; reserving ids keeps them deterministic whatever the order of later reads.
        """
        size = _seeded_engagement_count(person)
        if size:
            self._lazy_starts.append(self._next_engagement_id)
            self._lazy_owners.append(contact_id)
            self._lazy_people[contact_id] = (self._next_engagement_id, size, person)
            self._next_engagement_id += size

    def _materialize(self, contact_id: int) -> None:
        pending = self._lazy_people.pop(contact_id, None)
        if pending is None:
            return
        start, size, person = pending
        for k, (ms, spec, props) in enumerate(seeded_engagements(person)):
            engagement_id = start + k if k < size else self._take_engagement_id()
            self._store_engagement(_Engagement(engagement_id, spec, props, ms, ms, [contact_id]), ms)

    def _materialize_all(self) -> None:
        with gc_paused():
            for contact_id in list(self._lazy_people):
                self._materialize(contact_id)

    def _store_engagement(self, engagement: _Engagement, ms: int) -> None:
        props = engagement.properties
        props.setdefault("hs_timestamp", _iso_ms(ms))
        props["hs_createdate"] = _iso_ms(engagement.created_ms)
        props["hs_lastmodifieddate"] = _iso_ms(engagement.updated_ms)
        props["hs_object_id"] = str(engagement.id)
        self._engagements[engagement.id] = engagement
        for contact_id in engagement.contacts:
            ids = self._activity.setdefault(contact_id, {}).setdefault(engagement.spec.name, [])
            if not ids or ids[-1] < engagement.id:
                ids.append(engagement.id)
            else:
                bisect.insort(ids, engagement.id)

    def _engagement(self, engagement_id: int | None) -> _Engagement | None:
        if engagement_id is None:
            return None
        found = self._engagements.get(engagement_id)
        if found is None and self._lazy_people:
            i = bisect.bisect_right(self._lazy_starts, engagement_id) - 1
            if i >= 0:
                self._materialize(self._lazy_owners[i])
                found = self._engagements.get(engagement_id)
        return found

    @staticmethod
    def _spec(object_type: str) -> EngagementType:
        spec = engagement_type(object_type)
        if spec is None:
            raise PortalError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
        return spec

    def engagement(self, engagement_id: str | int) -> dict[str, str] | None:
        """A copy of an activity object's properties, or None."""
        with self.lock:
            found = self._engagement(_int_id(engagement_id))
            return dict(found.properties) if found else None

    def engagements(self, contact_id: str | int, object_type: str | None = None) -> list[dict[str, Any]]:
        """Ground truth for tests: the contact's activity objects ``{"id", "type", "properties"}`` by id."""
        with self.lock:
            key = _int_id(contact_id)
            if key is None:
                return []
            self._materialize(key)
            by_type = self._activity.get(key, {})
            names = [self._spec(object_type).name] if object_type else list(ENGAGEMENT_TYPES)
            ids = sorted(i for name in names for i in by_type.get(name, []))
            return [
                {
                    "id": str(i),
                    "type": self._engagements[i].spec.name,
                    "properties": dict(self._engagements[i].properties),
                }
                for i in ids
            ]

    def _engagement_values(self, spec: EngagementType, properties: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Normalized values and problems of an activity object's input (``hs_timestamp`` is required)."""
        if not isinstance(properties, Mapping):
            return {}, [_problem("properties", "INVALID_INPUT", "properties must be an object")]
        known = set(_ENGAGEMENT_COMMON) | set(spec.properties)
        values: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for name, raw in properties.items():
            if name not in known:
                problems.append(_problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if name in _ENGAGEMENT_READ_ONLY:
                problems.append(
                    _problem(name, "READ_ONLY_VALUE", f"{name} is a read only property; its value cannot be set.")
                )
                continue
            value = "" if raw is None else ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
            if not value:
                continue
            if name in _ENGAGEMENT_DATETIMES:
                ms = _parse_ms(value)
                if ms is None:
                    problems.append(_problem(name, "INVALID_DATE", f"{value} is not a valid date or datetime"))
                    continue
                value = _iso_ms(ms)
            elif name in _ENGAGEMENT_NUMBERS:
                try:
                    float(value)
                except ValueError:
                    problems.append(_problem(name, "INVALID_FLOAT", f"{value} was not a valid number."))
                    continue
            elif name in spec.enums and value not in spec.enums[name]:
                allowed = ", ".join(sorted(spec.enums[name]))
                problems.append(
                    _problem(name, "INVALID_OPTION", f"{value} was not one of the allowed options: [{allowed}]")
                )
                continue
            values[name] = value
        if not values.get("hs_timestamp") and not any(p["name"] == "hs_timestamp" for p in problems):
            problems.append(_problem("hs_timestamp", "REQUIRED_FIELD", 'Property "hs_timestamp" is required'))
        return values, problems

    def _association_targets(self, spec: EngagementType, associations: Any) -> list[_Contact]:
        """The contacts a create request associates the new activity with.

        :raises PortalError: 400 for an unknown contact or an association type other than the default.
        """
        if associations is None:
            return []
        if not isinstance(associations, list):
            raise PortalError(400, "VALIDATION_ERROR", "associations must be a list")
        targets: list[_Contact] = []
        for item in associations:
            to = (item.get("to") or {}) if isinstance(item, Mapping) else {}
            contact = self._get(str(to.get("id", "")))
            if contact is None:
                raise PortalError(
                    400,
                    "VALIDATION_ERROR",
                    f"One or more associations are invalid: no contact with id {to.get('id')!r}",
                    subCategory="crm.associations.INVALID_OBJECT_IDS",
                )
            for kind in item.get("types") or []:
                category = str(kind.get("associationCategory") or "")
                type_id = kind.get("associationTypeId")
                if category != "HUBSPOT_DEFINED" or str(type_id) != str(spec.to_contact):
                    raise PortalError(
                        400,
                        "VALIDATION_ERROR",
                        f"One or more associations are invalid: {category} {type_id} is not an association type "
                        f"from {spec.singular} to contact (HUBSPOT_DEFINED {spec.to_contact})",
                        subCategory="crm.associations.INVALID_ASSOCIATION_TYPE",
                    )
            if contact not in targets:
                targets.append(contact)
        return targets

    def _new_engagement(
        self, spec: EngagementType, values: Mapping[str, str], contacts: Sequence[_Contact]
    ) -> _Engagement:
        ms = self._tick()
        for contact in contacts:
            self._materialize(contact.id)  # seeded ids first, so the new one stays the newest
        engagement = _Engagement(self._take_engagement_id(), spec, dict(values), ms, ms, [c.id for c in contacts])
        self._store_engagement(engagement, ms)
        for contact in contacts:
            self._log_activity(contact, engagement)
        return engagement

    def _log_activity(self, contact: _Contact, engagement: _Engagement) -> None:
        """What HubSpot does to a contact when an activity is logged on it: the record is modified.

        ``notes_last_updated`` (last activity) and, for calls, meetings and sent emails,
        ``notes_last_contacted`` move forward; an incoming email counts as a reply (``hs_email_replied``).
        """
        props, spec = contact.properties, engagement.spec
        at = engagement.properties["hs_timestamp"]
        at_ms = _parse_ms(at) or 0
        updates: dict[str, str] = {}

        def later(name: str) -> None:
            current = _parse_ms(props.get(name, ""))
            if current is None or current < at_ms:
                updates[name] = at

        later("notes_last_updated")
        incoming = spec.name == "emails" and engagement.properties.get("hs_email_direction") == "INCOMING_EMAIL"
        if spec.name in ("calls", "meetings") or (spec.name == "emails" and not incoming):
            later("notes_last_contacted")
        if incoming:
            updates["hs_email_replied"] = str(_count(props.get("hs_email_replied")) + 1)
            later("hs_sales_email_last_replied")
        if not self._apply(contact, updates):
            self._note_change(contact)
            self._stamp(contact, self._tick())

    def _track_counters(self, contact: _Contact, kind: str, at: str) -> None:
        """A counter-only event (see :data:`COUNTER_KINDS`): counters move, the contact is modified."""
        props = contact.properties
        at_ms = _parse_ms(at) or 0
        updates: dict[str, str] = {}

        def bump(name: str, floor: int = 0) -> int:
            value = max(_count(props.get(name)) + 1, floor)
            updates[name] = str(value)
            return value

        def later(name: str) -> None:
            current = _parse_ms(props.get(name, ""))
            if current is None or current < at_ms:
                updates[name] = at

        if kind == "email_open":
            bump("hs_email_open")
            later("hs_email_last_open_date")
        elif kind == "email_click":
            clicks = bump("hs_email_click")
            if _count(props.get("hs_email_open")) < clicks:  # a click implies an open
                updates["hs_email_open"] = str(clicks)
        elif kind in ("visit", "page_view"):
            if kind == "visit" or not _count(props.get("hs_analytics_num_visits")):
                bump("hs_analytics_num_visits")
            bump("hs_analytics_num_page_views")
            later("hs_analytics_last_visit_timestamp")
            if not props.get("hs_analytics_first_timestamp"):
                updates["hs_analytics_first_timestamp"] = at
        elif kind == "form_submission":
            bump("num_conversion_events")
        if not self._apply(contact, updates):
            self._note_change(contact)
            self._stamp(contact, self._tick())

    def add_engagement(
        self,
        contact_id: str | int,
        kind: str,
        timestamp: datetime | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Log an activity on a contact, as a rep or HubSpot's tracking would; returns the new object's id.

        ``kind``: an activity object type (``emails``, ``calls``, ``meetings``, ``notes``, ``tasks``, or its
        singular), a canonical kind that makes one (``email_sent``, ``email_reply``, ``call``, ``meeting``,
        ``note``, ``task``, with sensible default properties), or a counter-only kind
        (:data:`COUNTER_KINDS`: no object, returns None). Either way the contact's ``lastmodifieddate``
        moves and its counters stay consistent. ``timestamp`` (default: now) becomes ``hs_timestamp``.

        :raises PortalError: 404 for an unknown contact, 400 for an unknown kind or invalid properties.
        """
        with self.lock:
            contact = self._get(contact_id)
            if contact is None:
                raise _not_found(str(contact_id))
            at = _iso_ms(_ms_of(timestamp) if timestamp is not None else time.time_ns() // 1_000_000)
            name = kind.strip().lower()
            if name in COUNTER_KINDS:
                self._track_counters(contact, name, at)
                return None
            object_type, defaults = _KIND_OBJECTS.get(name, (name, {}))
            spec = self._spec(object_type)
            values, problems = self._engagement_values(spec, {"hs_timestamp": at, **defaults, **(properties or {})})
            if problems:
                raise PortalError(
                    400, "VALIDATION_ERROR", _validation_message(problems), errors=_error_details(problems)
                )
            return str(self._new_engagement(spec, values, [contact]).id)

    def create_engagement(self, object_type: str, body: Mapping[str, Any]) -> _Engagement:
        """``POST /crm/v3/objects/{objectType}``: properties plus ``associations`` to contacts.

        :raises PortalError: 400 for invalid properties, associations or object type.
        """
        with self.lock:
            spec = self._spec(object_type)
            values, problems = self._engagement_values(spec, body.get("properties") or {})
            if problems:
                raise PortalError(
                    400, "VALIDATION_ERROR", _validation_message(problems), errors=_error_details(problems)
                )
            return self._new_engagement(spec, values, self._association_targets(spec, body.get("associations")))

    def batch_create_engagements(
        self, object_type: str, inputs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[_Engagement], list[dict[str, Any]]]:
        """Create per record: (created objects, HubSpot error objects); more than 100 inputs is a 400."""
        with self.lock:
            spec = self._spec(object_type)
            _check_batch_size(inputs)
            done: list[_Engagement] = []
            errors: list[dict[str, Any]] = []
            for n, item in enumerate(inputs):
                values, problems = self._engagement_values(spec, item.get("properties") or {})
                if problems:
                    errors.append(
                        _standard_error("VALIDATION_ERROR", _validation_message(problems), [str(n)], problems)
                    )
                    continue
                try:
                    targets = self._association_targets(spec, item.get("associations"))
                except PortalError as exc:
                    errors.append(_standard_error(exc.category, exc.message, [str(n)]))
                    continue
                done.append(self._new_engagement(spec, values, targets))
            return done, errors

    def batch_read_engagements(
        self, object_type: str, inputs: Sequence[Mapping[str, Any]]
    ) -> tuple[EngagementType, list[_Engagement], list[str]]:
        """(type, found objects in input order, missing ids); more than 100 inputs is a 400."""
        with self.lock:
            spec = self._spec(object_type)
            _check_batch_size(inputs)
            found: list[_Engagement] = []
            missing: list[str] = []
            for item in inputs:
                key = str(item.get("id", ""))
                engagement = self._engagement(_int_id(key))
                if engagement is None or engagement.spec is not spec:
                    missing.append(key)
                else:
                    found.append(engagement)
            return spec, found, missing

    def list_engagements(
        self, object_type: str, *, limit: int, after: str | None
    ) -> tuple[EngagementType, list[_Engagement], str | None]:
        """One page of an activity type in id order from cursor ``after`` (an id, as for contacts)."""
        with self.lock:
            spec = self._spec(object_type)
            self._materialize_all()
            ids = sorted(e.id for e in self._engagements.values() if e.spec is spec)
            start = 0
            if after:
                cursor = _int_id(after)
                if cursor is None:
                    raise PortalError(400, "VALIDATION_ERROR", f"Invalid after value: {after}")
                start = bisect.bisect_left(ids, cursor)
            chunk = ids[start : start + limit]
            nxt = str(ids[start + limit]) if start + limit < len(ids) else None
            return spec, [self._engagements[i] for i in chunk], nxt

    def _association_pair(self, from_type: str, to_type: str) -> tuple[EngagementType | None, EngagementType | None]:
        """Both sides of an association read: None stands for contacts.

        :raises PortalError: 400 when a side is neither contacts nor an activity type.
        """
        sides: list[EngagementType | None] = []
        for name in (from_type, to_type):
            if name.lower() in _CONTACT_TYPES:
                sides.append(None)
            else:
                sides.append(self._spec(name))
        return sides[0], sides[1]

    def _associated(self, source: EngagementType | None, raw_id: str, target: EngagementType | None) -> list[int]:
        """Ids associated with one object, ascending (empty for unknown or archived objects)."""
        key = _int_id(raw_id)
        if key is None:
            return []
        if source is None:
            if target is None or key not in self._contacts:
                return []
            self._materialize(key)
            return self._activity.get(key, {}).get(target.name, [])
        engagement = self._engagement(key)
        if target is not None or engagement is None or engagement.spec is not source:
            return []
        return sorted(c for c in engagement.contacts if c in self._contacts)

    def associations_page(
        self, from_type: str, object_id: str, to_type: str, *, after: str | None = None, limit: int | None = None
    ) -> tuple[list[dict[str, Any]], str | None, int]:
        """One page of one object's associations: (``to`` entries, next cursor, total associated)."""
        with self.lock:
            source, target = self._association_pair(from_type, to_type)
            ids = self._associated(source, object_id, target)
            type_id = source.to_contact if source is not None else target.from_contact if target is not None else 1
            size = limit or self.association_page_size
            start = bisect.bisect_right(ids, _cursor_id(after)) if after else 0
            page = ids[start : start + size]
            kind = [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]
            entries = [{"toObjectId": i, "associationTypes": kind} for i in page]
            nxt = _cursor(type_id, page[-1]) if page and start + size < len(ids) else None
            return entries, nxt, len(ids)

    def read_associations(
        self, from_type: str, to_type: str, inputs: Any
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``POST /crm/v4/associations/{from}/{to}/batch/read``: (results, errors).

        An object without associations, or unknown, is an error entry (``NO_ASSOCIATIONS_FOUND``, so the
        answer is a 207), as in HubSpot; each result pages its own ``to`` list with ``paging.next.after``.

        :raises PortalError: 400 for an unknown object type, a bad cursor, or more than 1000 inputs.
        """
        with self.lock:
            if not isinstance(inputs, list) or any(not isinstance(i, Mapping) for i in inputs):
                raise PortalError(400, "VALIDATION_ERROR", "inputs must be a list of objects")
            if len(inputs) > ASSOCIATION_BATCH_MAX_INPUTS:
                raise PortalError(
                    400,
                    "VALIDATION_ERROR",
                    f"Batch input limit exceeded: {len(inputs)} inputs given, the maximum is "
                    f"{ASSOCIATION_BATCH_MAX_INPUTS}",
                    context={"maxInputs": [str(ASSOCIATION_BATCH_MAX_INPUTS)]},
                )
            source, target = self._association_pair(from_type, to_type)
            from_name = source.singular if source is not None else "contact"
            to_name = target.singular if target is not None else "contact"
            results: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            with gc_paused():
                for item in inputs:
                    raw_id = str(item.get("id", ""))
                    after = item.get("after")
                    entries, nxt, total = self.associations_page(from_type, raw_id, to_type, after=after or None)
                    if not total:
                        errors.append(
                            {
                                **_standard_error(
                                    "OBJECT_NOT_FOUND", f"No {to_name} is associated with {from_name} {raw_id}.", []
                                ),
                                "subCategory": NO_ASSOCIATIONS_SUBCATEGORY,
                                "context": {
                                    "fromObjectId": [raw_id],
                                    "fromObjectType": [from_name],
                                    "toObjectType": [to_name],
                                },
                            }
                        )
                        continue
                    result: dict[str, Any] = {"from": {"id": raw_id}, "to": entries}
                    if nxt is not None:
                        result["paging"] = {"next": {"after": nxt}}
                    results.append(result)
            return results, errors

    # batch operations (the HTTP layer renders the results)

    def batch_read(
        self, inputs: Sequence[Mapping[str, Any]], *, id_property: str | None = None, archived: bool = False
    ) -> tuple[list[_Contact], list[str]]:
        with self.lock:
            _check_batch_size(inputs)
            found: list[_Contact] = []
            missing: list[str] = []
            for item in inputs:
                key = str(item.get("id", ""))
                contact = self._lookup(key, id_property or item.get("idProperty"), archived=archived)
                if contact is None:
                    missing.append(key)
                else:
                    found.append(contact)
            return found, missing

    def batch_update(
        self, inputs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[tuple[_Contact, Mapping[str, Any]]], list[dict[str, Any]]]:
        """Apply per-record; returns (updated contacts with their input, HubSpot error objects).

        :raises PortalError: 400 for the whole batch (size, duplicate ids, too-long values, invalid email).
        """
        with self.lock:
            _check_batch_size(inputs)
            counts = Counter(str(i.get("id")) for i in inputs)
            duplicates = sorted(k for k, n in counts.items() if n > 1)
            if duplicates:
                raise PortalError(
                    400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique"
                )
            self._check_whole(inputs)
            done: list[tuple[_Contact, Mapping[str, Any]]] = []
            errors: list[dict[str, Any]] = []
            missing: list[str] = []
            for item in inputs:
                key = str(item.get("id", ""))
                contact = self._lookup(key, item.get("idProperty"))
                if contact is None:
                    missing.append(key)
                    continue
                values, problems = self._record_problems(item.get("properties") or {})
                if problems:
                    errors.append(_standard_error("VALIDATION_ERROR", _validation_message(problems), [key], problems))
                    continue
                try:
                    self._apply(contact, values)
                except PortalError as exc:
                    errors.append(_standard_error(exc.category, exc.message, [key]))
                    continue
                done.append((contact, item))
            if missing:
                errors.insert(0, _missing_error(missing))
            return done, errors

    def batch_create(
        self, inputs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[tuple[_Contact, Mapping[str, Any]]], list[dict[str, Any]]]:
        """Create per record; same whole-batch rules as :meth:`batch_update`."""
        with self.lock:
            _check_batch_size(inputs)
            self._check_whole(inputs)
            done: list[tuple[_Contact, Mapping[str, Any]]] = []
            errors: list[dict[str, Any]] = []
            for n, item in enumerate(inputs):
                values, problems = self._record_problems(item.get("properties") or {})
                if problems:
                    errors.append(
                        _standard_error("VALIDATION_ERROR", _validation_message(problems), [str(n)], problems)
                    )
                    continue
                try:
                    done.append((self._create(values), item))
                except PortalError as exc:
                    errors.append(_standard_error(exc.category, exc.message, [str(n)]))
            return done, errors

    # listing

    def list_page(self, *, limit: int, after: str | None, archived: bool = False) -> tuple[list[_Contact], str | None]:
        """One page in id order from cursor ``after`` (the id to start at); returns (page, next cursor)."""
        with self.lock:
            if archived:
                ids = sorted(self._archived)
                source = self._archived
            else:
                ids, source = self._ids, self._contacts
            start = 0
            if after:
                cursor = _int_id(after)
                if cursor is None:
                    raise PortalError(400, "VALIDATION_ERROR", f"Invalid after value: {after}")
                start = bisect.bisect_left(ids, cursor)
            chunk = ids[start : start + limit]
            nxt = str(ids[start + limit]) if start + limit < len(ids) else None
            return [source[i] for i in chunk], nxt

    # search

    def search(self, body: Mapping[str, Any]) -> tuple[int, list[tuple[_Contact, View]], int | None]:
        """Run a search request body; returns (total, page of (contact, searched version), next offset).

        :raises PortalError: 400 for invalid requests, filter limits, and paging at or past the result cap.
        """
        with self.lock:
            limit = _int_param(body.get("limit"), "limit", SEARCH_DEFAULT_LIMIT)
            if not 0 <= limit <= SEARCH_MAX_LIMIT:
                raise PortalError(
                    400, "VALIDATION_ERROR", f"limit must be between 0 and {SEARCH_MAX_LIMIT}, got {limit}"
                )
            after = _int_param(body.get("after"), "after", 0)
            if after < 0:
                raise PortalError(400, "VALIDATION_ERROR", f"after must be a non-negative offset, got {after}")
            if after >= self.search_result_cap:
                raise PortalError(
                    400,
                    "VALIDATION_ERROR",
                    f"Cannot page past {self.search_result_cap} results (after={after}): "
                    "narrow the query, e.g. by a lastmodifieddate or hs_object_id range",
                )
            groups = self._compile_groups(body.get("filterGroups") or [])
            sort = self._compile_sort(body.get("sorts") or [])
            query = str(body.get("query") or "").strip().lower()
            with gc_paused():
                matched = self._matches(body, groups, sort, query)
            total = len(matched)
            end = min(after + limit, self.search_result_cap)
            page = matched[after:end]
            nxt = after + limit if limit and after + limit < total else None
            return total, page, nxt

    def _matches(
        self,
        body: Mapping[str, Any],
        groups: list[tuple[list[_Predicate], list[list[int]]]],
        sort: tuple[_Getter, bool] | None,
        query: str,
    ) -> list[tuple[_Contact, View]]:
        now = time.monotonic()
        lagging = self._lagging(now)
        cache_key = json.dumps(
            [body.get("filterGroups"), body.get("sorts"), body.get("query")], sort_keys=True, default=str
        )
        if not lagging:
            cached = self._search_cache.get(cache_key)
            if cached is not None:
                self._search_cache.move_to_end(cache_key)
                return cached
        predicate = _combine(groups)
        matched: list[tuple[_Contact, View]] = []
        append = matched.append
        for contact in self._candidates(groups, lagging):
            view: View | None = contact.properties
            if lagging and contact.id in lagging and now - contact.changed_at < self.index_lag_s:
                view = contact.indexed
                if view is None:
                    continue  # created too recently to be indexed
            assert view is not None
            if predicate is not None and not predicate(contact, view):
                continue
            if query and not _query_matches(view, query):
                continue
            append((contact, view))
        if sort is not None:
            get, descending = sort
            present = []
            absent = []
            for item in matched:
                value = get(item[0], item[1])
                if value is None:
                    absent.append(item)
                else:
                    present.append((value, item))
            # stable sort over id order: ties stay in id order in both directions
            present.sort(key=_first, reverse=descending)
            matched = [item for _v, item in present]
            matched.extend(absent)
        if not lagging:
            self._search_cache[cache_key] = matched
            while len(self._search_cache) > 16:
                self._search_cache.popitem(last=False)
        return matched

    def _lagging(self, now: float) -> set[int]:
        """Contacts whose latest change search does not see yet."""
        if self.index_lag_s <= 0 or not self._recent:
            return set()
        horizon = now - self.index_lag_s
        for key in [k for k, t in self._recent.items() if t <= horizon]:
            del self._recent[key]
        return set(self._recent)

    def _candidates(
        self, groups: list[tuple[list[_Predicate], list[list[int]]]], lagging: set[int]
    ) -> Iterable[_Contact]:
        """Contacts that may match, in id order: narrowed by the id/timestamp indexes when every group allows."""
        if not groups or any(not ranges for _preds, ranges in groups):
            return self._contacts.values()
        contacts = self._contacts
        if len(groups) == 1 and not lagging:
            ids = sorted(_narrowest(groups[0][1]))
        else:
            wanted: set[int] = set(lagging)
            for _preds, ranges in groups:
                wanted.update(_narrowest(ranges))
            ids = sorted(wanted)
        return [contacts[i] for i in ids if i in contacts]

    def _getter(self, prop: PropertyDef) -> _Getter:
        """A fast ``(contact, view) -> comparable value or None`` for one property."""
        name, ptype = prop.name, prop.type
        if name in ("lastmodifieddate", "hs_lastmodifieddate"):
            return lambda c, v: c.updated_ms if v is c.properties else _typed_value(v.get(name), "datetime")
        if name == "createdate":
            return lambda c, v: c.created_ms if v is c.properties else _typed_value(v.get(name), "datetime")
        if name == "hs_object_id":
            return lambda c, v: c.id
        if ptype not in ("number", "datetime", "date"):

            def text(c: _Contact, v: View) -> str | None:
                value = v.get(name)
                return value.lower() if value else None

            return text

        def cached(c: _Contact, v: View) -> Any:
            if v is c.properties:
                cache = c.typed
                try:
                    return cache[name]
                except KeyError:
                    value = cache[name] = _typed_value(v.get(name), ptype)
                    return value
            return _typed_value(v.get(name), ptype)

        return cached

    def _search_prop(self, name: Any) -> PropertyDef:
        prop = self.properties.get(str(name)) if name else None
        if prop is None or prop.archived:
            raise PortalError(
                400, "VALIDATION_ERROR", f"There was a problem with the request: property {name!r} does not exist"
            )
        return prop

    def _compile_groups(self, raw_groups: Any) -> list[tuple[list[_Predicate], list[list[int]]]]:
        if not isinstance(raw_groups, list):
            raise PortalError(400, "VALIDATION_ERROR", "filterGroups must be a list")
        limits = self.search_limits
        if len(raw_groups) > limits.max_groups:
            raise PortalError(
                400,
                "VALIDATION_ERROR",
                f"Too many filter groups: {len(raw_groups)} given, the maximum is {limits.max_groups}",
                subCategory="TOO_MANY_FILTER_GROUPS",
            )
        total = 0
        compiled = []
        for group in raw_groups:
            filters = (group or {}).get("filters") or []
            total += len(filters)
            if len(filters) > limits.max_filters_per_group:
                raise PortalError(
                    400,
                    "VALIDATION_ERROR",
                    f"Too many filters in a group: {len(filters)} given, the maximum is {limits.max_filters_per_group}",
                    subCategory="TOO_MANY_FILTERS",
                )
            preds: list[_Predicate] = []
            ranges: list[list[int]] = []
            for raw in filters:
                pred, narrowed = self._compile_filter(raw)
                preds.append(pred)
                if narrowed is not None:
                    ranges.append(narrowed)
            compiled.append((preds, ranges))
        if total > limits.max_filters_total:
            raise PortalError(
                400,
                "VALIDATION_ERROR",
                f"Too many filters: {total} given, the maximum is {limits.max_filters_total}",
                subCategory="TOO_MANY_FILTERS",
            )
        return compiled

    def _compile_sort(self, sorts: Any) -> tuple[_Getter, bool] | None:
        if not isinstance(sorts, list):
            raise PortalError(400, "VALIDATION_ERROR", "sorts must be a list")
        if not sorts:
            return None
        if len(sorts) > 1:
            raise PortalError(400, "VALIDATION_ERROR", "Only one sort is supported per search request")
        rule = sorts[0]
        if isinstance(rule, str):
            name, descending = rule.lstrip("-"), rule.startswith("-")
        elif isinstance(rule, Mapping):
            name = str(rule.get("propertyName") or "")
            direction = str(rule.get("direction") or "ASCENDING").upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise PortalError(400, "VALIDATION_ERROR", f"Invalid sort direction {direction!r}")
            descending = direction == "DESCENDING"
        else:
            raise PortalError(400, "VALIDATION_ERROR", "Invalid sort")
        prop = self._search_prop(name)
        if name == "hs_object_id" and not descending:
            return None  # the natural order
        return self._getter(prop), descending

    def _compile_filter(self, raw: Any) -> tuple[_Predicate, list[int] | None]:
        if not isinstance(raw, Mapping):
            raise PortalError(400, "VALIDATION_ERROR", "Invalid filter")
        name = raw.get("propertyName")
        op = str(raw.get("operator") or "EQ").upper()
        prop = self._search_prop(name)
        ptype = prop.type
        pname = prop.name
        get = self._getter(prop)

        def parse(value: Any) -> Any:
            if value is None:
                raise PortalError(400, "VALIDATION_ERROR", f"Filter on {pname} with {op} needs a value")
            parsed = _typed_value(str(value), ptype)
            if parsed is None:
                raise PortalError(400, "VALIDATION_ERROR", f"{value!r} is not a valid {ptype} value for {pname}")
            return parsed

        pred: _Predicate
        if op == "HAS_PROPERTY":
            return (lambda c, v: bool(v.get(pname))), None
        if op == "NOT_HAS_PROPERTY":
            return (lambda c, v: not v.get(pname)), None
        if op in ("IN", "NOT_IN"):
            raw_values = raw.get("values")
            if not isinstance(raw_values, list):
                raise PortalError(400, "VALIDATION_ERROR", f"Filter on {pname} with {op} needs values")
            members = frozenset(parse(x) for x in raw_values)
            if op == "IN":
                return (lambda c, v: get(c, v) in members), None
            return (lambda c, v: get(c, v) not in members), None
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = str(raw.get("value") or "").strip().lower()
            if not pattern:
                raise PortalError(400, "VALIDATION_ERROR", f"Filter on {pname} with {op} needs a value")

            wildcard = re.compile(fnmatch.translate(pattern)).match if ("*" in pattern or "?" in pattern) else None

            def contains(c: _Contact, v: View) -> bool:
                text = (v.get(pname) or "").lower()
                if not text:
                    return False
                if wildcard is not None:
                    return wildcard(text) is not None or any(wildcard(t) for t in _TOKEN_SPLIT_RE.split(text))
                return pattern == text or pattern in _TOKEN_SPLIT_RE.split(text)

            if op == "CONTAINS_TOKEN":
                return contains, None
            return (lambda c, v: not contains(c, v)), None
        if op not in ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN"):
            raise PortalError(400, "VALIDATION_ERROR", f"Unknown operator {op!r}")
        low = parse(raw.get("value"))
        high = parse(raw.get("highValue")) if op == "BETWEEN" else None
        if op == "BETWEEN":
            pred = lambda c, v: (x := get(c, v)) is not None and low <= x <= high  # noqa: E731
        elif op == "EQ":
            pred = lambda c, v: get(c, v) == low  # noqa: E731
        elif op == "NEQ":
            pred = lambda c, v: get(c, v) != low  # noqa: E731
        elif op == "LT":
            pred = lambda c, v: (x := get(c, v)) is not None and x < low  # noqa: E731
        elif op == "LTE":
            pred = lambda c, v: (x := get(c, v)) is not None and x <= low  # noqa: E731
        elif op == "GT":
            pred = lambda c, v: (x := get(c, v)) is not None and x > low  # noqa: E731
        else:
            pred = lambda c, v: (x := get(c, v)) is not None and x >= low  # noqa: E731
        return pred, self._index_range(pname, op, low, high)

    def _index_range(self, name: str, op: str, low: Any, high: Any) -> list[int] | None:
        """Ids a range filter on an indexed property can match (None: not indexed / not a range)."""
        if op == "NEQ":
            return None
        if name == "hs_object_id":
            arr: list[Any] = self._ids
            lo_key: Callable[[Any], Any] = lambda x: x  # noqa: E731
            hi_key: Callable[[Any], Any] = lambda x: x  # noqa: E731
        elif name in ("lastmodifieddate", "hs_lastmodifieddate"):
            arr = self._by_updated
            lo_key = lambda x: (x, -_INF)  # noqa: E731
            hi_key = lambda x: (x, _INF)  # noqa: E731
        else:
            return None
        start, end = 0, len(arr)
        if op in ("GTE", "EQ", "BETWEEN"):
            start = bisect.bisect_left(arr, lo_key(low))
        elif op == "GT":
            start = bisect.bisect_right(arr, hi_key(low))
        if op in ("LTE", "EQ"):
            end = bisect.bisect_right(arr, hi_key(low))
        elif op == "BETWEEN":
            end = bisect.bisect_right(arr, hi_key(high))
        elif op == "LT":
            end = bisect.bisect_left(arr, lo_key(low))
        if end <= start:
            return []
        if arr is self._ids:
            return self._ids[start:end]
        return [pair[1] for pair in self._by_updated[start:end]]


def _typed_value(value: str | None, ptype: str) -> Any:
    """A stored (or filter) string as the type search compares: float, epoch ms, or lower-case text."""
    if value is None or value == "":
        return None
    if ptype == "number":
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if ptype in ("datetime", "date"):
        return _parse_ms(value)
    return value.lower()


_QUERY_FIELDS = ("firstname", "lastname", "email", "company", "website", "phone")


def _query_matches(view: View, query: str) -> bool:
    return any(query in (view.get(name) or "").lower() for name in _QUERY_FIELDS)


def _int_id(value: str | int | None) -> int | None:
    if isinstance(value, int):
        return value
    text = (value or "").strip()
    return int(text) if text.isdigit() else None


def _int_param(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PortalError(400, "VALIDATION_ERROR", f"{name} must be an integer, got {value!r}") from None


def _count(value: str | None) -> int:
    """A stored counter as an int (empty or garbage: 0)."""
    try:
        return int(float(value)) if value else 0
    except ValueError:
        return 0


def _check_batch_size(inputs: Any) -> None:
    if not isinstance(inputs, list):
        raise PortalError(400, "VALIDATION_ERROR", "inputs must be a list")
    if len(inputs) > BATCH_MAX_INPUTS:
        raise PortalError(
            400,
            "VALIDATION_ERROR",
            f"Batch input limit exceeded: {len(inputs)} inputs given, the maximum is {BATCH_MAX_INPUTS}",
            context={"maxInputs": [str(BATCH_MAX_INPUTS)]},
        )
    if any(not isinstance(i, Mapping) for i in inputs):
        raise PortalError(400, "VALIDATION_ERROR", "every input must be an object")


def _not_found(contact_id: str) -> PortalError:
    return PortalError(404, "OBJECT_NOT_FOUND", "resource not found", context={"id": [contact_id]})


def _error_details(problems: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}} for p in problems]


def _standard_error(
    category: str, message: str, ids: list[str], problems: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """One entry of a 207's ``errors`` (the SDK's ``StandardError`` requires every field below)."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": ids},
        "links": {},
        "errors": _error_details(problems),
    }


def _missing_error(ids: list[str], object_name: str = "CONTACT") -> dict[str, Any]:
    return _standard_error(
        "OBJECT_NOT_FOUND",
        f"Could not get some {object_name} objects, they may be deleted or not exist. Check that ids are valid.",
        ids,
    )


# the HTTP app --------------------------------------------------------------------------------------------


class HubSpotSandbox(SandboxApp):
    """The WSGI app: HubSpot's endpoints, auth, rate limits and error bodies over a :class:`HubSpotPortal`."""

    def __init__(
        self,
        portal: HubSpotPortal | None = None,
        *,
        token: str = "sandbox-token",
        rate_limit: int | str | RateLimit | None = None,
        search_rate_limit: int | None = None,
        daily_limit: int = DEFAULT_DAILY_LIMIT,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        slow_response_s: float = 2.0,
    ) -> None:
        super().__init__(
            fault_rate=fault_rate, fault_seed=fault_seed, fault_kinds=fault_kinds, slow_response_s=slow_response_s
        )
        self.portal = portal or HubSpotPortal()
        self.lock = self.portal.lock
        self.token = token
        self.tokens: set[str] = {token}
        self.expired_tokens: set[str] = set()
        limit = parse_rate_limit(rate_limit, default_window_s=RATE_WINDOW_S)
        self.limiter = RollingWindowLimiter(limit.limit, limit.window_s) if limit else None
        if search_rate_limit is None:
            search_rate_limit = DEFAULT_SEARCH_PER_SECOND if limit else 0
        self.search_limiter = RollingWindowLimiter(search_rate_limit, 1.0) if search_rate_limit > 0 else None
        self.daily_limit = daily_limit
        self._daily: dict[str, int] = {}
        self._daily_lock = threading.Lock()
        self.stats.increment("enrollments", 0)  # a stable stats shape from the first request on
        self._register_routes()

    def _register_routes(self) -> None:
        base = "/crm/v3/objects/contacts"
        props = "/crm/v3/properties/{objectType}"
        for method, template, handler, tag in (
            ("GET", base, self._list, ""),
            ("POST", base, self._create, ""),
            ("GET", base + "/{contactId}", self._read, ""),
            ("PATCH", base + "/{contactId}", self._update, ""),
            ("DELETE", base + "/{contactId}", self._archive, ""),
            ("POST", base + "/search", self._search, "search"),
            ("POST", base + "/batch/read", self._batch_read, ""),
            ("POST", base + "/batch/create", self._batch_create, ""),
            ("POST", base + "/batch/update", self._batch_update, ""),
            ("POST", base + "/batch/archive", self._batch_archive, ""),
            ("GET", props, self._list_properties, ""),
            ("POST", props, self._create_property, ""),
            ("POST", props + "/batch/read", self._batch_read_properties, ""),
            ("POST", props + "/batch/create", self._batch_create_properties, ""),
            ("GET", props + "/groups", self._list_groups, ""),
            ("POST", props + "/groups", self._create_group, ""),
            ("GET", props + "/groups/{groupName}", self._read_group, ""),
            ("PATCH", props + "/groups/{groupName}", self._update_group, ""),
            ("DELETE", props + "/groups/{groupName}", self._archive_group, ""),
            ("GET", props + "/{propertyName}", self._read_property, ""),
            ("PATCH", props + "/{propertyName}", self._update_property, ""),
            ("DELETE", props + "/{propertyName}", self._archive_property, ""),
            ("POST", "/automation/v2/workflows/{workflowId}/enrollments/contacts/{email}", self._enroll, ""),
            ("DELETE", "/automation/v2/workflows/{workflowId}/enrollments/contacts/{email}", self._unenroll, ""),
            ("GET", "/automation/v2/workflows/enrollments/contacts/{vid}", self._current_enrollments, ""),
        ):
            self.add_route(method, template, handler, tag=tag)
        # activity objects and associations: static contact routes win over these templates
        objects = "/crm/v3/objects/{objectType}"
        routes: tuple[tuple[str, str, Callable[..., Response]], ...] = (
            ("GET", objects, self._list_engagements),
            ("POST", objects, self._create_engagement),
            ("GET", objects + "/{objectId}", self._read_engagement),
            ("POST", objects + "/batch/read", self._batch_read_engagements),
            ("POST", objects + "/batch/create", self._batch_create_engagements),
            ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read", self._batch_read_associations),
            ("GET", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}", self._list_associations),
        )
        for method, template, route_handler in routes:
            self.add_route(method, template, route_handler)
        self.add_route("GET", "/__sandbox/enrollments", self._list_enrollments, internal=True)

    # tokens

    def add_token(self, token: str) -> None:
        """Accept another token (each token has its own rate-limit window)."""
        self.tokens.add(token)
        self.expired_tokens.discard(token)

    def expire_token(self, token: str) -> None:
        """Make ``token`` answer 401 ``EXPIRED_AUTHENTICATION`` from now on (an OAuth token's end of life)."""
        self.tokens.discard(token)
        self.expired_tokens.add(token)

    # pipeline hooks

    def authenticate(self, request: Request, route: Route) -> str | Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token in self.tokens:
            return token
        if scheme.lower() == "bearer" and token in self.expired_tokens:
            return json_response(
                _error_body(
                    "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired 1 second(s) ago."
                ),
                401,
            )
        return json_response(
            _error_body(
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
                "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ),
            401,
        )

    def admit(self, request: Request, route: Route, principal: str) -> Response | dict[str, str]:
        if self.limiter is None and self.search_limiter is None:
            return {}
        if self.limiter is not None:
            with self._daily_lock:
                used = self._daily.get(principal, 0)
                if used >= self.daily_limit:
                    return self._throttled("You have reached your daily limit.", "DAILY", 3600.0, {})
        if route.tag == "search":
            if self.search_limiter is not None:
                decision = self.search_limiter.acquire(principal)
                if not decision.allowed:
                    return self._throttled(
                        "You have reached your secondly limit.", "SECONDLY", decision.retry_after_s, {}
                    )
            self._count_daily(principal)
            return {}  # search responses carry no X-HubSpot-RateLimit-* headers
        if self.limiter is None:
            return {}
        decision = self.limiter.acquire(principal)
        interval_ms = str(int(self.limiter.window_s * 1000))
        if not decision.allowed:
            headers = {
                "X-HubSpot-RateLimit-Max": str(decision.limit),
                "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": interval_ms,
            }
            return self._throttled(
                "You have reached your ten_secondly_rolling limit.",
                "TEN_SECONDLY_ROLLING",
                decision.retry_after_s,
                headers,
            )
        used = self._count_daily(principal)
        return {
            "X-HubSpot-RateLimit-Max": str(decision.limit),
            "X-HubSpot-RateLimit-Remaining": str(decision.remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": interval_ms,
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - used, 0)),
        }

    def _count_daily(self, principal: str) -> int:
        with self._daily_lock:
            used = self._daily.get(principal, 0) + 1
            self._daily[principal] = used
            return used

    def _throttled(self, message: str, policy: str, retry_after_s: float, headers: dict[str, str]) -> Response:
        body = {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": _correlation_id(),
            "policyName": policy,
            "requestId": _correlation_id(),
        }
        return json_response(body, 429, {**headers, "Retry-After": retry_after_header(retry_after_s)})

    def fault_response(self, status: int) -> Response:
        message = {500: "Internal error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "error")
        return json_response(_error_body("INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE", message), status)

    def not_found(self, request: Request) -> Response:
        return json_response(
            _error_body("OBJECT_NOT_FOUND", f"Unable to route {request.method} request to {request.path}"), 404
        )

    def method_not_allowed(self, request: Request) -> Response:
        return json_response(
            _error_body("VALIDATION_ERROR", f"HTTP method {request.method} is not supported by this resource"), 405
        )

    def handle_exception(self, exc: Exception) -> Response | None:
        return exc.response() if isinstance(exc, PortalError) else None

    # request helpers

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        raw = request.get_data(cache=True)
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Abort(json_response(_error_body("VALIDATION_ERROR", f"Invalid input JSON: {exc}"), 400)) from None
        if not isinstance(body, dict):
            raise Abort(json_response(_error_body("VALIDATION_ERROR", "Invalid input JSON: expected an object"), 400))
        return body

    def _names(self, requested: Iterable[Any] | None) -> list[str]:
        """Properties to render: the requested ones (or the defaults) that exist, plus the always-returned."""
        wanted: list[str] = []
        if requested:
            for item in requested:
                wanted.extend(n.strip() for n in str(item).split(",") if n.strip())
        else:
            wanted = list(DEFAULT_PROPERTIES)
        names = dict.fromkeys(n for n in wanted if n in self.portal.properties)
        names.update(dict.fromkeys(ALWAYS_RETURNED_PROPERTIES))
        return list(names)

    @staticmethod
    def _render(contact: _Contact, names: Sequence[str], view: View | None = None) -> dict[str, Any]:
        props = view if view is not None else contact.properties
        body: dict[str, Any] = {
            "id": str(contact.id),
            "properties": {n: props.get(n) for n in names},
            "createdAt": props.get("createdate") or _iso_ms(contact.created_ms),
            "updatedAt": props.get("lastmodifieddate") or _iso_ms(contact.updated_ms),
            "archived": contact.archived_ms is not None,
        }
        if contact.archived_ms is not None:
            body["archivedAt"] = _iso_ms(contact.archived_ms)
        return body

    @staticmethod
    def _object_type(object_type: str) -> None:
        if object_type not in _CONTACT_TYPES:
            raise PortalError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        return request.args.get(name, "false").lower() == "true"

    def _batch_body(
        self, status: int, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str
    ) -> Response:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _iso_ms(time.time_ns() // 1_000_000),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            status = 207
        return json_response(body, status)

    # contacts

    def _list(self, request: Request) -> Response:
        limit = _int_param(request.args.get("limit"), "limit", LIST_DEFAULT_LIMIT)
        if not 1 <= limit <= LIST_MAX_LIMIT:
            raise PortalError(400, "VALIDATION_ERROR", f"limit must be between 1 and {LIST_MAX_LIMIT}, got {limit}")
        names = self._names(request.args.getlist("properties"))
        page, nxt = self.portal.list_page(
            limit=limit, after=request.args.get("after"), archived=self._flag(request, "archived")
        )
        body: dict[str, Any] = {"results": [self._render(c, names) for c in page]}
        if nxt is not None:
            link = f"{request.host_url.rstrip('/')}{request.path}?limit={limit}&after={nxt}"
            body["paging"] = {"next": {"after": nxt, "link": link}}
        return json_response(body)

    def _read(self, request: Request, contactId: str) -> Response:
        contact = self.portal._lookup(
            contactId, request.args.get("idProperty"), archived=self._flag(request, "archived")
        )
        if contact is None:
            raise _not_found(contactId)
        return json_response(self._render(contact, self._names(request.args.getlist("properties"))))

    def _create(self, request: Request) -> Response:
        body = self._body(request)
        contact_id = self.portal.create_contact(body.get("properties") or {})
        contact = self.portal._get(contact_id)
        assert contact is not None
        names = self._names(list(contact.properties))
        return json_response(self._render(contact, names), 201)

    def _update(self, request: Request, contactId: str) -> Response:
        body = self._body(request)
        properties = body.get("properties") or {}
        contact = self.portal._lookup(contactId, request.args.get("idProperty"))
        if contact is None:
            raise _not_found(contactId)
        self.portal.update_contact(contact.id, properties)
        return json_response(self._render(contact, self._names(list(properties))))

    def _archive(self, request: Request, contactId: str) -> Response:
        self.portal.archive_contact(contactId)
        return Response(status=204)

    def _search(self, request: Request) -> Response:
        body = self._body(request)
        total, page, nxt = self.portal.search(body)
        names = self._names(body.get("properties"))
        out: dict[str, Any] = {"total": total, "results": [self._render(c, names, view) for c, view in page]}
        if nxt is not None:
            out["paging"] = {"next": {"after": str(nxt)}}
        return json_response(out)

    def _batch_read(self, request: Request) -> Response:
        started = _iso_ms(time.time_ns() // 1_000_000)
        body = self._body(request)
        found, missing = self.portal.batch_read(
            body.get("inputs") or [], id_property=body.get("idProperty"), archived=self._flag(request, "archived")
        )
        names = self._names(body.get("properties"))
        errors = [_missing_error(missing)] if missing else []
        return self._batch_body(200, [self._render(c, names) for c in found], errors, started)

    def _batch_update(self, request: Request) -> Response:
        started = _iso_ms(time.time_ns() // 1_000_000)
        done, errors = self.portal.batch_update(self._body(request).get("inputs") or [])
        return self._batch_body(200, self._written_results(done), errors, started)

    def _batch_create(self, request: Request) -> Response:
        started = _iso_ms(time.time_ns() // 1_000_000)
        done, errors = self.portal.batch_create(self._body(request).get("inputs") or [])
        return self._batch_body(201, self._written_results(done), errors, started)

    def _written_results(self, done: Sequence[tuple[Any, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        """Batch-write results as HubSpot renders them: the written properties, and the caller's trace id."""
        results = []
        for contact, item in done:
            rendered = self._render(contact, self._names(list((item.get("properties") or {}).keys())))
            if item.get("objectWriteTraceId"):
                rendered["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(rendered)
        return results

    def _batch_archive(self, request: Request) -> Response:
        inputs = self._body(request).get("inputs") or []
        _check_batch_size(inputs)
        for item in inputs:
            self.portal.archive_contact(str(item.get("id", "")))
        return Response(status=204)

    # activity objects (engagements) and associations v4

    def _engagement_names(self, spec: EngagementType, requested: Iterable[Any] | None) -> list[str]:
        """Requested properties the type has (unknown ones are left out, as HubSpot does), plus the defaults."""
        known = set(_ENGAGEMENT_COMMON) | set(spec.properties)
        wanted: list[str] = []
        for item in requested or []:
            wanted.extend(n.strip() for n in str(item).split(",") if n.strip())
        names = dict.fromkeys(n for n in wanted if n in known)
        names.update(dict.fromkeys(ENGAGEMENT_DEFAULT_PROPERTIES))
        return list(names)

    @staticmethod
    def _render_engagement(
        engagement: _Engagement, names: Sequence[str], *, associations: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": str(engagement.id),
            "properties": {n: engagement.properties.get(n) for n in names},
            "createdAt": _iso_ms(engagement.created_ms),
            "updatedAt": _iso_ms(engagement.updated_ms),
            "archived": False,
        }
        if associations and engagement.contacts:
            kind = f"{engagement.spec.singular}_to_contact"
            body["associations"] = {
                "contacts": {"results": [{"id": str(c), "type": kind} for c in engagement.contacts]}
            }
        return body

    def _wants_contacts(self, request: Request) -> bool:
        wanted = {n.strip().lower() for a in request.args.getlist("associations") for n in a.split(",")}
        return bool(wanted & _CONTACT_TYPES)

    def _list_engagements(self, request: Request, objectType: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._list(request)
        limit = _int_param(request.args.get("limit"), "limit", LIST_DEFAULT_LIMIT)
        if not 1 <= limit <= LIST_MAX_LIMIT:
            raise PortalError(400, "VALIDATION_ERROR", f"limit must be between 1 and {LIST_MAX_LIMIT}, got {limit}")
        spec, page, nxt = self.portal.list_engagements(objectType, limit=limit, after=request.args.get("after"))
        names = self._engagement_names(spec, request.args.getlist("properties"))
        with_contacts = self._wants_contacts(request)
        body: dict[str, Any] = {
            "results": [self._render_engagement(e, names, associations=with_contacts) for e in page]
        }
        if nxt is not None:
            link = f"{request.host_url.rstrip('/')}{request.path}?limit={limit}&after={nxt}"
            body["paging"] = {"next": {"after": nxt, "link": link}}
        return json_response(body)

    def _read_engagement(self, request: Request, objectType: str, objectId: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._read(request, objectId)
        spec, found, _missing = self.portal.batch_read_engagements(objectType, [{"id": objectId}])
        if not found:
            raise _not_found(objectId)
        names = self._engagement_names(spec, request.args.getlist("properties"))
        return json_response(self._render_engagement(found[0], names, associations=self._wants_contacts(request)))

    def _create_engagement(self, request: Request, objectType: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._create(request)
        engagement = self.portal.create_engagement(objectType, self._body(request))
        names = self._engagement_names(engagement.spec, list(engagement.properties))
        return json_response(self._render_engagement(engagement, names), 201)

    def _batch_create_engagements(self, request: Request, objectType: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._batch_create(request)
        started = _iso_ms(time.time_ns() // 1_000_000)
        done, errors = self.portal.batch_create_engagements(objectType, self._body(request).get("inputs") or [])
        results = [self._render_engagement(e, self._engagement_names(e.spec, list(e.properties))) for e in done]
        return self._batch_body(201, results, errors, started)

    def _batch_read_engagements(self, request: Request, objectType: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._batch_read(request)
        started = _iso_ms(time.time_ns() // 1_000_000)
        body = self._body(request)
        spec, found, missing = self.portal.batch_read_engagements(objectType, body.get("inputs") or [])
        names = self._engagement_names(spec, body.get("properties"))
        errors = [_missing_error(missing, spec.singular.upper())] if missing else []
        return self._batch_body(200, [self._render_engagement(e, names) for e in found], errors, started)

    def _batch_read_associations(self, request: Request, fromObjectType: str, toObjectType: str) -> Response:
        started = _iso_ms(time.time_ns() // 1_000_000)
        results, errors = self.portal.read_associations(
            fromObjectType, toObjectType, self._body(request).get("inputs") or []
        )
        return self._batch_body(200, results, errors, started)

    def _list_associations(self, request: Request, objectType: str, objectId: str, toObjectType: str) -> Response:
        limit = _int_param(request.args.get("limit"), "limit", self.portal.association_page_size)
        if not 1 <= limit <= max(ASSOCIATION_PAGE_SIZE, self.portal.association_page_size):
            raise PortalError(
                400, "VALIDATION_ERROR", f"limit must be between 1 and {ASSOCIATION_PAGE_SIZE}, got {limit}"
            )
        after = request.args.get("after") or None
        entries, nxt, _total = self.portal.associations_page(
            objectType, objectId, toObjectType, after=after, limit=limit
        )
        body: dict[str, Any] = {"results": entries}
        if nxt is not None:
            link = f"{request.host_url.rstrip('/')}{request.path}?limit={limit}&after={nxt}"
            body["paging"] = {"next": {"after": nxt, "link": link}}
        return json_response(body)

    # properties

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

    # workflows

    def _enroll(self, request: Request, workflowId: str, email: str) -> Response:
        try:
            self.portal.record_enrollment(workflowId, email)
        except PortalError as exc:
            # the legacy v2 API's error shape: no category
            body = {
                "status": "error",
                "message": exc.message,
                "correlationId": _correlation_id(),
                "requestId": _correlation_id(),
            }
            return json_response(body, 404)
        self.stats.increment("enrollments")
        return Response(status=204)

    def _unenroll(self, request: Request, workflowId: str, email: str) -> Response:
        self.stats.increment("unenrollments")
        return Response(status=204)

    def _current_enrollments(self, request: Request, vid: str) -> Response:
        """Workflows a contact is currently enrolled in: a JSON array of workflow objects.

        The sandbox's workflows never finish, so every enrollment stays current (in HubSpot a contact leaves
        the list when the workflow completes).
        """
        if self.portal.contact(vid) is None:
            body = {"status": "error", "message": f"Contact {vid} does not exist", "requestId": _correlation_id()}
            return json_response(body, 404)
        workflow_ids = sorted({e["workflowId"] for e in self.portal.enrollments() if e["contactId"] == vid.strip()})
        return json_response(
            [
                {
                    "id": int(w) if str(w).isdigit() else w,
                    "portalId": self.portal.portal_id,
                    "name": f"Workflow {w}",
                    "type": "DRIP_DELAY",
                    "enabled": True,
                }
                for w in workflow_ids
            ]
        )

    def _list_enrollments(self, request: Request) -> Response:
        return json_response({"results": self.portal.enrollments()})


# running it ----------------------------------------------------------------------------------------------


class HubSpotSandboxServer(SandboxServer):
    """A running HubSpot sandbox: ``.url``, ``.token``, ``.portal``, ``.sandbox`` (the app), ``.stop()``."""

    app: HubSpotSandbox

    @property
    def sandbox(self) -> HubSpotSandbox:
        return self.app

    @property
    def token(self) -> str:
        return self.app.token

    @property
    def portal(self) -> HubSpotPortal:
        return self.app.portal

    def client(self, *, token: str | None = None, **config: Any) -> hubspot.Client:
        """An official SDK client pointed at this sandbox (``host`` and ``base_url`` both set)."""
        import hubspot

        return hubspot.Client.create(access_token=token or self.token, host=self.url, base_url=self.url, **config)


def start_hubspot_sandbox(
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    token: str = "sandbox-token",
    contacts: int = 0,
    seed: int = 0,
    now: datetime | None = None,
    rate_limit: int | str | RateLimit | None = None,
    search_rate_limit: int | None = None,
    daily_limit: int = DEFAULT_DAILY_LIMIT,
    fault_rate: float = 0.0,
    fault_kinds: Iterable[str] = FAULT_KINDS,
    slow_response_s: float = 2.0,
    index_lag_s: float = 0.0,
    search_limits: SearchLimits | None = None,
    search_result_cap: int = SEARCH_RESULT_CAP,
    association_page_size: int = ASSOCIATION_PAGE_SIZE,
) -> HubSpotSandboxServer:
    """Seed a portal with ``contacts`` synthetic people and serve it in a background thread.

    ``rate_limit``: requests per rolling 10 s per token (int, ``"100/10s"``, or None/0 = off); search then
    gets its own ``search_rate_limit`` per second (default 5; 0 = off). ``fault_rate`` (0..1) injects the
    ``fault_kinds`` from a RNG seeded with ``seed``. ``now`` anchors the synthetic dates (default: today's
    midnight UTC, so one seed gives one portal all day). ``association_page_size`` is how many associated ids
    one associations read returns per object before paging (tests make it small). Stop it with ``.stop()``
    or use it as a context manager.
    """
    portal = HubSpotPortal(
        seed=seed,
        index_lag_s=index_lag_s,
        search_limits=search_limits,
        search_result_cap=search_result_cap,
        association_page_size=association_page_size,
    )
    if contacts:
        portal.seed_people(iter_people(contacts, seed=seed, now=now))
    app = HubSpotSandbox(
        portal,
        token=token,
        rate_limit=rate_limit,
        search_rate_limit=search_rate_limit,
        daily_limit=daily_limit,
        fault_rate=fault_rate,
        fault_seed=seed,
        fault_kinds=fault_kinds,
        slow_response_s=slow_response_s,
    )
    server = HubSpotSandboxServer(app, host=host, port=port)
    return server.start()


def serve_hubspot_sandbox(
    *,
    on_ready: Callable[[HubSpotSandboxServer], None] | None = None,
    **options: Any,
) -> None:
    """Run a sandbox in the foreground until Ctrl-C or SIGTERM (``leadsync sandbox hubspot``).

    ``options`` are those of :func:`start_hubspot_sandbox`. ``on_ready`` receives the running server
    (the CLI prints its URL and token); without it, both are printed to stdout.
    """
    server = start_hubspot_sandbox(**options)
    done = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: done.set())
    try:
        if on_ready is not None:
            on_ready(server)
        else:
            print(f"HubSpot sandbox listening on {server.url}", flush=True)
            print(f"Token: {server.token}  ({len(server.portal)} contacts)", flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        server.stop()
