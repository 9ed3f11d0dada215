"""The HubSpot connector's activities: Associations v4 + activity objects over real HTTP, against the sandbox.

Expected activities are computed here from the portal's stored objects (and the synthetic people's events)
with plain Python, and API calls are counted on both sides: the connector's counter and the sandbox's stats.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from connectors._hubspot_activities import (
    ASSOCIATION_BATCH_SIZE,
    OBJECT_BATCH_SIZE,
    HubSpotActivityReader,
    to_activity,
)
from connectors.base import RawActivity, RawRecord, Window
from connectors.hubspot import HubSpotConnector
from connectors.sandbox.hubspot import HubSpotPortal, HubSpotSandboxServer
from connectors.sandbox.synthetic import generate_people
from tests.conftest import SANDBOX_NOW

Factory = Callable[..., HubSpotSandboxServer]
TYPES = ("emails", "calls", "meetings", "notes")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KINDS = {"calls": "call", "meetings": "meeting", "notes": "note", "tasks": "task"}


def _ms(value: str | datetime) -> int:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment - EPOCH) // timedelta(milliseconds=1)


def connector(server: HubSpotSandboxServer, **options: Any) -> HubSpotConnector:
    options.setdefault("activity_horizon_days", None)  # fixture data is anchored at SANDBOX_NOW, not today
    options.setdefault("rate_limit_per_10s", 10_000)
    return HubSpotConnector(access_token=server.token, base_url=server.url, **options)


def records(ids: Iterable[str]) -> list[RawRecord]:
    return [RawRecord(i, "contact", {}) for i in ids]


def expected_activities(
    portal: HubSpotPortal, contact_ids: Iterable[str], types: Iterable[str] = TYPES
) -> dict[str, list[tuple[str, int, str]]]:
    """(kind, ms, engagement id) per contact, from the portal's stored objects."""
    out: dict[str, list[tuple[str, int, str]]] = {}
    for contact_id in contact_ids:
        rows = []
        for found in portal.engagements(contact_id):
            if found["type"] not in types:
                continue
            props = found["properties"]
            kind = KINDS.get(found["type"]) or (
                "email_reply" if props.get("hs_email_direction") == "INCOMING_EMAIL" else "email_sent"
            )
            rows.append((kind, _ms(props["hs_timestamp"]), found["id"]))
        if rows:
            out[contact_id] = sorted(rows)
    return out


def as_rows(activities: dict[str, list[RawActivity]]) -> dict[str, list[tuple[str, int, str]]]:
    return {
        contact_id: sorted((a.kind, _ms(a.timestamp), str(a.attributes["engagement_id"])) for a in found)
        for contact_id, found in activities.items()
    }


def sandbox_calls(server: HubSpotSandboxServer) -> dict[str, int]:
    stats: dict[str, Any] = requests.get(f"{server.url}/__sandbox/stats", timeout=5).json()
    return dict(stats["by_endpoint"])


def expected_calls(portal: HubSpotPortal, contact_ids: list[str], types: Iterable[str] = TYPES) -> int:
    """#types x ceil(N / 1000) association reads + ceil(n_type / 100) object reads per type (no paging)."""
    total = 0
    for object_type in types:
        objects = {e["id"] for c in contact_ids for e in portal.engagements(c, object_type)}
        total += math.ceil(len(contact_ids) / ASSOCIATION_BATCH_SIZE) + math.ceil(len(objects) / OBJECT_BATCH_SIZE)
    return total


@pytest.fixture
def sandbox(hubspot_sandbox_factory: Factory) -> HubSpotSandboxServer:
    return hubspot_sandbox_factory(contacts=400, seed=21)


def test_activities_match_the_portal_and_the_people(sandbox: HubSpotSandboxServer) -> None:
    portal = sandbox.portal
    hub = connector(sandbox)
    ids = portal.contact_ids()[:200]
    got = hub.read_activities(records(ids))
    assert as_rows(dict(got)) == expected_activities(portal, ids)
    for found in got.values():
        assert [a.timestamp for a in found] == sorted(a.timestamp for a in found)
        assert all(a.timestamp.tzinfo is not None for a in found)

    # against the synthetic ground truth: every meeting, call and email reply, at its time
    people = generate_people(400, seed=21, now=SANDBOX_NOW)[:200]
    for person, contact_id in zip(people, ids, strict=True):
        mine = Counter((a.kind, _ms(a.timestamp)) for a in got.get(contact_id, []))
        truth = Counter(
            (e.kind, _ms(e.timestamp)) for e in person.events() if e.kind in ("meeting", "call", "email_reply")
        )
        assert Counter({k: n for k, n in mine.items() if k[0] in ("meeting", "call", "email_reply")}) == truth
        assert sum(n for (kind, _t), n in mine.items() if kind == "email_reply") == person.email_replies


