"""The Salesforce sandbox's schema: record ids, field and object definitions, describe, write coercion.

Split from the org so that the rules a connector must respect when it *writes* (field types, lengths,
precision, restricted picklists, read-only fields) sit in one place next to what ``describe`` tells it,
and both cannot drift apart. Values are stored the way the REST API returns them: strings, ``int`` for
integer fields, ``float`` for double/currency/percent, ``bool``, ``None``; dates as ``YYYY-MM-DD`` and
datetimes as ``2024-01-01T00:00:00.000+0000`` (fixed width, UTC), so that string order is time order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KEY_PREFIXES",
    "OPPORTUNITY_STAGES",
    "FieldDef",
    "ObjectDef",
    "RecordError",
    "WriteRejected",
    "derive_stage_flags",
    "is_valid_id",
    "make_id",
    "standard_objects",
    "to_18",
]

# ids ------------------------------------------------------------------------------------------------------

#: base62 in ASCII order, so that fixed-width ids sort like their counters
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
#: "pod" and reserved characters of every sandbox id (positions 4-6 of a real id)
_POD = "8d0"
_ID15_RE = re.compile(r"^[a-zA-Z0-9]{15}$")
_ID18_RE = re.compile(r"^[a-zA-Z0-9]{18}$")

KEY_PREFIXES: Mapping[str, str] = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Lead": "00Q",
    "Task": "00T",
    "Event": "00U",
    "Campaign": "701",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
    "CampaignMember": "00v",
    "CustomField": "00N",
    "Organization": "00D",
    "QueryLocator": "01g",
    "Job": "750",
    "PlatformEvent": "e00",
}


_PAIRS = [a + b for a in _B62 for b in _B62]
#: per character: "1" for A-Z, else "0" (the suffix encodes where the upper-case letters are)
_UPPER_BITS = str.maketrans({c: ("1" if "A" <= c <= "Z" else "0") for c in _B62})


def _suffix(id15: str) -> str:
    """Salesforce's 3-character case-safety suffix of a 15-character id."""
    bits = id15.translate(_UPPER_BITS)
    return "".join(_SUFFIX[int(bits[i : i + 5][::-1], 2)] for i in (0, 5, 10))


def make_id(prefix: str, number: int) -> str:
    """An 18-character id: key prefix, pod, a 9-digit base62 counter and the checksum suffix."""
    if not 0 <= number < 62**9:
        msg = "id counter overflow"
        raise ValueError(msg)
    high, rest = divmod(number, 62**8)
    b, c = divmod(rest, 62**6)
    d, e = divmod(c, 62**4)
    f, g = divmod(e, 62**2)
    id15 = prefix + _POD + _B62[high] + _PAIRS[b] + _PAIRS[d] + _PAIRS[f] + _PAIRS[g]
    return id15 + _suffix(id15)


