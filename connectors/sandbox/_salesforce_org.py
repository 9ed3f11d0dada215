"""The in-memory Salesforce org behind the sandbox: records, seeding, SOQL evaluation, writes, jobs, flows.

Storage: each object is a :class:`Table` of rows, one ``list`` per record in the order of the object's
fields (a list is a third of a dict's size, which matters at 200k records). Rows are copy-on-write: a
change stores a new list and never touches the old one, so a query cursor or a Bulk job that holds the old
rows keeps a stable snapshot while the caller pages, without copying anything up front. The only in-place
change is appending a column when a custom field is created (every old query simply never selects it).

``SystemModstamp`` is indexed per table (a sorted ``(stamp, id)`` list), so ``WHERE SystemModstamp > X``
over 200k records reads only the matching slice, and ``ORDER BY SystemModstamp, Id`` needs no sort.
Every write stamps from the wall clock in milliseconds, never earlier than an earlier stamp: a collection
of 200 records usually shares one stamp (ties), and :meth:`SalesforceOrg.touch` gives many records one
identical stamp, the way a system job does (``LastModifiedDate`` stays, as with Salesforce).

Errors are :class:`SalesforceError` (an HTTP status with Salesforce's ``[{"message", "errorCode"}]`` body);
per-record problems of a collection are :class:`~connectors.sandbox._salesforce_schema.RecordError`.
"""

from __future__ import annotations

import base64
import bisect
import csv
import io
import itertools
import operator
import random
import re
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox import _soql as soql
from connectors.sandbox._salesforce_schema import (
    KEY_PREFIXES,
    FieldDef,
    ObjectDef,
    RecordError,
    coerce_value,
    make_id,
    standard_objects,
    to_18,
)
from connectors.sandbox._server import gc_paused
from connectors.sandbox.synthetic import _CAMPAIGNS, _FORMS, SyntheticPerson

__all__ = [
    "BULK_DEFAULT_PAGE",
    "COLLECTION_MAX_RECORDS",
    "CUSTOM_FIELD_TYPES",
    "QUERY_DEFAULT_BATCH",
    "BulkJob",
    "SalesforceError",
    "SalesforceOrg",
    "Table",
]

#: SOQL paging: default and bounds of ``Sforce-Query-Options: batchSize``
QUERY_DEFAULT_BATCH = 2000
QUERY_MIN_BATCH = 200
#: SOQL OFFSET maximum
MAX_OFFSET = 2000
#: sObject Collections: records per request
COLLECTION_MAX_RECORDS = 200
#: open query cursors kept (least recently used ones go first); idle cursors expire like Salesforce's
MAX_CURSORS = 200
CURSOR_IDLE_S = 15 * 60.0
#: rows per Bulk 2.0 results page when the request names no maxRecords
BULK_DEFAULT_PAGE = 100_000
#: Tooling ``Metadata.type`` -> describe type
CUSTOM_FIELD_TYPES: Mapping[str, str] = {
    "Number": "double",
    "Currency": "currency",
    "Percent": "percent",
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Email": "email",
    "Url": "url",
    "Phone": "phone",
    "DateTime": "datetime",
    "Date": "date",
    "Checkbox": "boolean",
    "Picklist": "picklist",
}

# row positions of the system fields (every object starts with them, see _salesforce_schema)
ID, IS_DELETED, CREATED, CREATED_BY, MODIFIED, MODIFIED_BY, STAMP = range(7)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: the id counters of seeded activities: one block of 4096 per person, so that ids do not depend on the
#: order in which activities are first read
_ACTIVITY_BASE = 1_000_000_000
_ACTIVITY_BLOCK = 4096
_CUSTOM_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*__c$")
_INDUSTRY_MAP = {
    "Computer Software": "Technology",
    "Information Technology and Services": "Consulting",
    "Internet": "Technology",
    "Marketing and Advertising": "Media",
    "Financial Services": "Finance",
    "Telecommunications": "Telecommunications",
    "Hospital & Health Care": "Healthcare",
    "Retail": "Retail",
    "Manufacturing": "Manufacturing",
    "Real Estate": "Other",
    "Construction": "Construction",
    "Education Management": "Education",
    "Higher Education": "Education",
    "Non-profit Organization Management": "Not For Profit",
    "Government Administration": "Government",
    "Hospitality": "Hospitality",
    "Consumer Goods": "Retail",
    "Logistics and Supply Chain": "Transportation",
}
_SALES_REPS = (
    ("Dana", "Whitfield"),
    ("Marco", "Ibáñez"),
    ("Priya", "Raman"),
    ("Tom", "Okafor"),
)
_MEMBER_RANK = {"Sent": 0, "Opened": 1, "Clicked": 2, "Responded": 3}
_ACTIVITY_KINDS = frozenset({"call", "email_reply", "meeting", "email_open", "email_click", "form_submission"})
#: above every stored datetime (an open upper bound for the SystemModstamp index)
_TOP = "\uffff"


class SalesforceError(Exception):
    """A refused request: HTTP ``status`` with Salesforce's error array body."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = tuple(fields)

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            item["fields"] = list(self.fields)
        return [item]


def _stamp_of_ms(ms: int) -> str:
    return soql.normalize_datetime(_EPOCH + timedelta(milliseconds=ms))


def _locator_text(offset: int) -> str:
    """Bulk 2.0 locators are opaque; Salesforce's happen to be the base64 of the next offset."""
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _locator_offset(locator: str) -> int | None:
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


# tables ---------------------------------------------------------------------------------------------------


class Table:
    """The records of one object: rows by id (insertion = id order) and the SystemModstamp index."""

    def __init__(self, obj: ObjectDef) -> None:
        self.obj = obj
        self.rows: dict[str, list[Any]] = {}
        self.stamp_index: list[tuple[str, str]] = []
        self._names = [f.name for f in obj.fields]

    def make_row(self, values: Mapping[str, Any]) -> list[Any]:
        return [values.get(name) for name in self._names]

    def refresh_names(self) -> None:
        self._names = [f.name for f in self.obj.fields]

    def insert(self, row: list[Any], *, index: bool = True) -> None:
        self.rows[row[ID]] = row
        if index:
            bisect.insort(self.stamp_index, (row[STAMP], row[ID]))

    def replace(self, row: list[Any]) -> None:
        """Store a new version of a record (copy-on-write: the old list is left as it was)."""
        old = self.rows[row[ID]]
        if old[STAMP] != row[STAMP]:
            key = (old[STAMP], old[ID])
            i = bisect.bisect_left(self.stamp_index, key)
            if i < len(self.stamp_index) and self.stamp_index[i] == key:
                del self.stamp_index[i]
            bisect.insort(self.stamp_index, (row[STAMP], row[ID]))
        self.rows[row[ID]] = row

    def rebuild_index(self) -> None:
        self.stamp_index = sorted((row[STAMP], rid) for rid, row in self.rows.items())

    def as_dict(self, row: Sequence[Any]) -> dict[str, Any]:
        return {f.name: (row[f.index] if f.index < len(row) else None) for f in self.obj.live_fields}


# compiled queries -----------------------------------------------------------------------------------------

Getter = Callable[[list[Any]], Any]
Predicate = Callable[[list[Any]], bool]


@dataclass(slots=True)
class _Column:
    """A selected, filtered or sorted field: its canonical path, final field and value getter."""

    path: tuple[str, ...]
    field: FieldDef
    get: Getter
    polymorphic: bool = False

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(slots=True)
class _Node:
    """How to render one record of a result: plain fields, and nested parent records (relationships)."""

    fields: list[tuple[str, int]] = field(default_factory=list)
    #: (relationship name, reference column, polymorphic?, {key prefix: (table, node)})
    parents: list[tuple[str, int, bool, dict[str, tuple[Table, _Node]]]] = field(default_factory=list)
    order: list[tuple[str, int]] = field(default_factory=list)


@dataclass(slots=True)
class _Compiled:
    """A run query: the snapshot rows, how to render them, and how they were found."""

    table: Table
    columns: list[_Column]
    node: _Node
    count_only: bool
    rows: list[list[Any]]
    #: "ids" (Id = / IN), "index" (the SystemModstamp index) or "scan" (every row)
    plan: str = "scan"
    #: rows looked at before the filter (what the index saves)
    scanned: int = 0


@dataclass(slots=True)
class _Cursor:
    locator: str
    compiled: _Compiled
    batch: int
    last_used: float


@dataclass(slots=True)
class BulkJob:
    """A Bulk API 2.0 query job; its result is computed when created (a snapshot), state follows time."""

    id: str
    operation: str
    object: str
    query: str
    api_version: str
    created_date: str
    created_at: float
    delay_s: float
    column_delimiter: str
    line_ending: str
    compiled: _Compiled | None
    aborted: bool = False
    failed_message: str | None = None
    stamp: str = ""

    def state(self, now: float) -> str:
        if self.aborted:
            return "Aborted"
        if self.failed_message is not None:
            return "Failed"
        elapsed = now - self.created_at
        if elapsed >= self.delay_s:
            return "JobComplete"
        return "UploadComplete" if elapsed < self.delay_s / 2 else "InProgress"

    def info(self, now: float, created_by: str) -> dict[str, Any]:
        state = self.state(now)
        done = state == "JobComplete"
        count = len(self.compiled.rows) if (self.compiled and done) else 0
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": created_by,
            "createdDate": self.created_date,
            "systemModstamp": self.stamp or self.created_date,
            "state": state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": count,
            "retries": 0,
            "totalProcessingTime": int(min(now - self.created_at, self.delay_s) * 1000) if done else 0,
            "isPkChunkingSupported": True,
        }
        if self.failed_message is not None:
            body["errorMessage"] = self.failed_message
        return body


_DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
_LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


@dataclass(slots=True)
class _Person:
    """A seeded person, kept to derive its activities lazily (ordinal = the activity id block)."""

    ordinal: int
    person: SyntheticPerson
    lead_id: str | None
    contact_id: str | None
    account_id: str | None
    owner_id: str


@dataclass(slots=True)
class _ValidationRule:
    name: str
    sobject: str
    condition: str
    predicate: Predicate
    message: str
    field: str | None


# the org --------------------------------------------------------------------------------------------------


class SalesforceOrg:
    """The in-memory org. Thread-safe: public methods take :attr:`lock` (the HTTP app holds it too)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        now: datetime | None = None,
        flows: Iterable[str] = ("Leadsync_Qualified",),
        platform_events: Iterable[str] = ("Leadsync_Qualified__e",),
        bulk_job_delay_s: float = 0.0,
    ) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.anchor = _anchor(now)
        rng = random.Random(f"salesforce-ids:{seed}")
        self._id_base = 10_000_000 + rng.randrange(1_000_000) * 1000
        self._next: dict[str, int] = {}
        self.org_id = make_id(KEY_PREFIXES["Organization"], self._id_base)
        self.objects = standard_objects()
        self.tables: dict[str, Table] = {name: Table(obj) for name, obj in self.objects.items()}
        self._by_lower = {name.lower(): t for name, t in self.tables.items()}
        self._by_prefix = {t.obj.key_prefix: t for t in self.tables.values()}
        self._last_tick_ms = 0
        self._people: list[_Person] = []
        #: people whose activities are built (activities are derived lazily, on first read)
        self._activities_done = 0
        self._accounts_by_name: dict[str, str] = {}
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._jobs: dict[str, BulkJob] = {}
        self.bulk_job_delay_s = bulk_job_delay_s
        self._rules: list[_ValidationRule] = []
        self.custom_fields: dict[str, FieldDef] = {}
        self.flows: dict[str, str | None] = dict.fromkeys(flows)
        self.platform_events: set[str] = set(platform_events)
        self._flow_calls: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._seed_users()
        self._seed_campaigns()

    # ids and clock

    def new_id(self, sobject: str) -> str:
        prefix = self.objects[sobject].key_prefix if sobject in self.objects else KEY_PREFIXES[sobject]
        # each key prefix counts from its own start, so that ids of different objects do not share bodies
        n = self._next.get(prefix, self._id_base + (zlib.crc32(prefix.encode()) % 4096) * 1_000_000)
        self._next[prefix] = n + 1
        return make_id(prefix, n)

    def tick(self) -> str:
        """The next write stamp: wall clock in ms, never before an earlier stamp (ties are possible)."""
        ms = max(time.time_ns() // 1_000_000, self._last_tick_ms)
        self._last_tick_ms = ms
        return _stamp_of_ms(ms)

    @property
    def integration_user_id(self) -> str:
        return self._users[0]

    # seeding

    def _seed_users(self) -> None:
        table = self.tables["User"]
        created = soql.normalize_datetime(self.anchor - timedelta(days=1000))
        self._users: list[str] = []
        people = [("Leadsync", "Integration"), *_SALES_REPS]
        for first, last in people:
            uid = self.new_id("User")
            username = f"{first}.{last}".lower().replace("á", "a").replace("ñ", "n") + "@leadsync.sandbox"
            table.insert(
                table.make_row(
                    {
                        "Id": uid,
                        "IsDeleted": False,
                        "CreatedDate": created,
                        "CreatedById": uid if not self._users else self._users[0],
                        "LastModifiedDate": created,
                        "LastModifiedById": uid if not self._users else self._users[0],
                        "SystemModstamp": created,
                        "Name": f"{first} {last}",
                        "FirstName": first,
                        "LastName": last,
                        "Email": username,
                        "Username": username,
                        "IsActive": True,
                    }
                )
            )
            self._users.append(uid)

    def _seed_campaigns(self) -> None:
        table = self.tables["Campaign"]
        created = soql.normalize_datetime(self.anchor - timedelta(days=800))
        self._campaigns: dict[str, str] = {}
        names = [(name, "Email") for name in _CAMPAIGNS] + [
            (form[0], "Webinar" if "Webinar" in form[0] else "Other") for form in _FORMS
        ]
        for name, ctype in names:
            cid = self.new_id("Campaign")
            table.insert(
                table.make_row(
                    {
                        "Id": cid,
                        "IsDeleted": False,
                        "CreatedDate": created,
                        "CreatedById": self._users[0],
                        "LastModifiedDate": created,
                        "LastModifiedById": self._users[0],
                        "SystemModstamp": created,
                        "Name": name,
                        "Type": ctype,
                        "Status": "In Progress",
                        "IsActive": True,
                        "OwnerId": self._users[1],
                    }
                )
            )
            self._campaigns[name] = cid

    def seed_people(self, people: Iterable[SyntheticPerson], *, as_leads: bool = True) -> list[str]:
        """Add synthetic people as Leads (converted ones also get their Contact and Account) or as Contacts.

        Returns the ids of the Leads (``as_leads``) or Contacts created. Activities (Task, Event,
        CampaignMember) are derived from ``person.events()`` when one of those objects is first read.
        """
        created_ids: list[str] = []
        with self.lock, gc_paused():
            leads, contacts, accounts = self.tables["Lead"], self.tables["Contact"], self.tables["Account"]
            before = (len(leads.rows), len(contacts.rows), len(accounts.rows))
            for person in people:
                created_ids.append(self._seed_person(person, as_lead=as_leads))
            for table, count in zip((leads, contacts, accounts), before, strict=True):
                if len(table.rows) != count:
                    table.rebuild_index()
        return created_ids

    def _account_for(self, person: SyntheticPerson, owner: str, at: str, stamp: str) -> str:
        name = person.company or f"{person.first_name} {person.last_name}".strip() or "Unknown"
        key = name.lower()
        table = self.tables["Account"]
        existing = self._accounts_by_name.get(key)
        if existing is not None:
            if person.converted:
                row = table.rows[existing]
                row[table.obj.by_lower["type"].index] = "Customer - Direct"  # seeding: no snapshot exists yet
            return existing
        aid = self.new_id("Account")
        table.insert(
            table.make_row(
                {
                    "Id": aid,
                    "IsDeleted": False,
                    "CreatedDate": at,
                    "CreatedById": self._users[0],
                    "LastModifiedDate": at,
                    "LastModifiedById": self._users[0],
                    "SystemModstamp": max(at, stamp),
                    "Name": name,
                    "Type": "Customer - Direct" if person.converted else "Prospect",
                    "Industry": _INDUSTRY_MAP.get(person.industry, person.industry or None),
                    "AnnualRevenue": float(person.annual_revenue) if person.annual_revenue is not None else None,
                    "NumberOfEmployees": person.employees,
                    "Website": f"www.{person.company_domain}" if person.company_domain else None,
                    "BillingCountry": person.country or None,
                    "OwnerId": owner,
                }
            ),
            index=False,
        )
        self._accounts_by_name[key] = aid
        return aid

    def _seed_person(self, person: SyntheticPerson, *, as_lead: bool) -> str:
        owner = self._users[1 + person.event_seed % len(_SALES_REPS)]
        created = soql.normalize_datetime(person.created_at)
        stamp = soql.normalize_datetime(person.updated_at)
        first = person.first_name or None
        last = person.last_name or "Unknown"
        common = {
            "IsDeleted": False,
            "CreatedById": self._users[0],
            "LastModifiedDate": stamp,
            "LastModifiedById": self._users[0],
            "SystemModstamp": stamp,
            "FirstName": first,
            "LastName": last,
            "Name": f"{person.first_name} {last}".strip(),
            "Title": person.job_title or None,
            "Email": person.email or None,
            "LeadSource": "Web" if person.form_submissions else _LEAD_SOURCES_NO_FORM[person.event_seed % 5],
            "HasOptedOutOfEmail": person.opted_out,
            "EmailBouncedReason": person.hard_bounce_reason or None,
            "EmailBouncedDate": (
                soql.normalize_datetime(person.created_at + (person.updated_at - person.created_at) / 2)
                if person.hard_bounce_reason
                else None
            ),
            "OwnerId": owner,
        }
        lead_id = contact_id = account_id = None
        converted_at = soql.normalize_datetime(person.customer_at) if person.customer_at else None
        if not as_lead or person.converted:
            contact_created = converted_at if (as_lead and converted_at) else created
            account_id = (
                self._account_for(person, owner, contact_created, stamp)
                if (person.company or person.converted)
                else None
            )
            contact_id = self.new_id("Contact")
            contacts = self.tables["Contact"]
            contacts.insert(
                contacts.make_row(
                    {
                        **common,
                        "Id": contact_id,
                        "CreatedDate": contact_created,
                        "AccountId": account_id,
                        "MailingCountry": person.country or None,
                    }
                ),
                index=False,
            )
        if as_lead:
            lead_id = self.new_id("Lead")
            leads = self.tables["Lead"]
            leads.insert(
                leads.make_row(
                    {
                        **common,
                        "Id": lead_id,
                        "CreatedDate": created,
                        "Company": person.company or "[not provided]",
                        "Website": f"www.{person.company_domain}" if person.company_domain else None,
                        "Industry": _INDUSTRY_MAP.get(person.industry, person.industry or None),
                        "AnnualRevenue": float(person.annual_revenue) if person.annual_revenue is not None else None,
                        "NumberOfEmployees": person.employees,
                        "Country": person.country or None,
                        "Status": _lead_status(person),
                        "IsConverted": person.converted,
                        "ConvertedDate": converted_at[:10] if converted_at else None,
                        "ConvertedAccountId": account_id if person.converted else None,
                        "ConvertedContactId": contact_id if person.converted else None,
                    }
                ),
                index=False,
            )
        self._people.append(_Person(len(self._people), person, lead_id, contact_id, account_id, owner))
        return lead_id if as_lead else contact_id  # type: ignore[return-value]

    def _ensure_activities(self) -> None:
        """Build Task, Event and CampaignMember records from the people's events (first read only)."""
        if self._activities_done >= len(self._people):
            return
        pending = self._people[self._activities_done :]
        self._activities_done = len(self._people)
        tasks, events, members = self.tables["Task"], self.tables["Event"], self.tables["CampaignMember"]
        with gc_paused():
            for entry in pending:
                if (
                    not entry.person.calls
                    and not entry.person.meetings
                    and not (entry.person.email_opens or entry.person.form_submissions)
                ):
                    continue
                self._person_activities(entry, tasks, events, members)
            for table in (tasks, events, members):
                table.rebuild_index()

    def _person_activities(self, entry: _Person, tasks: Table, events: Table, members: Table) -> None:
        person = entry.person
        who = entry.contact_id or entry.lead_id
        base = _ACTIVITY_BASE + entry.ordinal * _ACTIVITY_BLOCK
        counters = {"Task": 0, "Event": 0, "CampaignMember": 0}

        def next_id(sobject: str) -> str | None:
            k = counters[sobject]
            counters[sobject] = k + 1
            return None if k >= _ACTIVITY_BLOCK else make_id(self.objects[sobject].key_prefix, base + k)

        audit = {"IsDeleted": False, "CreatedById": self._users[0], "LastModifiedById": self._users[0]}
        per_campaign: dict[str, dict[str, Any]] = {}
        for event in person.events():
            kind = event.kind
            if kind not in _ACTIVITY_KINDS:
                continue  # visits and page views are not CRM records in Salesforce
            if kind in ("email_open", "email_click", "form_submission"):
                # campaign membership keeps only first/last times: normalize those once, at the end
                name = event.attributes.get("form" if kind == "form_submission" else "campaign", "")
                status = {"email_open": "Opened", "email_click": "Clicked", "form_submission": "Responded"}[kind]
                moment = event.timestamp
                member = per_campaign.setdefault(name, {"first": moment, "last": moment, "status": "Sent"})
                member["last"] = moment
                if _MEMBER_RANK[status] > _MEMBER_RANK[member["status"]]:
                    member["status"] = status
                if kind != "email_open" and "responded" not in member:
                    member["responded"] = moment
                continue
            at = soql.normalize_datetime(event.timestamp)
            if kind in ("call", "email_reply"):
                tid = next_id("Task")
                if tid is None:
                    continue
                is_call = kind == "call"
                tasks.insert(
                    tasks.make_row(
                        {
                            **audit,
                            "Id": tid,
                            "CreatedDate": at,
                            "LastModifiedDate": at,
                            "SystemModstamp": at,
                            "WhoId": who,
                            "WhatId": entry.account_id if entry.contact_id else None,
                            "Subject": "Call" if is_call else f"Email: Re: {event.attributes.get('campaign', '')}",
                            "TaskSubtype": "Call" if is_call else "Email",
                            "ActivityDate": at[:10],
                            "Status": "Completed",
                            "Priority": "Normal",
                            "IsClosed": True,
                            "CallType": "Outbound" if is_call else None,
                            "CallDurationInSeconds": int(event.attributes.get("duration_s", "0")) if is_call else None,
                            "CallDisposition": event.attributes.get("outcome") if is_call else None,
                            "OwnerId": entry.owner_id,
                        }
                    ),
                    index=False,
                )
            elif kind == "meeting":
                eid = next_id("Event")
                if eid is None:
                    continue
                end = soql.normalize_datetime(event.timestamp + timedelta(minutes=30))
                events.insert(
                    events.make_row(
                        {
                            **audit,
                            "Id": eid,
                            "CreatedDate": at,
                            "LastModifiedDate": at,
                            "SystemModstamp": at,
                            "WhoId": who,
                            "WhatId": entry.account_id if entry.contact_id else None,
                            "Subject": "Meeting",
                            "EventSubtype": "Event",
                            "ActivityDateTime": at,
                            "ActivityDate": at[:10],
                            "StartDateTime": at,
                            "EndDateTime": end,
                            "DurationInMinutes": 30,
                            "Description": f"Outcome: {event.attributes.get('outcome', '')}",
                            "OwnerId": entry.owner_id,
                        }
                    ),
                    index=False,
                )
        for name, member in per_campaign.items():
            campaign_id = self._campaigns.get(name)
            mid = next_id("CampaignMember")
            if campaign_id is None or mid is None:
                continue
            last = soql.normalize_datetime(member["last"])
            responded = soql.normalize_datetime(member["responded"])[:10] if "responded" in member else None
            members.insert(
                members.make_row(
                    {
                        **audit,
                        "Id": mid,
                        "CreatedDate": soql.normalize_datetime(member["first"]),
                        "LastModifiedDate": last,
                        "SystemModstamp": last,
                        "CampaignId": campaign_id,
                        "LeadId": entry.lead_id,
                        "ContactId": entry.contact_id,
                        "Status": member["status"],
                        "HasResponded": responded is not None,
                        "FirstRespondedDate": responded,
                    }
                ),
                index=False,
            )

    # reading (for tests and tools; the HTTP API goes through queries)

    def table(self, sobject: str) -> Table:
        """The table of an object by name (case-insensitive).

        :raises SalesforceError: 404 ``NOT_FOUND`` for an unknown object.
        """
        table = self._by_lower.get(sobject.lower())
        if table is None:
            raise SalesforceError(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{sobject}'")
        if table.obj.name in ("Task", "Event", "CampaignMember"):
            self._ensure_activities()
        return table

    def ids(self, sobject: str, *, include_deleted: bool = False) -> list[str]:
        """Record ids in id order."""
        with self.lock:
            table = self.table(sobject)
            return sorted(rid for rid, row in table.rows.items() if include_deleted or not row[IS_DELETED])

    def record(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A copy of a record's current values (deleted ones too), or None."""
        with self.lock:
            table = self.table(sobject)
            full = to_18(record_id)
            row = table.rows.get(full) if full else None
            return table.as_dict(row) if row is not None else None

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            table = self.table(sobject)
            return [table.as_dict(r) for r in table.rows.values() if include_deleted or not r[IS_DELETED]]

    def count(self, sobject: str, *, include_deleted: bool = False) -> int:
        with self.lock:
            table = self.table(sobject)
            return sum(1 for r in table.rows.values() if include_deleted or not r[IS_DELETED])

    def find(self, sobject: str, email: str) -> str | None:
        """The id of the first live record with this email (case-insensitive)."""
        with self.lock:
            table = self.table(sobject)
            fd = table.obj.field("Email")
            if fd is None:
                return None
            wanted = email.strip().casefold()
            for rid, row in table.rows.items():
                value = row[fd.index]
                if not row[IS_DELETED] and value is not None and value.casefold() == wanted:
                    return rid
            return None

    # schema: custom fields

    def create_custom_field(
        self,
        full_name: str,
        field_type: str,
        *,
        label: str | None = None,
        length: int | None = None,
        precision: int | None = None,
        scale: int | None = None,
        values: Sequence[str] = (),
        restricted: bool = False,
        default_value: Any = None,
    ) -> FieldDef:
        """Create ``Object.Name__c`` (what the Tooling API's CustomField POST does).

        ``field_type`` is the Metadata API type (:data:`CUSTOM_FIELD_TYPES`). The field is visible to the
        integration user at once (the sandbox grants field-level security with the field).

        :raises SalesforceError: 400 ``DUPLICATE_DEVELOPER_NAME`` when it exists, ``FIELD_INTEGRITY_EXCEPTION``
            for a bad name, type or size, ``INVALID_TYPE`` for an unknown object.
        """
        with self.lock:
            sobject, _, name = full_name.partition(".")
            table = self._by_lower.get(sobject.lower())
            if table is None or not name or table.obj.name == "User":
                raise SalesforceError(400, "INVALID_TYPE", f"Cannot find object: {sobject}", ["FullName"])
            obj = table.obj
            if not _CUSTOM_NAME_RE.match(name) or len(name) > 43 or "__" in name[:-3]:
                raise SalesforceError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"The field name '{name}' is not valid: a custom field name must begin with a letter, end with "
                    "'__c', and contain only letters, digits and single underscores (at most 40 characters).",
                    ["FullName"],
                )
            if obj.field(name) is not None:
                raise SalesforceError(
                    400,
                    "DUPLICATE_DEVELOPER_NAME",
                    f"There is already a field named {name[:-3]} on {obj.name}.",
                    ["FullName"],
                )
            sf_type = CUSTOM_FIELD_TYPES.get(field_type)
            if sf_type is None:
                raise SalesforceError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"Unsupported field type: {field_type} (the sandbox knows {', '.join(CUSTOM_FIELD_TYPES)})",
                    ["Metadata"],
                )
            fd = FieldDef(name, sf_type, label or name[:-3].replace("_", " "), custom=True)
            if field_type in ("Number", "Currency", "Percent"):
                p = 18 if precision is None else precision
                s = 0 if scale is None else scale
                if not (1 <= p <= 18 and 0 <= s <= p):
                    raise SalesforceError(
                        400, "FIELD_INTEGRITY_EXCEPTION", "Precision must be 1..18 and scale 0..precision", ["Metadata"]
                    )
                fd.precision, fd.scale = p, s
            elif field_type == "Text":
                if length is None or not 1 <= length <= 255:
                    raise SalesforceError(
                        400, "FIELD_INTEGRITY_EXCEPTION", "Length must be between 1 and 255 for Text", ["Metadata"]
                    )
                fd.length = length
            elif field_type == "LongTextArea":
                if length is None or not 256 <= length <= 131_072:
                    raise SalesforceError(
                        400, "FIELD_INTEGRITY_EXCEPTION", "Length must be 256..131072 for LongTextArea", ["Metadata"]
                    )
                fd.length = length
                fd.extra["extraTypeInfo"] = "plaintextarea"
            elif field_type in ("TextArea", "Email", "Url", "Phone", "Picklist"):
                fd.length = {"Phone": 40, "Email": 80}.get(field_type, 255)
            if field_type == "Picklist":
                if not values:
                    raise SalesforceError(
                        400, "FIELD_INTEGRITY_EXCEPTION", "A picklist needs at least one value", ["Metadata"]
                    )
                fd.picklist = tuple(values)
                fd.restricted = restricted
            if field_type == "Checkbox":
                fd.nillable = False
                fd.default_value = bool(default_value) if default_value is not None else False
            fd.tooling_id = self.new_id("CustomField")
            obj.add_field(fd)
            table.refresh_names()
            fill = fd.default_value if field_type == "Checkbox" else None
            for row in table.rows.values():
                # the one in-place change: a new column (old queries never select it)
                while len(row) < obj.width:
                    row.append(fill)
            self.custom_fields[fd.tooling_id] = fd
            fd.extra["object"] = obj.name
            fd.extra["metadata_type"] = field_type
            return fd

    def custom_field(self, tooling_id: str) -> FieldDef | None:
        with self.lock:
            full = to_18(tooling_id)
            return self.custom_fields.get(full) if full else None

    def delete_custom_field(self, tooling_id: str) -> bool:
        with self.lock:
            fd = self.custom_field(tooling_id)
            if fd is None:
                return False
            self.objects[fd.extra["object"]].remove_field(fd.name)
            del self.custom_fields[fd.tooling_id]  # type: ignore[arg-type]
            return True

    def add_validation_rule(
        self, sobject: str, name: str, condition: str, message: str, *, error_field: str | None = None
    ) -> None:
        """A validation rule: a write whose resulting record matches the SOQL ``condition`` fails with
        ``FIELD_CUSTOM_VALIDATION_EXCEPTION`` and ``message`` (the way a formula rule evaluating true does)."""
        with self.lock:
            table = self.table(sobject)
            try:
                cond = soql.parse_condition(condition)
                predicate = self._compile_condition(cond, table.obj, condition)
            except soql.SoqlError as exc:
                msg = f"invalid validation rule {name!r}: {exc.message}"
                raise ValueError(msg) from None
            self._rules.append(_ValidationRule(name, table.obj.name, condition, predicate, message, error_field))

    # SOQL: compiling

    def _error(self, text: str, pos: int, code: str, detail: str) -> SalesforceError:
        return SalesforceError(400, code, soql.format_error(text, pos, detail))

    def _resolve(self, obj: ObjectDef, ref: soql.FieldRef, text: str) -> _Column:
        path = list(ref.path)
        if len(path) > 1 and path[0].lower() == obj.name.lower() and path[0].lower() not in obj.relationships:
            path = path[1:]
        hops: list[FieldDef] = []
        current: list[ObjectDef] = [obj]
        canonical: list[str] = []
        for part in path[:-1]:
            if len(current) != 1:
                raise self._error(
                    text,
                    ref.pos,
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{part}' in field "
                    "path: a polymorphic relationship can only be followed to one of its fields",
                )
            rel = current[0].relationships.get(part.lower())
            if rel is None:
                raise self._error(
                    text,
                    ref.pos,
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{part}' in field path. If you are attempting to use a custom "
                    "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                    "your WSDL or the describe call for the appropriate names.",
                )
            hops.append(rel)
            canonical.append(rel.relationship_name or part)
            current = [self.objects[t] for t in rel.reference_to if t in self.objects]
        last = path[-1]
        finals = [o.field(last) for o in current]
        if not finals or any(f is None for f in finals):
            owner = current[0].name if len(current) == 1 else "Name"
            raise self._error(
                text,
                ref.pos,
                "INVALID_FIELD",
                f"No such column '{last}' on entity '{owner}'. If you are attempting to use a custom field, be sure "
                "to append the '__c' after the custom field name. Please reference your WSDL or the describe call "
                "for the appropriate names.",
            )
        final = finals[0]
        assert final is not None
        canonical.append(final.name)
        polymorphic = len(current) > 1
        get = self._getter(
            [h.index for h in hops], {o.key_prefix: f.index for o, f in zip(current, finals, strict=True) if f}
        )
        return _Column(tuple(canonical), final, get, polymorphic)

    def _getter(self, hops: list[int], final: dict[str, int]) -> Getter:
        if not hops:
            return operator.itemgetter(next(iter(final.values())))
        by_prefix = self._by_prefix
        single = next(iter(final.values())) if len(final) == 1 else None

        def get(row: list[Any]) -> Any:
            prefix = ""
            for ref_index in hops:
                parent_id = row[ref_index]
                if parent_id is None:
                    return None
                prefix = parent_id[:3]
                table = by_prefix.get(prefix)
                parent = table.rows.get(parent_id) if table is not None else None
                if parent is None:
                    return None
                row = parent
            index = single if single is not None else final.get(prefix)
            return None if index is None or index >= len(row) else row[index]

        return get

    def _render_tree(self, obj: ObjectDef, columns: Sequence[_Column], refs: Sequence[soql.FieldRef]) -> _Node:
        root = _Node()
        for column, ref in zip(columns, refs, strict=True):
            path = list(ref.path)
            if len(path) > 1 and path[0].lower() == obj.name.lower() and path[0].lower() not in obj.relationships:
                path = path[1:]
            self._add_to_tree(root, obj, path, column.path)
        return root

    def _add_to_tree(self, node: _Node, obj: ObjectDef, path: list[str], canonical: tuple[str, ...]) -> None:
        if len(path) == 1:
            fd = obj.field(path[0])
            assert fd is not None
            if all(name != fd.name for name, _ in node.fields):
                node.fields.append((fd.name, fd.index))
                node.order.append(("f", len(node.fields) - 1))
            return
        rel = obj.relationships[path[0].lower()]
        name = rel.relationship_name or path[0]
        found = [entry[3] for entry in node.parents if entry[0] == name]
        targets: dict[str, tuple[Table, _Node]] = found[0] if found else {}
        if not found:
            node.parents.append((name, rel.index, len(rel.reference_to) > 1, targets))
            node.order.append(("p", len(node.parents) - 1))
        for target in rel.reference_to:
            target_obj = self.objects.get(target)
            if target_obj is None:
                continue
            entry = targets.get(target_obj.key_prefix)
            if entry is None:
                entry = (self.tables[target_obj.name], _Node())
                targets[target_obj.key_prefix] = entry
            self._add_to_tree(entry[1], target_obj, path[1:], canonical[1:])

    def _literal_error(
        self, text: str, value: soql.Value, column: _Column, expected: str, quoted: bool
    ) -> SalesforceError:
        hint = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        return self._error(
            text,
            value.pos,
            "INVALID_FIELD",
            f"value of filter criterion for field '{column.name}' must be of type {expected} and {hint}",
        )

    def _key(self, column: _Column, value: soql.Value, text: str) -> Any:
        """A literal as the stored form of the column's type (case-folded for text), after type checks."""
        fd = column.field
        kind = value.kind
        if kind == "null":
            return None
        if fd.is_text:
            if kind != "string":
                raise self._literal_error(text, value, column, "string", True)
            raw = str(value.value).replace("\\%", "%").replace("\\_", "_")
            return raw.casefold() if raw else None
        if fd.is_id:
            if kind != "string":
                raise self._literal_error(text, value, column, "id", True)
            full = to_18(str(value.value))
            if full is None:
                raise self._error(text, value.pos, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {value.value}")
            return full
        if fd.is_number:
            if kind != "number":
                raise self._literal_error(text, value, column, "double" if fd.type != "int" else "integer", False)
            return float(value.value)
        if fd.type == "boolean":
            if kind != "boolean":
                raise self._literal_error(text, value, column, "boolean", False)
            return bool(value.value)
        if fd.type == "datetime":
            if kind == "datetime":
                return value.value
            raise self._literal_error(text, value, column, "dateTime", False)
        if fd.type == "date":
            if kind == "date":
                return value.value
            raise self._literal_error(text, value, column, "date", False)
        raise self._error(
            text, value.pos, "INVALID_FIELD", f"field '{column.name}' can not be filtered in a query call"
        )

    def _date_range(self, column: _Column, value: soql.Value, text: str) -> tuple[str, str]:
        """``[start, end)`` of a relative date literal in the column's stored form (UTC days)."""
        if column.field.type not in ("date", "datetime"):
            raise self._literal_error(text, value, column, column.field.type, column.field.is_text)
        name, n = value.value
        today = datetime.now(UTC).date()
        spans = {
            "TODAY": (today, today + timedelta(days=1)),
            "YESTERDAY": (today - timedelta(days=1), today),
            "TOMORROW": (today + timedelta(days=1), today + timedelta(days=2)),
            "LAST_N_DAYS": (today - timedelta(days=n), today + timedelta(days=1)),
            "NEXT_N_DAYS": (today + timedelta(days=1), today + timedelta(days=n + 1)),
            "N_DAYS_AGO": (today - timedelta(days=n), today - timedelta(days=n - 1)),
        }
        start, end = spans[name]
        if column.field.type == "date":
            return start.isoformat(), end.isoformat()
        return f"{start.isoformat()}T00:00:00.000+0000", f"{end.isoformat()}T00:00:00.000+0000"

    def _compile_condition(self, cond: soql.Condition, obj: ObjectDef, text: str) -> Predicate:
        if isinstance(cond, soql.And):
            parts = [self._compile_condition(c, obj, text) for c in cond.operands]
            if len(parts) == 2:
                a, b = parts
                return lambda r: a(r) and b(r)
            return lambda r: all(p(r) for p in parts)
        if isinstance(cond, soql.Or):
            parts = [self._compile_condition(c, obj, text) for c in cond.operands]
            if len(parts) == 2:
                a, b = parts
                return lambda r: a(r) or b(r)
            return lambda r: any(p(r) for p in parts)
        if isinstance(cond, soql.Not):
            inner = self._compile_condition(cond.operand, obj, text)
            return lambda r: not inner(r)
        if isinstance(cond, soql.Like):
            return self._compile_like(cond, obj, text)
        if isinstance(cond, soql.InList):
            return self._compile_in(cond, obj, text)
        return self._compile_comparison(cond, obj, text)

    def _compile_like(self, cond: soql.Like, obj: ObjectDef, text: str) -> Predicate:
        column = self._resolve(obj, cond.field, text)
        if not column.field.is_text:
            raise self._error(text, cond.field.pos, "INVALID_FIELD", f"invalid operator on field: {column.name}")
        pattern = str(cond.pattern.value)
        parts: list[str] = []
        i = 0
        while i < len(pattern):
            ch = pattern[i]
            if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
                parts.append(re.escape(pattern[i + 1]))
                i += 2
                continue
            parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
            i += 1
        regex = re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
        get, match = column.get, regex.fullmatch
        return lambda r: (v := get(r)) is not None and match(v) is not None

    def _compile_in(self, cond: soql.InList, obj: ObjectDef, text: str) -> Predicate:
        column = self._resolve(obj, cond.field, text)
        keys = {self._key(column, v, text) for v in cond.values}
        with_null = None in keys
        keys.discard(None)
        get = column.get
        fold = column.field.is_text
        if cond.negated:
            if fold:
                return lambda r: (
                    ((v := get(r)) is None and not with_null) or (v is not None and v.casefold() not in keys)
                )
            return lambda r: ((v := get(r)) is None and not with_null) or (v is not None and v not in keys)
        if fold:
            return lambda r: ((v := get(r)) is None and with_null) or (v is not None and v.casefold() in keys)
        if column.field.is_number:
            return lambda r: ((v := get(r)) is None and with_null) or (v is not None and float(v) in keys)
        return lambda r: ((v := get(r)) is None and with_null) or (v is not None and v in keys)

    def _compile_comparison(self, cond: soql.Comparison, obj: ObjectDef, text: str) -> Predicate:
        column = self._resolve(obj, cond.field, text)
        get, op, value = column.get, cond.op, cond.value
        if value.kind == "date_literal":
            start, end = self._date_range(column, value, text)
            ranges: dict[str, Predicate] = {
                "=": lambda r: (v := get(r)) is not None and start <= v < end,
                "!=": lambda r: (v := get(r)) is None or not start <= v < end,
                "<": lambda r: (v := get(r)) is not None and v < start,
                "<=": lambda r: (v := get(r)) is not None and v < end,
                ">": lambda r: (v := get(r)) is not None and v >= end,
                ">=": lambda r: (v := get(r)) is not None and v >= start,
            }
            return ranges[op]
        key = self._key(column, value, text)
        if key is None:
            if op == "=":
                return lambda r: get(r) is None
            if op == "!=":
                return lambda r: get(r) is not None
            raise self._error(text, value.pos, "MALFORMED_QUERY", f"null can only be compared with = or !=, not {op}")
        if column.field.type == "boolean" and op not in ("=", "!="):
            raise self._error(text, value.pos, "INVALID_FIELD", f"invalid operator on boolean field: {op}")
        if column.field.is_text:
            fold: Callable[[Any], Any] = str.casefold
        elif column.field.is_number:
            fold = float
        else:
            fold = _identity
        if op == "!=":
            return lambda r: (v := get(r)) is None or fold(v) != key
        compare = _OPERATORS[op]
        return lambda r: (v := get(r)) is not None and compare(fold(v), key)

    def _stamp_bounds(
        self, cond: soql.Condition | None, obj: ObjectDef, text: str
    ) -> tuple[str, bool, str, bool] | None:
        """The SystemModstamp range ``(low, inclusive, high, inclusive)`` a filter implies, or None.

        AND narrows (operands that say nothing about the stamp are checked row by row later), OR takes the
        hull of its operands' ranges and only when each has one. So keyset paging such as
        ``SystemModstamp > X OR (SystemModstamp = X AND Id > 'last')`` reads the index from X on.
        """
        if cond is None:
            return None
        if isinstance(cond, soql.And):
            ranges = [r for c in cond.operands if (r := self._stamp_bounds(c, obj, text)) is not None]
            if not ranges:
                return None
            lo, lo_incl, hi, hi_incl = ranges[0]
            for low, low_incl, high, high_incl in ranges[1:]:
                if low > lo or (low == lo and not low_incl):
                    lo, lo_incl = low, low_incl
                if high < hi or (high == hi and not high_incl):
                    hi, hi_incl = high, high_incl
            return lo, lo_incl, hi, hi_incl
        if isinstance(cond, soql.Or):
            maybe = [self._stamp_bounds(c, obj, text) for c in cond.operands]
            ranges = [r for r in maybe if r is not None]
            if len(ranges) != len(maybe):
                return None
            lo, lo_incl, hi, hi_incl = ranges[0]
            for low, low_incl, high, high_incl in ranges[1:]:
                if low < lo or (low == lo and low_incl):
                    lo, lo_incl = low, low_incl
                if high > hi or (high == hi and high_incl):
                    hi, hi_incl = high, high_incl
            return lo, lo_incl, hi, hi_incl
        if not isinstance(cond, soql.Comparison) or len(cond.field.path) != 1:
            return None
        if cond.field.path[0].lower() != "systemmodstamp" or cond.op == "!=":
            return None
        if cond.value.kind == "datetime":
            start = end = str(cond.value.value)
            end_incl = True
        elif cond.value.kind == "date_literal":
            column = self._resolve(obj, cond.field, text)
            start, end = self._date_range(column, cond.value, text)
            end_incl = False
        else:
            return None
        bounds: dict[str, tuple[str, bool, str, bool]] = {
            "=": (start, True, end, end_incl),
            "<": ("", True, start, False),
            "<=": ("", True, end, end_incl),
            ">": (end, not end_incl, _TOP, True),
            ">=": (start, True, _TOP, True),
        }
        return bounds[cond.op]

    def _id_candidates(self, cond: soql.Condition | None) -> set[str] | None:
        if cond is None:
            return None
        parts = cond.operands if isinstance(cond, soql.And) else (cond,)
        for part in parts:
            if len(getattr(part, "field", soql.FieldRef((), 0)).path) != 1:
                continue
            if isinstance(part, soql.Comparison) and part.op == "=" and part.field.path[0].lower() == "id":
                full = to_18(str(part.value.value)) if part.value.kind == "string" else None
                return {full} if full else set()
            if isinstance(part, soql.InList) and not part.negated and part.field.path[0].lower() == "id":
                return {f for v in part.values if v.kind == "string" and (f := to_18(str(v.value)))}
        return None

    def compile_and_run(self, text: str, *, include_deleted: bool = False, bulk: bool = False) -> _Compiled:
        """Parse, check and run a query; the result rows are a snapshot (copy-on-write rows).

        Public for tests and benchmarks: ``plan`` and ``scanned`` of the result show whether an index was used.
        """
        try:
            query = soql.parse_query(text)
        except soql.SoqlError as exc:
            raise SalesforceError(400, exc.code, exc.message) from None
        table = self._by_lower.get(query.sobject.lower())
        if table is None:
            raise self._error(
                text,
                query.sobject_pos,
                "INVALID_TYPE",
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, be "
                "sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for "
                "the appropriate names.",
            )
        table = self.table(table.obj.name)  # materializes activities when needed
        obj = table.obj
        if bulk and (query.count or query.offset is not None):
            raise SalesforceError(400, "INVALIDJOB", "Bulk API 2.0 query jobs support neither COUNT() nor OFFSET")
        columns = [self._resolve(obj, ref, text) for ref in query.fields]
        seen: set[str] = set()
        for column, ref in zip(columns, query.fields, strict=True):
            key = column.name.lower()
            if key in seen:
                raise self._error(text, ref.pos, "MALFORMED_QUERY", f"duplicate field selected: {column.name}")
            seen.add(key)
        predicate = self._compile_condition(query.where, obj, text) if query.where is not None else None
        orders = [(self._resolve(obj, item.field, text), item) for item in query.order_by]
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise SalesforceError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")

        # candidates: by id, by the SystemModstamp index, or every row (id order)
        in_index_order = False
        ids = self._id_candidates(query.where)
        bounds = self._stamp_bounds(query.where, obj, text) if ids is None else None
        candidates: Iterable[list[Any]]
        if ids is not None:
            candidates = [table.rows[i] for i in sorted(ids) if i in table.rows]
            plan, scanned = "ids", len(candidates)
        elif bounds is not None:
            lo, lo_incl, hi, hi_incl = bounds
            index = table.stamp_index
            start = bisect.bisect_left(index, (lo, "")) if lo_incl else bisect.bisect_right(index, (lo, "~"))
            end = bisect.bisect_right(index, (hi, "~")) if hi_incl else bisect.bisect_left(index, (hi, ""))
            rows = table.rows
            candidates = (rows[rid] for _stamp, rid in itertools.islice(index, start, max(start, end)))
            in_index_order = True
            plan, scanned = "index", max(end - start, 0)
        else:
            candidates = table.rows.values()
            plan, scanned = "scan", len(table.rows)
        if not include_deleted:
            candidates = (r for r in candidates if not r[IS_DELETED])
        if predicate is not None:
            candidates = filter(predicate, candidates)

        sorted_already = not orders or (
            in_index_order
            and orders[0][0].path == ("SystemModstamp",)
            and not orders[0][1].descending
            and all(c.path == ("Id",) and not o.descending for c, o in orders[1:2])
            and len(orders) <= 2
        )
        stop = None
        if query.limit is not None and sorted_already:
            stop = (query.offset or 0) + query.limit
        result = list(itertools.islice(candidates, stop)) if stop is not None else list(candidates)
        if not sorted_already:
            for column, item in reversed(orders):
                result.sort(key=_sort_key(column, item), reverse=item.descending)
        if query.offset:
            result = result[query.offset :]
        if query.limit is not None:
            result = result[: query.limit]
        node = self._render_tree(obj, columns, query.fields)
        return _Compiled(table, columns, node, query.count, result, plan, scanned)

    # SOQL: the REST answers

    def render(self, compiled: _Compiled, rows: Sequence[list[Any]], version: str) -> list[dict[str, Any]]:
        obj_name = compiled.table.obj.name
        node = compiled.node
        prefix = f"/services/data/v{version}/sobjects/{obj_name}/"
        if not node.parents:
            pairs = node.fields
            return [
                {"attributes": {"type": obj_name, "url": prefix + row[ID]}, **{n: row[i] for n, i in pairs}}
                for row in rows
            ]
        return [_render_row(row, obj_name, node, version, False) for row in rows]

    def query(
        self, text: str, *, include_deleted: bool = False, version: str = "59.0", batch_size: int = QUERY_DEFAULT_BATCH
    ) -> dict[str, Any]:
        """The REST ``query``/``queryAll`` answer: the first batch, and a cursor when more remain."""
        with self.lock:
            compiled = self.compile_and_run(text, include_deleted=include_deleted)
            total = len(compiled.rows)
            if compiled.count_only:
                return {"totalSize": total, "done": True, "records": []}
            batch = max(QUERY_MIN_BATCH, min(batch_size, QUERY_DEFAULT_BATCH))
            body: dict[str, Any] = {"totalSize": total, "done": total <= batch}
            if total > batch:
                locator = self.new_id("QueryLocator")
                self._cursors[locator] = _Cursor(locator, compiled, batch, time.monotonic())
                self._trim_cursors()
                body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{batch}"
            body["records"] = self.render(compiled, compiled.rows[:batch], version)
            return body

    def query_more(self, cursor_text: str, *, version: str = "59.0", batch_size: int | None = None) -> dict[str, Any]:
        """The batch of a cursor at ``<locator>-<offset>`` (the tail of ``nextRecordsUrl``)."""
        with self.lock:
            locator, _, offset_text = cursor_text.partition("-")
            cursor = self._cursors.get(locator)
            now = time.monotonic()
            if cursor is None or not offset_text.isdigit() or now - cursor.last_used > CURSOR_IDLE_S:
                self._cursors.pop(locator, None)
                raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            cursor.last_used = now
            self._cursors.move_to_end(locator)
            offset = int(offset_text)
            rows = cursor.compiled.rows
            batch = cursor.batch if batch_size is None else max(QUERY_MIN_BATCH, min(batch_size, QUERY_DEFAULT_BATCH))
            end = offset + batch
            body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows)}
            if end < len(rows):
                body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
            else:
                del self._cursors[locator]
            body["records"] = self.render(cursor.compiled, rows[offset:end], version)
            return body

    def _trim_cursors(self) -> None:
        now = time.monotonic()
        for locator in [k for k, c in self._cursors.items() if now - c.last_used > CURSOR_IDLE_S]:
            del self._cursors[locator]
        while len(self._cursors) > MAX_CURSORS:
            self._cursors.popitem(last=False)

    # writes

    def _check_write(
        self, table: Table, values: Mapping[str, Any], current: list[Any] | None
    ) -> tuple[list[Any] | None, list[RecordError]]:
        """The new row for a create (``current`` None) or update, or the per-record errors.

        :raises WriteRejected: a value JSON cannot bind (the whole request fails).
        """
        obj = table.obj
        errors: list[RecordError] = []
        changes: dict[int, Any] = {}
        for key, raw in values.items():
            if key == "attributes" or (current is not None and key in ("id", "Id")):
                continue
            fd = obj.field(key)
            if fd is None:
                errors.append(RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}"))
                continue
            value, error = coerce_value(fd, raw)
            if not (fd.updateable if current is not None else fd.createable):
                errors.append(
                    RecordError(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {fd.name}. Please check the security settings of this field "
                        "and verify that it is read/write for your profile or permission set.",
                        (fd.name,),
                    )
                )
                continue
            if error is not None:
                errors.append(error)
                continue
            if fd.type == "reference" and value is not None:
                target = self._by_prefix.get(value[:3])
                parent = target.rows.get(value) if target is not None else None
                if parent is None or parent[IS_DELETED]:
                    errors.append(
                        RecordError(
                            "INVALID_CROSS_REFERENCE_KEY",
                            f"{fd.label}: id value of incorrect type: {value}",
                            (fd.name,),
                        )
                    )
                    continue
            changes[fd.index] = value
        if errors:
            return None, errors
        row: list[Any]
        if current is None:
            row = [None] * obj.width
            for fd in obj.fields:
                if fd.default_value is not None:
                    row[fd.index] = fd.default_value
            row[IS_DELETED] = False
            owner = obj.field("OwnerId")
            if owner is not None:
                row[owner.index] = self.integration_user_id
        else:
            row = list(current)
            while len(row) < obj.width:
                row.append(None)
        for index, value in changes.items():
            row[index] = value
        missing = [name for name in obj.required if row[obj.by_lower[name.lower()].index] is None]
        if missing:
            return None, [
                RecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", tuple(missing)
                )
            ]
        name_fd = obj.field("Name")
        first, last = obj.field("FirstName"), obj.field("LastName")
        if name_fd is not None and first is not None and last is not None and not name_fd.updateable:
            row[name_fd.index] = " ".join(x for x in (row[first.index], row[last.index]) if x)
        for rule in self._rules:
            if rule.sobject == obj.name and rule.predicate(row):
                fields = (rule.field,) if rule.field else ()
                errors.append(RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, fields))
        if errors:
            return None, errors
        return row, []

    def _target(self, table: Table, raw_id: Any) -> tuple[str | None, list[Any] | None, RecordError | None]:
        """Look up the record a write names: (id, current row, error)."""
        obj = table.obj
        if raw_id is None or raw_id == "":
            return None, None, RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
        full = to_18(str(raw_id)) if isinstance(raw_id, str) else None
        if full is None or full[:3] != obj.key_prefix:
            return (
                None,
                None,
                RecordError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {raw_id}", ("Id",)),
            )
        row = table.rows.get(full)
        if row is None:
            return full, None, RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if row[IS_DELETED]:
            return full, None, RecordError("ENTITY_IS_DELETED", "entity is deleted")
        if obj.name == "Lead" and row[obj.by_lower["isconverted"].index]:
            return full, None, RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        return full, row, None

    def _commit(self, table: Table, row: list[Any], stamp: str, *, created: bool) -> None:
        row[MODIFIED] = row[STAMP] = stamp
        row[MODIFIED_BY] = self.integration_user_id
        if created:
            row[CREATED] = stamp
            row[CREATED_BY] = self.integration_user_id
            table.insert(row)
        else:
            table.replace(row)

    def update_collection(self, records: Any, *, all_or_none: bool) -> list[dict[str, Any]]:
        """``PATCH /composite/sobjects``: SaveResults in request order (per-record errors use ``statusCode``).

        :raises SalesforceError: 400 for a malformed request (not a list, > 200 records, no type).
        :raises WriteRejected: a value JSON cannot bind (the whole request fails, nothing is written).
        """
        with self.lock:
            items = self._collection_items(records)
            pending: dict[str, tuple[Table, list[Any]]] = {}
            outcomes: list[tuple[str | None, list[RecordError]]] = []
            for table, item in items:
                full, current, error = self._target(table, item.get("id", item.get("Id")))
                if error is not None:
                    outcomes.append((full if error.status_code != "MALFORMED_ID" else None, [error]))
                    continue
                assert full is not None and current is not None
                if full in pending:
                    current = pending[full][1]
                row, errors = self._check_write(table, item, current)
                if row is None:
                    outcomes.append((full, errors))
                    continue
                pending[full] = (table, row)
                outcomes.append((full, []))
            return self._finish(outcomes, pending, all_or_none, created=False)

    def create_collection(self, records: Any, *, all_or_none: bool) -> list[dict[str, Any]]:
        """``POST /composite/sobjects``: create up to 200 records (no ``id`` allowed)."""
        with self.lock:
            items = self._collection_items(records)
            pending: dict[str, tuple[Table, list[Any]]] = {}
            outcomes: list[tuple[str | None, list[RecordError]]] = []
            for table, item in items:
                if item.get("id") or item.get("Id"):
                    outcomes.append(
                        (None, [RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ("Id",))])
                    )
                    continue
                self._check_creatable(table)
                row, errors = self._check_write(table, item, None)
                if row is None:
                    outcomes.append((None, errors))
                    continue
                rid = self.new_id(table.obj.name)
                row[ID] = rid
                pending[rid] = (table, row)
                outcomes.append((rid, []))
            return self._finish(outcomes, pending, all_or_none, created=True)

    def _collection_items(self, records: Any) -> list[tuple[Table, Mapping[str, Any]]]:
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "records must be an array of sObjects")
        if len(records) > COLLECTION_MAX_RECORDS:
            raise SalesforceError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_MAX_RECORDS} records into this call",
            )
        items: list[tuple[Table, Mapping[str, Any]]] = []
        for record in records:
            attributes = record.get("attributes")
            sobject = attributes.get("type") if isinstance(attributes, dict) else None
            table = self._by_lower.get(str(sobject).lower()) if sobject else None
            if table is None:
                raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.")
            self.table(table.obj.name)
            items.append((table, record))
        # values JSON cannot bind fail the request before anything is looked up (Salesforce parses first)
        for table, record in items:
            for key, raw in record.items():
                fd = table.obj.field(key) if key not in ("attributes", "id", "Id") else None
                if fd is not None:
                    coerce_value(fd, raw)
        return items

    def _finish(
        self,
        outcomes: list[tuple[str | None, list[RecordError]]],
        pending: Mapping[str, tuple[Table, list[Any]]],
        all_or_none: bool,
        *,
        created: bool,
    ) -> list[dict[str, Any]]:
        failed = any(errors for _id, errors in outcomes)
        if failed and all_or_none:
            rolled = RecordError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
            )
            results = []
            for rid, errors in outcomes:
                item: dict[str, Any] = {"success": False, "errors": [e.as_save_error() for e in errors or [rolled]]}
                if rid is not None and not created:
                    item = {"id": rid, **item}
                results.append(item)
            return results
        if pending:
            stamp = self.tick()
            for table, row in pending.values():
                self._commit(table, row, stamp, created=created)
        results = []
        for rid, errors in outcomes:
            if errors:
                item = {"success": False, "errors": [e.as_save_error() for e in errors]}
                if rid is not None and not created:
                    item = {"id": rid, **item}
                results.append(item)
            else:
                results.append({"id": rid, "success": True, "errors": []})
        return results

    def _check_creatable(self, table: Table) -> None:
        if not table.obj.createable:
            raise SalesforceError(
                400, "INVALID_TYPE_FOR_OPERATION", f"entity type {table.obj.name} does not support insert"
            )

    def update_record(self, sobject: str, record_id: str, values: Mapping[str, Any]) -> None:
        """``PATCH /sobjects/{Type}/{id}`` (204 on success).

        :raises SalesforceError: 404 for an unknown id, 400 with the record's errors otherwise.
        """
        with self.lock:
            table = self.table(sobject)
            for key, raw in values.items():
                fd = table.obj.field(key)
                if fd is not None:
                    coerce_value(fd, raw)
            _full, current, error = self._target(table, record_id)
            if error is not None:
                if error.status_code == "MALFORMED_ID":
                    raise SalesforceError(
                        404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {record_id}"
                    )
                if error.status_code == "INVALID_CROSS_REFERENCE_KEY":
                    raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
                status = 404 if error.status_code == "ENTITY_IS_DELETED" else 400
                raise SalesforceError(status, error.status_code, error.message, error.fields)
            assert current is not None
            row, errors = self._check_write(table, values, current)
            if row is None:
                first = errors[0]
                raise SalesforceError(400, first.status_code, first.message, first.fields)
            self._commit(table, row, self.tick(), created=False)

    def create_record(self, sobject: str, values: Mapping[str, Any]) -> str:
        """``POST /sobjects/{Type}``; returns the new id."""
        with self.lock:
            table = self.table(sobject)
            self._check_creatable(table)
            for key, raw in values.items():
                fd = table.obj.field(key)
                if fd is not None:
                    coerce_value(fd, raw)
            if "Id" in values or "id" in values:
                raise SalesforceError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            row, errors = self._check_write(table, values, None)
            if row is None:
                first = errors[0]
                raise SalesforceError(400, first.status_code, first.message, first.fields)
            row[ID] = self.new_id(table.obj.name)
            self._commit(table, row, self.tick(), created=True)
            return str(row[ID])

    def delete_record(self, sobject: str, record_id: str) -> None:
        """Soft delete: ``IsDeleted`` true, gone from ``query``, still in ``queryAll``."""
        with self.lock:
            table = self.table(sobject)
            full = to_18(record_id)
            row = table.rows.get(full) if full else None
            if row is None:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            if row[IS_DELETED]:
                raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
            new = list(row)
            new[IS_DELETED] = True
            self._commit(table, new, self.tick(), created=False)

    def read_record(self, sobject: str, record_id: str, fields: Sequence[str] | None, version: str) -> dict[str, Any]:
        """``GET /sobjects/{Type}/{id}[?fields=...]``."""
        with self.lock:
            table = self.table(sobject)
            full = to_18(record_id)
            row = table.rows.get(full) if full else None
            if row is None or (full or "")[:3] != table.obj.key_prefix:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            if row[IS_DELETED]:
                raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
            obj = table.obj
            chosen: list[FieldDef] = []
            for name in fields or [f.name for f in obj.live_fields]:
                fd = obj.field(name)
                if fd is None:
                    raise SalesforceError(
                        400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
                    )
                chosen.append(fd)
            body: dict[str, Any] = {
                "attributes": {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{row[ID]}"}
            }
            for fd in chosen:
                body[fd.name] = row[fd.index] if fd.index < len(row) else None
            return body

    def touch(self, sobject: str, ids: Iterable[str] | None = None, *, at: datetime | None = None) -> str:
        """A system process changes records: ``SystemModstamp`` only (not ``LastModifiedDate``), one
        identical stamp for all of them (default: now; ``at`` must not be in the future). Returns the stamp."""
        with self.lock:
            table = self.table(sobject)
            stamp = soql.normalize_datetime(at) if at is not None else self.tick()
            chosen = list(table.rows) if ids is None else [f for i in ids if (f := to_18(i)) and f in table.rows]
            for rid in chosen:
                new = list(table.rows[rid])
                new[STAMP] = stamp
                table.rows[rid] = new
            table.rebuild_index()
            return stamp

    def convert_lead(self, lead_id: str, *, account_id: str | None = None) -> tuple[str, str]:
        """Convert a lead the way the UI does: a Contact (and an Account unless given), status
        ``Closed - Converted``, its tasks and events moved to the contact. Returns (contact id, account id)."""
        with self.lock:
            leads = self.table("Lead")
            self._ensure_activities()
            full, row, error = self._target(leads, lead_id)
            if error is not None or row is None:
                raise SalesforceError(400, error.status_code if error else "NOT_FOUND", error.message if error else "")
            obj = leads.obj
            lead = leads.as_dict(row)
            stamp = self.tick()
            if account_id is None:
                account_id = self.create_record(
                    "Account",
                    {
                        "Name": lead["Company"],
                        "Industry": lead["Industry"],
                        "NumberOfEmployees": lead["NumberOfEmployees"],
                        "AnnualRevenue": lead["AnnualRevenue"],
                        "BillingCountry": lead["Country"],
                        "Type": "Prospect",
                    },
                )
            contact_values = {
                k: lead[k]
                for k in (
                    "FirstName",
                    "LastName",
                    "Title",
                    "Email",
                    "LeadSource",
                    "HasOptedOutOfEmail",
                    "EmailBouncedReason",
                    "EmailBouncedDate",
                )
                if lead.get(k) is not None
            }
            contact_id = self.create_record(
                "Contact", {**contact_values, "AccountId": account_id, "MailingCountry": lead["Country"]}
            )
            new = list(row)
            for name, value in (
                ("IsConverted", True),
                ("Status", "Closed - Converted"),
                ("ConvertedDate", stamp[:10]),
                ("ConvertedAccountId", account_id),
                ("ConvertedContactId", contact_id),
            ):
                new[obj.by_lower[name.lower()].index] = value
            self._commit(leads, new, stamp, created=False)
            for sobject in ("Task", "Event"):
                table = self.tables[sobject]
                who = table.obj.by_lower["whoid"].index
                for trow in list(table.rows.values()):
                    if trow[who] == full:
                        moved = list(trow)
                        moved[who] = contact_id
                        self._commit(table, moved, stamp, created=False)
            members = self.tables["CampaignMember"]
            lead_col, contact_col = members.obj.by_lower["leadid"].index, members.obj.by_lower["contactid"].index
            for mrow in list(members.rows.values()):
                if mrow[lead_col] == full:
                    moved = list(mrow)
                    moved[contact_col] = contact_id
                    self._commit(members, moved, stamp, created=False)
            return contact_id, account_id

    # Bulk API 2.0 query jobs

    def create_query_job(self, body: Mapping[str, Any], version: str) -> BulkJob:
        with self.lock:
            operation = body.get("operation")
            query = body.get("query")
            if operation not in ("query", "queryAll"):
                raise SalesforceError(400, "INVALIDJOB", f"Invalid operation for a query job: {operation}")
            if not isinstance(query, str) or not query.strip():
                raise SalesforceError(400, "INVALIDJOB", "A query job needs a query")
            delimiter = str(body.get("columnDelimiter") or "COMMA")
            line_ending = str(body.get("lineEnding") or "LF")
            if delimiter not in _DELIMITERS or line_ending not in _LINE_ENDINGS:
                raise SalesforceError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
            if body.get("contentType", "CSV") != "CSV":
                raise SalesforceError(400, "INVALIDJOB", "Only CSV is supported for query jobs")
            compiled = self.compile_and_run(query, include_deleted=operation == "queryAll", bulk=True)
            created = self.tick()
            job = BulkJob(
                id=self.new_id("Job"),
                operation=operation,
                object=compiled.table.obj.name,
                query=query,
                api_version=version,
                created_date=created,
                created_at=time.monotonic(),
                delay_s=self.bulk_job_delay_s,
                column_delimiter=delimiter,
                line_ending=line_ending,
                compiled=compiled,
            )
            self._jobs[job.id] = job
            return job

    def job(self, job_id: str) -> BulkJob:
        with self.lock:
            job = self._jobs.get(to_18(job_id) or "")
            if job is None:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            return job

    def jobs(self) -> list[BulkJob]:
        with self.lock:
            return list(self._jobs.values())

    def abort_job(self, job_id: str) -> BulkJob:
        with self.lock:
            job = self.job(job_id)
            state = job.state(time.monotonic())
            if state in ("JobComplete", "Failed", "Aborted"):
                raise SalesforceError(400, "INVALIDJOB", f"Aborting already {state} Job not allowed")
            job.aborted = True
            job.stamp = self.tick()
            job.compiled = None
            return job

    def delete_job(self, job_id: str) -> None:
        with self.lock:
            job = self.job(job_id)
            if job.state(time.monotonic()) in ("UploadComplete", "InProgress"):
                raise SalesforceError(400, "INVALIDJOB", "Cannot delete a job that is in progress; abort it first")
            del self._jobs[job.id]

    def job_results(
        self, job_id: str, *, locator: str | None, max_records: int | None, version: str
    ) -> tuple[str, int, str]:
        """A results page: (CSV text, number of records, next locator or ``"null"``)."""
        with self.lock:
            job = self.job(job_id)
            if job.api_version != version:
                raise SalesforceError(
                    409, "INVALIDJOB", f"Job {job.id} was created with API version {job.api_version}, not {version}"
                )
            state = job.state(time.monotonic())
            if state != "JobComplete" or job.compiled is None:
                raise SalesforceError(400, "INVALIDJOB", f"Job {job.id} is not complete (state {state})")
            offset = 0
            if locator:
                parsed = _locator_offset(locator)
                if parsed is None:
                    raise SalesforceError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
                offset = parsed
            size = BULK_DEFAULT_PAGE if max_records is None else max_records
            if size <= 0:
                raise SalesforceError(400, "INVALIDJOB", "maxRecords must be a positive integer")
            rows = job.compiled.rows[offset : offset + size]
            end = offset + len(rows)
            next_locator = _locator_text(end) if end < len(job.compiled.rows) else "null"
            return self._csv(job, rows), len(rows), next_locator

    def _csv(self, job: BulkJob, rows: Sequence[list[Any]]) -> str:
        assert job.compiled is not None
        columns = job.compiled.columns
        out = io.StringIO()
        writer = csv.writer(
            out,
            delimiter=_DELIMITERS[job.column_delimiter],
            lineterminator=_LINE_ENDINGS[job.line_ending],
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow([c.name for c in columns])
        formatters = [_csv_formatter(c.field) for c in columns]
        getters = [c.get for c in columns]
        for row in rows:
            writer.writerow([fmt(get(row)) for fmt, get in zip(formatters, getters, strict=True)])
        return out.getvalue()

    # flows and platform events

    def set_flow_error(self, flow: str, message: str | None) -> None:
        """Make every interview of ``flow`` fail with ``message`` (None: succeed again). Creates the flow."""
        with self.lock:
            self.flows[flow] = message

    def invoke_flow(self, flow: str, inputs: Any) -> list[dict[str, Any]]:
        """``POST /actions/custom/flow/{flow}``: one result per input, every interview recorded.

        :raises SalesforceError: 404 for an unknown flow, 400 for malformed inputs.
        """
        with self.lock:
            if flow not in self.flows:
                raise SalesforceError(404, "NOT_FOUND", f"The requested resource does not exist: flow {flow}")
            if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) for i in inputs):
                raise SalesforceError(400, "JSON_PARSER_ERROR", "inputs must be a non-empty array of objects")
            error = self.flows[flow]
            at = self.tick()
            results = []
            for values in inputs:
                interview = str(uuid.uuid4())
                status = "Error" if error else "Finished"
                self._flow_calls.append(
                    {"flow": flow, "inputs": dict(values), "interview_id": interview, "at": at, "status": status}
                )
                results.append(
                    {
                        "actionName": flow,
                        "errors": [{"statusCode": "UNKNOWN_EXCEPTION", "message": error, "fields": []}]
                        if error
                        else None,
                        "isSuccess": not error,
                        "outputValues": {"Flow__InterviewGuid": interview, "Flow__InterviewStatus": status},
                        "sortOrder": -1,
                        "version": 1,
                    }
                )
            return results

    def flow_invocations(self, flow: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self._flow_calls if flow is None or c["flow"] == flow]

    def publish_event(self, event: str, values: Any) -> str:
        """``POST /sobjects/{Event__e}``: record the event; any ``*__c`` field is accepted."""
        with self.lock:
            if event not in self.platform_events:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            if not isinstance(values, dict):
                raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object")
            for key in values:
                if not key.endswith("__c"):
                    raise SalesforceError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {event}")
            event_id = make_id(KEY_PREFIXES["PlatformEvent"], self._id_base + len(self._events))
            self._events.append({"event": event, "id": event_id, "values": dict(values), "at": self.tick()})
            return event_id

    def published_events(self, event: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self._events if event is None or e["event"] == event]


