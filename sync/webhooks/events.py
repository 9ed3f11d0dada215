"""What a verified notification says: which records changed, and when (never what they now hold).

The bodies are parsed strictly: anything but the documented shapes is "malformed" and nothing of it is
queued. A notification carries only ids and modification times; the micro-pass reads the records
themselves, so an old, duplicated or reordered notification can never write stale values.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["SALESFORCE_ACK", "Malformed", "Notice", "parse_hubspot", "parse_salesforce"]

#: HubSpot event types about a contact that still exists (a deleted one has nothing to score)
HUBSPOT_TYPES: Final = frozenset(
    {"contact.creation", "contact.propertyChange", "contact.merge", "contact.restore", "contact.associationChange"}
)
#: HubSpot's generic object events name the contact type by id
HUBSPOT_CONTACT_TYPE_ID: Final = "0-1"
OUTBOUND_NS: Final = "http://soap.sforce.com/2005/09/outbound"
#: the Outbound Message acknowledgement: without it Salesforce re-sends for up to 24 hours
SALESFORCE_ACK: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
    b"</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)
#: Salesforce record ids: 15 or 18 alphanumerics
_SF_ID_LENGTHS: Final = (15, 18)


class Malformed(ValueError):
    """A body that is not one of the documented notification shapes."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One record said to have changed: its id, its modification time when the CRM said it (else None), and
    when the change happened (Unix seconds; the receipt time when the CRM did not say)."""

    record_id: str
    modified_at: datetime | None
    occurred_s: float


def _from_ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def parse_hubspot(body: bytes, received_s: float) -> list[Notice]:
    """HubSpot's JSON array of events (up to 100); other object types and deletions are left out.

    :raises Malformed: not a JSON array of objects, or a contact event without a numeric ``objectId``.
    """
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("not JSON") from None
    if not isinstance(events, list):
        raise Malformed("expected a JSON array of events")
    notices: list[Notice] = []
    for event in events:
        if not isinstance(event, dict):
            raise Malformed("an event is not an object")
        kind = str(event.get("subscriptionType") or "")
        generic = kind.startswith("object.") and str(event.get("objectTypeId")) == HUBSPOT_CONTACT_TYPE_ID
        if kind not in HUBSPOT_TYPES and not (generic and not kind.endswith("Deletion")):
            continue
        ids = [event.get("primaryObjectId")] if kind.endswith("merge") else [event.get("objectId")]
        occurred = _from_ms(event.get("occurredAt"))
        for raw in ids:
            if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
                raise Malformed("a contact event without a numeric objectId")
            at = occurred.timestamp() if occurred is not None else received_s
            notices.append(Notice(str(int(raw)), occurred, at))
    return notices


def _sf_id(value: Any) -> str:
    text = str(value or "").strip()
    if len(text) not in _SF_ID_LENGTHS or not text.isalnum():
        raise Malformed("a record id that is not a Salesforce id")
    return text


def _sf_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise Malformed("a SystemModstamp that is not a datetime") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _notice(record_id: Any, stamp: Any, received_s: float) -> Notice:
    at = _sf_time(stamp)
    return Notice(_sf_id(record_id), at, at.timestamp() if at is not None else received_s)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_salesforce(body: bytes, content_type: str, received_s: float) -> tuple[list[Notice], str | None, bool]:
    """An Outbound Message (SOAP) or a Flow HTTP callout (JSON ``{"ids": [...]}`` or ``{"records": [{"Id",
    "SystemModstamp"}]}``): the notices, the OrganizationId (SOAP only) and whether it was SOAP.

    :raises Malformed: neither shape, a DTD (never in SOAP; refused before parsing), a bad id or time.
    """
    text = body.lstrip()
    if "json" in content_type or text.startswith((b"{", b"[")):
        return _parse_flow(body, received_s), None, False
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise Malformed("a DTD in a SOAP message")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise Malformed("not XML") from None
    found = root.find(f".//{{{OUTBOUND_NS}}}notifications")
    if found is None:
        raise Malformed("not an Outbound Message (no notifications element)")
    org = found.findtext(f"{{{OUTBOUND_NS}}}OrganizationId")
    notices: list[Notice] = []
    for item in found.findall(f"{{{OUTBOUND_NS}}}Notification"):
        sobject = item.find(f"{{{OUTBOUND_NS}}}sObject")
        if sobject is None:
            raise Malformed("a Notification without its sObject")
        fields = {_local(child.tag): (child.text or "") for child in sobject}
        notices.append(_notice(fields.get("Id"), fields.get("SystemModstamp"), received_s))
    return notices, org, True


def _parse_flow(body: bytes, received_s: float) -> list[Notice]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("not JSON") from None
    if not isinstance(data, dict):
        raise Malformed('expected {"ids": [...]} or {"records": [...]}')
    if isinstance(data.get("ids"), list):
        return [_notice(i, None, received_s) for i in data["ids"]]
    if isinstance(data.get("records"), list):
        records = data["records"]
        if not all(isinstance(r, dict) for r in records):
            raise Malformed("a record that is not an object")
        return [_notice(r.get("Id"), r.get("SystemModstamp"), received_s) for r in records]
    raise Malformed('expected {"ids": [...]} or {"records": [...]}')
