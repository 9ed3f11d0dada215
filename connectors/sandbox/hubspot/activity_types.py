"""Activity object types (calls, emails, meetings, notes, tasks) and the ones a synthetic person's events make."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.sandbox.hubspot._base import (
    PortalError,
    _iso,
    _ms_of,
)
from connectors.sandbox.synthetic import SyntheticPerson


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
    """A CRM object of one type associated with contacts: an activity object, or a deal (``spec`` says which)."""

    id: int
    spec: EngagementType
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    #: associated contacts
    contacts: list[int]


# the portal ----------------------------------------------------------------------------------------------