# helpers --------------------------------------------------------------------------------------------------

_LEAD_SOURCES_NO_FORM = ("Phone Inquiry", "Partner Referral", "Purchased List", "Other", None)
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _identity(value: Any) -> Any:
    return value


def _anchor(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    return now.astimezone(UTC)


def _lead_status(person: SyntheticPerson) -> str:
    """Salesforce's lead status from the CRM-neutral stage and status of a synthetic person."""
    if person.converted:
        return "Closed - Converted"
    if person.lead_status in ("UNQUALIFIED", "BAD_TIMING"):
        return "Closed - Not Converted"
    if person.lifecycle_stage in (
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
    ) or person.lead_status in (
        "IN_PROGRESS",
        "ATTEMPTED_TO_CONTACT",
        "CONNECTED",
        "OPEN_DEAL",
    ):
        return "Working - Contacted"
    return "Open - Not Contacted"


def _sort_key(column: _Column, item: soql.OrderItem) -> Callable[[list[Any]], Any]:
    """A sort key putting nulls where Salesforce does (first ascending, last descending, or as asked)."""
    nulls_first = (not item.descending) if item.nulls_first is None else item.nulls_first
    # with reverse=True the low rank ends up last
    null_rank = (0 if nulls_first else 2) if not item.descending else (2 if nulls_first else 0)
    get = column.get
    fold = column.field.is_text

    def key(row: list[Any]) -> tuple[int, Any]:
        value = get(row)
        if value is None:
            return (null_rank, 0)
        return (1, value.casefold() if fold else value)

    return key


def _render_row(row: list[Any], obj_name: str, node: _Node, version: str, polymorphic: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attributes": {
            "type": "Name" if polymorphic else obj_name,
            "url": f"/services/data/v{version}/sobjects/{obj_name}/{row[ID]}",
        }
    }
    for kind, i in node.order:
        if kind == "f":
            name, index = node.fields[i]
            out[name] = row[index] if index < len(row) else None
            continue
        rel_name, ref_index, poly, targets = node.parents[i]
        parent_id = row[ref_index]
        entry = targets.get(parent_id[:3]) if parent_id else None
        parent = entry[0].rows.get(parent_id) if entry is not None and parent_id else None
        if entry is None or parent is None:
            out[rel_name] = None
        else:
            out[rel_name] = _render_row(parent, entry[0].obj.name, entry[1], version, poly)
    return out


def _csv_formatter(fd: FieldDef) -> Callable[[Any], str]:
    if fd.type == "datetime":
        return lambda v: "" if v is None else v[:23] + "Z"
    if fd.type == "boolean":
        return lambda v: "" if v is None else ("true" if v else "false")
    return lambda v: "" if v is None else str(v)