def to_18(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id (None when malformed or the checksum is wrong)."""
    if _ID15_RE.match(value):
        return value + _suffix(value)
    if _ID18_RE.match(value):
        fixed = value[:15] + _suffix(value[:15])
        return fixed if fixed.upper() == value.upper() else None
    return None


def is_valid_id(value: Any, prefixes: Iterable[str] | None = None) -> bool:
    if not isinstance(value, str):
        return False
    full = to_18(value)
    if full is None:
        return False
    return prefixes is None or full[:3] in set(prefixes)


# errors ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordError:
    """One entry of a SaveResult's ``errors`` (``statusCode`` in collections, ``errorCode`` elsewhere)."""

    status_code: str
    message: str
    fields: tuple[str, ...] = ()

    def as_save_error(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "message": self.message, "fields": list(self.fields)}

    def as_rest_error(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.status_code}
        if self.fields:
            body["fields"] = list(self.fields)
        return body


class WriteRejected(Exception):
    """A write the whole request fails for (HTTP 400), e.g. a value JSON cannot bind to the field type."""

    def __init__(self, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.error = RecordError(code, message, tuple(fields))


# fields ---------------------------------------------------------------------------------------------------

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}
#: field types whose values are text (compared case-insensitively in SOQL)
TEXT_TYPES = frozenset({"string", "email", "phone", "url", "textarea", "picklist", "combobox"})
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
ID_TYPES = frozenset({"id", "reference"})
_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass(slots=True, eq=False)
class FieldDef:
    """One field of an object, as describe() reports it, plus its column in the org's row lists."""

    name: str
    type: str
    label: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    custom: bool = False
    picklist: tuple[str, ...] = ()
    default_picklist: str | None = None
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    default_value: Any = None
    #: position in the row list; set when the field joins an object
    index: int = -1
    #: tooling id of a custom field
    tooling_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES

    @property
    def is_number(self) -> bool:
        return self.type in NUMBER_TYPES

    @property
    def is_id(self) -> bool:
        return self.type in ID_TYPES

    def describe(self) -> dict[str, Any]:
        """The describe() entry (the keys simple-salesforce users read, with Salesforce's names)."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length,
            "byteLength": self.length * 3 if self.is_text or self.is_id else 0,
            "precision": self.precision,
            "scale": self.scale,
            "digits": self.digits,
            "custom": self.custom,
            "updateable": self.updateable,
            "createable": self.createable,
            "nillable": self.nillable,
            "defaultedOnCreate": self.default_value is not None or self.type == "boolean",
            "defaultValue": self.default_value,
            "calculated": False,
            "filterable": self.type != "textarea" or self.length <= 255,
            "sortable": self.type != "textarea" or self.length <= 255,
            "groupable": self.type not in ("double", "currency", "percent", "datetime", "textarea"),
            "unique": False,
            "externalId": False,
            "idLookup": self.name in ("Id", "Email", "Name"),
            "nameField": self.name == "Name",
            "picklistValues": [
                {
                    "active": True,
                    "defaultValue": value == self.default_picklist,
                    "label": value,
                    "validFor": None,
                    "value": value,
                }
                for value in self.picklist
            ],
            "restrictedPicklist": self.restricted,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "extraTypeInfo": self.extra.get("extraTypeInfo"),
            "inlineHelpText": None,
        }


def _text(name: str, label: str, length: int = 255, **kw: Any) -> FieldDef:
    return FieldDef(name, "string", label, length=length, **kw)


def _ro(fd: FieldDef) -> FieldDef:
    fd.updateable = False
    fd.createable = False
    return fd


def _ref(name: str, label: str, targets: Sequence[str], relationship: str | None, **kw: Any) -> FieldDef:
    return FieldDef(
        name, "reference", label, length=18, reference_to=tuple(targets), relationship_name=relationship, **kw
    )


def _picklist(name: str, label: str, values: Sequence[str], *, restricted: bool = False, **kw: Any) -> FieldDef:
    return FieldDef(name, "picklist", label, length=255, picklist=tuple(values), restricted=restricted, **kw)


def _bool(name: str, label: str, **kw: Any) -> FieldDef:
    return FieldDef(name, "boolean", label, nillable=False, default_value=False, **kw)


def _dt(name: str, label: str, **kw: Any) -> FieldDef:
    return FieldDef(name, "datetime", label, **kw)


def _system_fields() -> list[FieldDef]:
    return [
        _ro(FieldDef("Id", "id", "Record ID", length=18, nillable=False)),
        _ro(_bool("IsDeleted", "Deleted")),
        _ro(_dt("CreatedDate", "Created Date", nillable=False)),
        _ro(_ref("CreatedById", "Created By ID", ["User"], "CreatedBy", nillable=False)),
        _ro(_dt("LastModifiedDate", "Last Modified Date", nillable=False)),
        _ro(_ref("LastModifiedById", "Last Modified By ID", ["User"], "LastModifiedBy", nillable=False)),
        _ro(_dt("SystemModstamp", "System Modstamp", nillable=False)),
    ]


def _owner() -> FieldDef:
    return _ref("OwnerId", "Owner ID", ["User"], "Owner", nillable=False)


LEAD_STATUSES: tuple[str, ...] = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
LEAD_SOURCES: tuple[str, ...] = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
INDUSTRIES: tuple[str, ...] = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
)
TASK_SUBTYPES: tuple[str, ...] = ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn")
TASK_STATUSES: tuple[str, ...] = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
CAMPAIGN_MEMBER_STATUSES: tuple[str, ...] = ("Sent", "Opened", "Clicked", "Responded")
#: Salesforce's default opportunity stages: stage -> (probability %, IsClosed, IsWon); the two flags are
#: read-only and follow the stage, as an org's OpportunityStage settings make them
OPPORTUNITY_STAGES: Mapping[str, tuple[int, bool, bool]] = {
    "Prospecting": (10, False, False),
    "Qualification": (10, False, False),
    "Needs Analysis": (20, False, False),
    "Value Proposition": (50, False, False),
    "Id. Decision Makers": (60, False, False),
    "Perception Analysis": (70, False, False),
    "Proposal/Price Quote": (75, False, False),
    "Negotiation/Review": (90, False, False),
    "Closed Won": (100, True, True),
    "Closed Lost": (0, True, False),
}
CONTACT_ROLES: tuple[str, ...] = (
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Economic Decision Maker",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
)


@dataclass(slots=True, eq=False)
class ObjectDef:
    """An sObject type: its fields in row order, with a case-insensitive name index."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: list[FieldDef]
    custom: bool = False
    updateable: bool = True
    createable: bool = True
    #: fields whose value is required on create (and may not be cleared)
    required: tuple[str, ...] = ()
    by_lower: dict[str, FieldDef] = field(default_factory=dict)
    #: relationship name (lower case) -> the reference field
    relationships: dict[str, FieldDef] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fields, self.fields = self.fields, []
        for fd in fields:
            self.add_field(fd)

    def add_field(self, fd: FieldDef) -> FieldDef:
        fd.index = len(self.fields)
        self.fields.append(fd)
        self.by_lower[fd.name.lower()] = fd
        if fd.relationship_name:
            self.relationships[fd.relationship_name.lower()] = fd
        return fd

    def remove_field(self, name: str) -> None:
        """Hide a field (its column stays so that row positions never move)."""
        fd = self.by_lower.pop(name.lower(), None)
        if fd is not None:
            fd.extra["deleted"] = True

    def field(self, name: str) -> FieldDef | None:
        return self.by_lower.get(name.lower())

    @property
    def live_fields(self) -> list[FieldDef]:
        return [f for f in self.fields if not f.extra.get("deleted")]

    @property
    def width(self) -> int:
        return len(self.fields)

    def urls(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}

    def describe_global(self, version: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "createable": self.createable,
            "updateable": self.updateable,
            "deletable": self.updateable,
            "layoutable": True,
            "urls": self.urls(version),
        }

    def describe(self, version: str) -> dict[str, Any]:
        return {
            **self.describe_global(version),
            "fields": [f.describe() for f in self.live_fields],
            "childRelationships": [],
            "recordTypeInfos": [],
            "supportedScopes": [{"label": "All", "name": "everything"}, {"label": "Mine", "name": "mine"}],
        }


def _person_fields(email_label: str = "Email") -> list[FieldDef]:
    return [
        _text("FirstName", "First Name", 40),
        _text("LastName", "Last Name", 80, nillable=False),
        _ro(_text("Name", "Full Name", 121)),
        _text("Title", "Title", 128),
        FieldDef("Email", "email", email_label, length=80),
        _picklist("LeadSource", "Lead Source", LEAD_SOURCES),
        _bool("HasOptedOutOfEmail", "Email Opt Out"),
        _text("EmailBouncedReason", "Email Bounced Reason", 255),
        _dt("EmailBouncedDate", "Email Bounced Date"),
    ]


def derive_stage_flags(obj: ObjectDef, row: list[Any], *, created: bool) -> None:
    """An Opportunity's ``IsClosed``/``IsWon`` follow its stage (and a new one's ``Probability`` too)."""
    if obj.name != "Opportunity":
        return
    stage = row[obj.by_lower["stagename"].index]
    probability, closed, won = OPPORTUNITY_STAGES.get(stage, (0, False, False))
    row[obj.by_lower["isclosed"].index] = closed
    row[obj.by_lower["iswon"].index] = won
    chance = obj.by_lower["probability"].index
    if created and row[chance] is None:
        row[chance] = float(probability)


def _standard(
    name: str, fields: list[FieldDef], *, label: str | None = None, plural: str | None = None, **kw: Any
) -> ObjectDef:
    """A standard object: its key prefix from :data:`KEY_PREFIXES`, the system fields, then ``fields``.

    ``label`` defaults to the name and ``plural`` to the label with an "s", as for most standard objects.
    """
    label = label or name
    return ObjectDef(name, label, plural or f"{label}s", KEY_PREFIXES[name], [*_system_fields(), *fields], **kw)


def _activity_object(
    name: str, fields: list[FieldDef], *, description_label: str, required: tuple[str, ...] = ()
) -> ObjectDef:
    """Task or Event: Salesforce's two activity objects share who/what, subject, description and owner."""
    return _standard(
        name,
        [
            _ref("WhoId", "Name ID", ["Contact", "Lead"], "Who"),
            _ref("WhatId", "Related To ID", ["Account"], "What"),
            FieldDef("Subject", "combobox", "Subject", length=255),
            *fields,
            FieldDef(
                "Description", "textarea", description_label, length=32000, extra={"extraTypeInfo": "plaintextarea"}
            ),
            _owner(),
        ],
        required=required,
    )


def standard_objects() -> dict[str, ObjectDef]:
    """A fresh set of the standard objects (each org owns its copy: custom fields are added per org)."""
    lead = _standard(
        "Lead",
        [
            *_person_fields(),
            _text("Company", "Company", 255, nillable=False),
            FieldDef("Website", "url", "Website", length=255),
            _picklist("Industry", "Industry", INDUSTRIES),
            FieldDef("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
            FieldDef("NumberOfEmployees", "int", "Employees", digits=8),
            _text("Country", "Country", 80),
            _picklist(
                "Status",
                "Lead Status",
                LEAD_STATUSES,
                restricted=True,
                nillable=False,
                default_picklist=LEAD_STATUSES[0],
                default_value=LEAD_STATUSES[0],
            ),
            _picklist("Rating", "Rating", ("Hot", "Warm", "Cold")),
            _ro(_bool("IsConverted", "Converted")),
            _ro(FieldDef("ConvertedDate", "date", "Converted Date")),
            _ro(_ref("ConvertedAccountId", "Converted Account ID", ["Account"], "ConvertedAccount")),
            _ro(_ref("ConvertedContactId", "Converted Contact ID", ["Contact"], "ConvertedContact")),
            _ro(_ref("ConvertedOpportunityId", "Converted Opportunity ID", ["Opportunity"], "ConvertedOpportunity")),
            _owner(),
        ],
        required=("LastName", "Company", "Status"),
    )
    contact = _standard(
        "Contact",
        [
            _ref("AccountId", "Account ID", ["Account"], "Account"),
            *_person_fields(),
            _text("Department", "Department", 80),
            _text("MailingCountry", "Mailing Country", 80),
            _owner(),
        ],
        required=("LastName",),
    )
    account = _standard(
        "Account",
        [
            _text("Name", "Account Name", 255, nillable=False),
            _picklist(
                "Type", "Account Type", ("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")
            ),
            _picklist("Industry", "Industry", INDUSTRIES),
            FieldDef("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
            FieldDef("NumberOfEmployees", "int", "Employees", digits=8),
            FieldDef("Website", "url", "Website", length=255),
            _text("BillingCountry", "Billing Country", 80),
            _owner(),
        ],
        required=("Name",),
    )
    task = _activity_object(
        "Task",
        [
            _picklist("TaskSubtype", "Task Subtype", TASK_SUBTYPES),
            FieldDef("ActivityDate", "date", "Due Date Only"),
            _picklist("Status", "Status", TASK_STATUSES, nillable=False, default_picklist="Not Started"),
            _picklist("Priority", "Priority", ("High", "Normal", "Low"), default_picklist="Normal"),
            _ro(_bool("IsClosed", "Closed")),
            _picklist("CallType", "Call Type", ("Internal", "Inbound", "Outbound")),
            FieldDef("CallDurationInSeconds", "int", "Call Duration", digits=8),
            _text("CallDisposition", "Call Result", 255),
        ],
        description_label="Comments",
        required=("Status",),
    )
    event = _activity_object(
        "Event",
        [
            _picklist("EventSubtype", "Event Subtype", ("Event",)),
            _dt("ActivityDateTime", "Due Date Time"),
            FieldDef("ActivityDate", "date", "Due Date Only"),
            _dt("StartDateTime", "Start Date Time"),
            _dt("EndDateTime", "End Date Time"),
            FieldDef("DurationInMinutes", "int", "Duration", digits=8),
        ],
        description_label="Description",
    )
    campaign = _standard(
        "Campaign",
        [
            _text("Name", "Campaign Name", 80, nillable=False),
            _picklist("Type", "Type", ("Email", "Webinar", "Conference", "Advertisement", "Other")),
            _picklist("Status", "Status", ("Planned", "In Progress", "Completed", "Aborted")),
            _bool("IsActive", "Active"),
            _owner(),
        ],
        required=("Name",),
    )
    member = _standard(
        "CampaignMember",
        [
            _ref("CampaignId", "Campaign ID", ["Campaign"], "Campaign", nillable=False, updateable=False),
            _ref("LeadId", "Lead ID", ["Lead"], "Lead", updateable=False),
            _ref("ContactId", "Contact ID", ["Contact"], "Contact", updateable=False),
            _picklist("Status", "Status", CAMPAIGN_MEMBER_STATUSES),
            _ro(_bool("HasResponded", "Responded")),
            _ro(FieldDef("FirstRespondedDate", "date", "First Responded Date")),
        ],
        label="Campaign Member",
        required=("CampaignId",),
    )
    opportunity = _standard(
        "Opportunity",
        [
            _ref("AccountId", "Account ID", ["Account"], "Account"),
            _text("Name", "Name", 120, nillable=False),
            _picklist("StageName", "Stage", tuple(OPPORTUNITY_STAGES), nillable=False),
            FieldDef("CloseDate", "date", "Close Date", nillable=False),
            FieldDef("Amount", "currency", "Amount", precision=18, scale=2),
            FieldDef("Probability", "percent", "Probability (%)", precision=3, scale=0),
            _ro(_bool("IsClosed", "Closed")),
            _ro(_bool("IsWon", "Won")),
            _picklist("Type", "Opportunity Type", ("Existing Business", "New Business")),
            _picklist("LeadSource", "Lead Source", LEAD_SOURCES),
            _owner(),
        ],
        plural="Opportunities",
        required=("Name", "StageName", "CloseDate"),
    )
    contact_role = _standard(
        "OpportunityContactRole",
        [
            _ref("OpportunityId", "Opportunity ID", ["Opportunity"], "Opportunity", nillable=False, updateable=False),
            _ref("ContactId", "Contact ID", ["Contact"], "Contact", nillable=False),
            _picklist("Role", "Role", CONTACT_ROLES),
            _bool("IsPrimary", "Primary"),
        ],
        label="Opportunity Contact Role",
        plural="Opportunity Contact Role",
        required=("OpportunityId", "ContactId"),
    )
    user = _standard(
        "User",
        [
            _ro(_text("Name", "Full Name", 121)),
            _text("FirstName", "First Name", 40),
            _text("LastName", "Last Name", 80, nillable=False),
            FieldDef("Email", "email", "Email", length=128, nillable=False),
            _text("Username", "Username", 80, nillable=False),
            _bool("IsActive", "Active"),
        ],
        updateable=False,
        createable=False,
    )
    return {o.name: o for o in (lead, contact, account, opportunity, contact_role, task, event, campaign, member, user)}