def test_attributes_of_each_kind(sandbox: HubSpotSandboxServer) -> None:
    portal = sandbox.portal
    contact = portal.contact_ids()[11]
    at = SANDBOX_NOW - timedelta(days=3)
    portal.add_engagement(contact, "email_sent", at, {"hs_email_subject": "Pricing"})
    portal.add_engagement(contact, "email_reply", at + timedelta(hours=1), {"hs_email_subject": "Re: Pricing"})
    portal.add_engagement(
        contact,
        "call",
        at,
        {"hs_call_disposition": "73a0d17f-1163-4015-bdd5-ec830791da20", "hs_call_duration": "90000"},
    )
    portal.add_engagement(contact, "meeting", at, {"hs_meeting_outcome": "NO_SHOW", "hs_meeting_title": "Demo"})
    portal.add_engagement(contact, "task", at, {"hs_task_subject": "Follow up"})
    every_type = connector(sandbox, activity_types=("emails", "calls", "meetings", "notes", "tasks"))
    got = every_type.read_activities(records([contact]))[contact]
    recent = [
        (a.kind, {k: v for k, v in a.attributes.items() if k != "engagement_id"}) for a in got if a.timestamp >= at
    ]
    assert ("email_sent", {"subject": "Pricing", "status": "SENT", "direction": "EMAIL"}) in recent
    assert ("email_reply", {"subject": "Re: Pricing", "direction": "INCOMING_EMAIL"}) in recent
    assert (
        "call",
        {"outcome": "No answer", "direction": "OUTBOUND", "status": "COMPLETED", "duration_s": 90},
    ) in recent
    assert ("meeting", {"outcome": "NO_SHOW", "title": "Demo"}) in recent
    assert ("task", {"status": "NOT_STARTED", "type": "TODO", "subject": "Follow up"}) in recent


def test_api_calls_follow_the_formula(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=1200, seed=8)
    portal = sandbox.portal
    hub = connector(sandbox)
    reader = hub.activities
    assert reader is not None
    for size in (1, 200, 1200):
        ids = portal.contact_ids()[:size]
        before_connector, before_sandbox = hub.api_calls, sum(sandbox_calls(sandbox).values())
        hub.read_activities(records(ids))
        made = hub.api_calls - before_connector
        assert made == expected_calls(portal, ids) == reader.last.api_calls
        assert sum(sandbox_calls(sandbox).values()) - before_sandbox == made
    # 1200 contacts: two association reads per type, since one read takes at most 1000 contacts
    assert reader.last.association_calls == 2 * len(TYPES)


def test_a_contact_with_many_activities_is_paged(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=50, seed=3, association_page_size=40)
    portal = sandbox.portal
    busy = portal.contact_ids()[4]
    start = SANDBOX_NOW - timedelta(days=20)
    for n in range(130):
        portal.add_engagement(busy, "note", start + timedelta(minutes=n))
    ids = portal.contact_ids()
    hub = connector(sandbox)
    got = hub.read_activities(records(ids))
    assert as_rows(dict(got)) == expected_activities(portal, ids)
    notes = [a for a in got[busy] if a.kind == "note"]
    assert len(notes) == len(portal.engagements(busy, "notes")) >= 130
    assert hub.activities is not None
    stats = hub.activities.last
    # the busy contact's notes take ceil(n / 40) pages: follow-ups beyond the first read of each type
    pages = {t: max(1, *(math.ceil(len(portal.engagements(c, t)) / 40) for c in ids)) for t in TYPES}
    assert stats.association_calls == sum(pages.values())
    assert stats.association_followups >= math.ceil(len(notes) / 40) - 1


