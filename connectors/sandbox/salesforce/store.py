"""The org's data store: one table of rows per object, ids and the clock, and the activity records built lazily.

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
per-record problems of a collection are :class:`~connectors.sandbox.salesforce.schema.RecordError`.
"""

from __future__ import annotations

import base64
import bisect
import random
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.sandbox._server import (
    gc_paused,
)
from connectors.sandbox.salesforce import soql
from connectors.sandbox.salesforce.schema import (
    KEY_PREFIXES,
    FieldDef,
    ObjectDef,
    make_id,
    standard_objects,
    to_18,
)
from connectors.sandbox.synthetic import _CAMPAIGNS, _FORMS, SyntheticPerson, anchor

if TYPE_CHECKING:
    from connectors.sandbox.salesforce.bulk import BulkJob
    from connectors.sandbox.salesforce.query import _Cursor


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

# row positions of the system fields (every object starts with them, see schema.py)
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


Getter = Callable[[list[Any]], Any]
Predicate = Callable[[list[Any]], bool]


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


class OrgStore:
    """The in-memory org's state. Thread-safe: public methods take :attr:`lock` (the HTTP app holds it too).

    Each API family adds its methods in a subclass (see :class:`~connectors.sandbox.salesforce.org.SalesforceOrg`).
    """

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
        self.anchor = anchor(now)
        rng = random.Random(f"salesforce-ids:{seed}")
        self._id_base = 10_000_000 + rng.randrange(1_000_000) * 1000
        self._next: dict[str, int] = {}
        self.org_id = make_id(KEY_PREFIXES["Organization"], self._id_base)
        #: called under the lock with (sObject, record id, SystemModstamp) after every API write of a record
        #: (the app's outbound-message sender listens here)
        self.change_listeners: list[Callable[[str, str, str], None]] = []
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

    def _audit_values(self, created: str, modified: str | None = None, stamp: str | None = None) -> dict[str, Any]:
        """The system fields of a seeded record the integration user created at ``created``.

        ``modified`` (default ``created``) is its LastModifiedDate, ``stamp`` (default ``modified``) its
        SystemModstamp.
        """
        modified = modified or created
        user = self._users[0]
        return {
            "IsDeleted": False,
            "CreatedDate": created,
            "CreatedById": user,
            "LastModifiedDate": modified,
            "LastModifiedById": user,
            "SystemModstamp": stamp or modified,
        }

    def _seed_record(self, sobject: str, values: Mapping[str, Any], *, index: bool = True) -> str:
        """Store a new ``sobject`` record under the next id, as seeding does (no validation); returns the id."""
        record_id = self.new_id(sobject)
        table = self.tables[sobject]
        table.insert(table.make_row({"Id": record_id, **values}), index=index)
        return record_id

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
        created = soql.normalize_datetime(self.anchor - timedelta(days=800))
        self._campaigns: dict[str, str] = {}
        names = [(name, "Email") for name in _CAMPAIGNS] + [
            (form[0], "Webinar" if "Webinar" in form[0] else "Other") for form in _FORMS
        ]
        for name, ctype in names:
            self._campaigns[name] = self._seed_record(
                "Campaign",
                {
                    **self._audit_values(created),
                    "Name": name,
                    "Type": ctype,
                    "Status": "In Progress",
                    "IsActive": True,
                    "OwnerId": self._users[1],
                },
            )

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
