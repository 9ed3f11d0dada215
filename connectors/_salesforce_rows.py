"""Salesforce answers row by row: SOQL pages and Bulk CSV checked whole, times parsed, and Task, Event,
campaign-member and Opportunity rows turned into leadsync's records (pure functions, no I/O)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from connectors._validate import require
from connectors.base import RawActivity

#: campaign member statuses of email campaigns that are engagement short of a response
MEMBER_STATUS_KINDS = {"Opened": "email_open", "Clicked": "email_click"}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _checked_page(page: Any) -> Mapping[str, Any]:
    """A SOQL page as documented: ``records`` a list of objects, ``done`` a boolean, ``totalSize`` a number,
    and a ``nextRecordsUrl`` whenever ``done`` is false (else a page would read as the last one)."""
    what = "query page"
    require(isinstance(page, Mapping), "Salesforce", what, f"expected a JSON object, got {type(page).__name__}")
    records = page.get("records")
    require(isinstance(records, list), "Salesforce", what, "the answer has no records list")
    require(all(isinstance(r, Mapping) for r in records), "Salesforce", what, "a record is not an object")
    require(isinstance(page.get("done"), bool), "Salesforce", what, "the answer has no done flag")
    require(isinstance(page.get("totalSize"), int), "Salesforce", what, "the answer has no totalSize")
    if not page["done"]:
        nxt = page.get("nextRecordsUrl")
        require(isinstance(nxt, str) and nxt != "", "Salesforce", what, "done is false but no nextRecordsUrl")
    checked: Mapping[str, Any] = page
    return checked


def _bulk_rows(sobject: str, text: str, expected: int | None) -> list[dict[str, str]]:
    """The rows of one Bulk API results page, checked whole: an ``Id`` column, every row as wide as the
    header, and as many rows as ``Sforce-NumberOfRecords`` said (a truncated CSV still parses)."""
    what = f"Bulk API results of {sobject}"
    reader = csv.DictReader(io.StringIO(text), strict=True)
    rows = list(reader)
    if not rows and not text.strip():
        require(not expected, "Salesforce", what, f"an empty body, {expected} records announced")
        return []
    require("Id" in (reader.fieldnames or []), "Salesforce", what, "the CSV has no Id column")
    width = len(reader.fieldnames or [])
    short = [i for i, row in enumerate(rows) if None in row or len(row) != width or None in row.values()]
    require(not short, "Salesforce", what, f"row {short[0] + 2 if short else 0} is cut short or too wide")
    if expected is not None:
        require(len(rows) == expected, "Salesforce", what, f"{len(rows)} rows, {expected} announced")
    return rows


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _when(row: Mapping[str, Any], *columns: str) -> datetime:
    for column in columns:
        parsed = _parse_time(row.get(column))
        if parsed is not None:
            return parsed
    return datetime.now(UTC)


def _won_row(row: Mapping[str, Any], what: str) -> tuple[str, datetime]:
    """(Id, CloseDate) of a won Opportunity row: both required, as Salesforce never leaves them empty."""
    opportunity_id, closed = row.get("Id"), _parse_time(row.get("CloseDate"))
    require(isinstance(opportunity_id, str) and opportunity_id != "", "Salesforce", f"{what} query", "a row has no Id")
    require(closed is not None, "Salesforce", f"{what} query", f"won Opportunity {opportunity_id} has no CloseDate")
    assert closed is not None
    return str(opportunity_id), closed


def _role_row(row: Mapping[str, Any]) -> tuple[str, str, datetime]:
    """(ContactId, OpportunityId, CloseDate) of an OpportunityContactRole row with its nested Opportunity."""
    what = "OpportunityContactRole query"
    contact_id, opportunity = row.get("ContactId"), row.get("Opportunity")
    require(isinstance(contact_id, str) and contact_id != "", "Salesforce", what, "a row has no ContactId")
    require(isinstance(opportunity, Mapping), "Salesforce", what, "a row has no nested Opportunity")
    assert isinstance(opportunity, Mapping)
    closed = _parse_time(opportunity.get("CloseDate"))
    require(closed is not None, "Salesforce", what, f"the won Opportunity of contact {contact_id} has no CloseDate")
    assert closed is not None
    return str(contact_id), str(row.get("OpportunityId") or ""), closed


def _task_activity(row: Mapping[str, Any]) -> RawActivity:
    subtype = str(row.get("TaskSubtype") or "Task")
    kind = {"Call": "call", "Email": "email_sent", "ListEmail": "email_sent"}.get(subtype, "task")
    attrs = {k: v for k, v in {"id": row.get("Id"), "subject": row.get("Subject"), "status": row.get("Status")}.items()}
    if kind == "call":
        attrs["direction"] = row.get("CallType")
        if row.get("CallDurationInSeconds") is not None:
            attrs["duration_s"] = row.get("CallDurationInSeconds")
    attrs = {k: v for k, v in attrs.items() if v is not None}
    return RawActivity(str(row["WhoId"]), kind, _when(row, "ActivityDate", "CreatedDate"), attrs)


def _event_activity(row: Mapping[str, Any]) -> RawActivity:
    attrs = {k: v for k, v in {"id": row.get("Id"), "title": row.get("Subject")}.items() if v is not None}
    return RawActivity(
        str(row["WhoId"]), "meeting", _when(row, "ActivityDateTime", "StartDateTime", "CreatedDate"), attrs
    )


def _member_activity(record_id: str, row: Mapping[str, Any]) -> RawActivity | None:
    """A campaign membership: a response (form, event sign-up) or, for email campaigns, an open or click."""
    if row.get("HasResponded") in (True, "true"):
        kind, when = "campaign_response", _when(row, "FirstRespondedDate", "CreatedDate")
    elif row.get("Status") in MEMBER_STATUS_KINDS:
        kind, when = MEMBER_STATUS_KINDS[str(row["Status"])], _when(row, "SystemModstamp", "CreatedDate")
    else:
        return None
    values = {"id": row.get("Id"), "campaign": row.get("CampaignId"), "status": row.get("Status")}
    attrs = {k: v for k, v in values.items() if v is not None}
    return RawActivity(record_id, kind, when, attrs)