def test_horizon_and_cap_bound_what_is_kept(sandbox: HubSpotSandboxServer) -> None:
    portal = sandbox.portal
    ids = portal.contact_ids()[:200]
    everything = expected_activities(portal, ids)
    hub = connector(sandbox)
    reader = HubSpotActivityReader(hub._call, hub._client, horizon_days=90, clock=lambda: SANDBOX_NOW)
    recent = as_rows(reader.read(ids))
    cutoff = _ms(SANDBOX_NOW - timedelta(days=90))
    kept = {c: [r for r in rows if r[1] >= cutoff] for c, rows in everything.items()}
    assert recent == {c: rows for c, rows in kept.items() if rows}
    assert reader.last.too_old == sum(len(rows) for rows in everything.values()) - sum(len(r) for r in kept.values())

    capped = HubSpotActivityReader(hub._call, hub._client, horizon_days=None, max_per_type=1, types=("calls",))
    newest = as_rows(capped.read(ids))
    for contact_id in ids:
        calls = [e["id"] for e in portal.engagements(contact_id, "calls")]
        assert [r[2] for r in newest.get(contact_id, [])] == calls[-1:]


def test_activity_logged_between_reads_comes_back_with_its_contact(sandbox: HubSpotSandboxServer) -> None:
    portal = sandbox.portal
    hub = connector(sandbox)
    contact = portal.contact_ids()[17]
    mark = datetime.now(UTC) - timedelta(seconds=1)
    before = {a.attributes["engagement_id"] for a in hub.read_activities(records([contact])).get(contact, [])}
    meeting = portal.add_engagement(contact, "meeting", SANDBOX_NOW - timedelta(days=1))
    # the contact was modified by the activity: an incremental read by modification time finds it again
    window = Window(start=mark, end=datetime.now(UTC) + timedelta(seconds=1))
    changed = [r for page in hub.read_records(window, ["email"]) for r in page]
    assert contact in {r.id for r in changed}
    reader = hub.activities
    assert reader is not None
    again = reader.read(changed, since=mark)
    ids = {a.attributes["engagement_id"] for a in again[contact]}
    assert ids == before | {meeting}  # the whole history, not only what is new
    assert reader.last.new == 1


def test_faults_are_retried_through_the_connector_call_path(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=150, seed=6, fault_rate=0.25, fault_kinds=("500", "503", "drop"))
    hub = connector(sandbox, backoff_initial_s=0.01, max_retries=10)
    ids = sandbox.portal.contact_ids()
    got = hub.read_activities(records(ids))
    assert as_rows(dict(got)) == expected_activities(sandbox.portal, ids)
    assert sandbox.stats()["faults"] > 0
    assert hub.api_calls > expected_calls(sandbox.portal, ids)  # retries are counted


def test_rate_limit_headers_are_honoured(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=150, seed=6, rate_limit="6/1s")
    hub = connector(sandbox, backoff_initial_s=0.01, max_retries=10)  # its own limiter allows far more
    ids = sandbox.portal.contact_ids()
    got = hub.read_activities(records(ids))
    assert as_rows(dict(got)) == expected_activities(sandbox.portal, ids)
    # the rate-limit headers reach the connector's limiter through the activity reads too
    assert hub.daily_remaining is not None and hub.daily_limit is not None
    assert sandbox.stats()["throttled"] == hub.throttled


def test_switched_off_or_empty_reads_make_no_call(sandbox: HubSpotSandboxServer) -> None:
    off = connector(sandbox, read_activities=False)
    assert off.read_activities(records(sandbox.portal.contact_ids()[:10])) == {}
    on = connector(sandbox)
    assert on.read_activities([]) == {}
    assert off.api_calls == on.api_calls == 0
    with pytest.raises(ValueError, match="unknown HubSpot activity types"):
        connector(sandbox, activity_types=("pageviews",))


@pytest.mark.parametrize(
    ("object_type", "properties", "kind"),
    [
        ("emails", {"hs_email_direction": "INCOMING_EMAIL"}, "email_reply"),
        ("emails", {"hs_email_direction": "FORWARDED_EMAIL"}, "email_sent"),
        ("emails", {}, "email_sent"),
        ("calls", {"hs_call_disposition": "custom-guid"}, "call"),
        ("meetings", {}, "meeting"),
        ("notes", {"hs_note_body": "long text is not copied"}, "note"),
        ("tasks", {}, "task"),
    ],
)
def test_to_activity_kinds(object_type: str, properties: dict[str, str], kind: str) -> None:
    got_kind, attributes = to_activity(object_type, properties)
    assert got_kind == kind
    assert "hs_note_body" not in attributes and "long text is not copied" not in attributes.values()
    if object_type == "calls":
        assert attributes["outcome"] == "custom-guid"
