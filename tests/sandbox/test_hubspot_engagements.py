"""Activity objects and Associations v4 of the HubSpot sandbox, driven through the official SDK over real HTTP.

Expected values come from the portal's stored data (``portal.engagements``) or from the synthetic people's
events, computed here with plain Python, never copied from the sandbox's answers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hubspot import Client
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    BatchResponsePublicAssociationMultiWithLabel,
    BatchResponsePublicAssociationMultiWithLabelWithErrors,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.objects import (
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    BatchResponseSimplePublicObjectWithErrors,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.calls.exceptions import ApiException as CallsApiException
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiException

from connectors.sandbox.hubspot import (
    ASSOCIATION_PAGE_SIZE,
    ENGAGEMENT_TYPES,
    NO_ASSOCIATIONS_SUBCATEGORY,
    HubSpotPortal,
    HubSpotSandboxServer,
)
from connectors.sandbox.synthetic import generate_people
from tests.conftest import SANDBOX_NOW

Factory = Callable[..., HubSpotSandboxServer]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TYPES = ("emails", "calls", "meetings", "notes")


def _ms(value: str | datetime | None) -> int:
    """Epoch milliseconds, floored with exact integer arithmetic (as HubSpot stores them)."""
    assert value
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _error(exc: Any) -> dict[str, Any]:
    body = exc.body.decode() if isinstance(exc.body, bytes) else exc.body
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def _read(client: Client, to_type: str, inputs: list[tuple[str, str | None]], from_type: str = "contacts") -> Any:
    body = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=i, after=a) for i, a in inputs]
    )
    return client.crm.associations.v4.batch_api.get_page(from_type, to_type, body)


def _all_associated(client: Client, to_type: str, ids: list[str]) -> tuple[dict[str, list[str]], int]:
    """Every association of ``ids``, following each result's cursor; returns (by id, requests made)."""
    found: dict[str, list[str]] = {}
    pending: list[tuple[str, str | None]] = [(i, None) for i in ids]
    calls = 0
    while pending:
        response = _read(client, to_type, pending)
        calls += 1
        pending = []
        for result in response.results:
            found.setdefault(result._from.id, []).extend(str(t.to_object_id) for t in result.to)
            if result.paging is not None:
                pending.append((result._from.id, result.paging.next.after))
    return found, calls


def _stats(server: HubSpotSandboxServer) -> dict[str, Any]:
    stats: dict[str, Any] = requests.get(f"{server.url}/__sandbox/stats", timeout=5).json()
    return stats


@pytest.fixture
def sandbox(hubspot_sandbox_factory: Factory) -> HubSpotSandboxServer:
    return hubspot_sandbox_factory(contacts=150, seed=5)


# associations --------------------------------------------------------------------------------------------


def test_associations_batch_read_matches_the_portal_for_every_type(sandbox: HubSpotSandboxServer) -> None:
    portal, client = sandbox.portal, sandbox.client()
    ids = portal.contact_ids()
    for object_type in TYPES:
        expected = {cid: [e["id"] for e in portal.engagements(cid, object_type)] for cid in ids}
        expected = {cid: found for cid, found in expected.items() if found}
        assert expected, f"the seeded portal should have {object_type}"
        response = _read(client, object_type, [(i, None) for i in ids])
        assert isinstance(response, BatchResponsePublicAssociationMultiWithLabelWithErrors)  # some have none
        got = {r._from.id: [str(t.to_object_id) for t in r.to] for r in response.results}
        assert got == expected
        type_ids = {a.type_id for r in response.results for t in r.to for a in t.association_types}
        assert type_ids == {ENGAGEMENT_TYPES[object_type].from_contact}
        assert all(
            a.category == "HUBSPOT_DEFINED" and a.label is None
            for r in response.results
            for t in r.to
            for a in t.association_types
        )
        # contacts without any are reported one by one, as HubSpot does, not silently dropped
        without = {e.context["fromObjectId"][0] for e in response.errors}
        assert without == set(ids) - set(expected)
        assert {e.sub_category for e in response.errors} == {NO_ASSOCIATIONS_SUBCATEGORY}


def test_reverse_direction_and_the_single_object_endpoint(sandbox: HubSpotSandboxServer) -> None:
    portal, client = sandbox.portal, sandbox.client()
    owner = next(c for c in portal.contact_ids() if portal.engagements(c, "calls"))
    call_id = portal.engagements(owner, "calls")[0]["id"]
    response = _read(client, "contacts", [(call_id, None)], from_type="calls")
    assert isinstance(response, BatchResponsePublicAssociationMultiWithLabel)
    assert [str(t.to_object_id) for t in response.results[0].to] == [owner]
    assert response.results[0].to[0].association_types[0].type_id == 194

    page = client.crm.associations.v4.basic_api.get_page("contacts", owner, "calls")
    assert [str(r.to_object_id) for r in page.results] == [e["id"] for e in portal.engagements(owner, "calls")]
    assert page.paging is None


def test_unknown_ids_answer_207_and_bad_requests_400(sandbox: HubSpotSandboxServer) -> None:
    client = sandbox.client()
    first = sandbox.portal.contact_ids()[0]
    response = _read(client, "emails", [("999999999", None), ("not-a-number", None)])
    assert isinstance(response, BatchResponsePublicAssociationMultiWithLabelWithErrors)
    assert response.results == []
    assert [e.context["fromObjectId"] for e in response.errors] == [["999999999"], ["not-a-number"]]
    assert response.errors[0].category == "OBJECT_NOT_FOUND"
    assert response.errors[0].message == "No email is associated with contact 999999999."

    with pytest.raises(AssociationsApiException) as caught:
        _read(client, "emails", [(str(i), None) for i in range(1001)])
    assert caught.value.status == 400 and "1000" in _error(caught.value)["message"]
    with pytest.raises(AssociationsApiException) as caught:
        _read(client, "widgets", [(first, None)])
    assert caught.value.status == 400
    with pytest.raises(AssociationsApiException) as caught:
        _read(client, "calls", [(first, "bm90IGEgY3Vyc29y")])  # base64 of "not a cursor"
    assert caught.value.status == 400


def test_many_associations_are_paged_per_contact_and_resume_from_after(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=40, seed=2)
    portal, client = sandbox.portal, sandbox.client()
    busy, other = portal.contact_ids()[:2]
    start = SANDBOX_NOW - timedelta(days=30)
    for n in range(ASSOCIATION_PAGE_SIZE * 2 + 7):
        portal.add_engagement(busy, "note", start + timedelta(minutes=n), {"hs_note_body": f"note {n}"})
    expected = [e["id"] for e in portal.engagements(busy, "notes")]
    assert len(expected) >= 2 * ASSOCIATION_PAGE_SIZE + 7

    first = _read(client, "notes", [(busy, None), (other, None)])
    by_id = {r._from.id: r for r in first.results}
    assert len(by_id[busy].to) == ASSOCIATION_PAGE_SIZE and by_id[busy].paging.next.after
    found, calls = _all_associated(client, "notes", [busy, other])
    assert found[busy] == expected  # every id once, in id order, across three pages
    assert found.get(other, []) == [e["id"] for e in portal.engagements(other, "notes")]
    assert calls == 3

    # the GET endpoint pages the same list with its own limit
    seen: list[str] = []
    after = None
    while True:
        page = client.crm.associations.v4.basic_api.get_page("contacts", busy, "notes", limit=400, after=after)
        seen.extend(str(r.to_object_id) for r in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == expected


def test_a_smaller_page_size_pages_every_contact_independently(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=120, seed=5, association_page_size=2)
    portal, client = sandbox.portal, sandbox.client()
    ids = portal.contact_ids()
    found, calls = _all_associated(client, "calls", ids)
    expected = {c: [e["id"] for e in portal.engagements(c, "calls")] for c in ids}
    assert found == {c: v for c, v in expected.items() if v}
    assert calls == max(-(-len(v) // 2) for v in expected.values())


# activity objects ----------------------------------------------------------------------------------------


def test_batch_read_returns_properties_and_207_for_missing_ids(sandbox: HubSpotSandboxServer) -> None:
    portal, client = sandbox.portal, sandbox.client()
    owner = next(c for c in portal.contact_ids() if portal.engagements(c, "emails"))
    emails = portal.engagements(owner, "emails")
    wanted = ["hs_timestamp", "hs_email_direction", "hs_email_subject", "hs_email_status", "no_such_property"]
    body = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=e["id"]) for e in emails] + [SimplePublicObjectId(id="123")],
        properties=wanted,
        properties_with_history=[],
    )
    response = client.crm.objects.batch_api.read("emails", body)
    assert isinstance(response, BatchResponseSimplePublicObjectWithErrors)
    assert response.errors[0].context == {"ids": ["123"]} and response.errors[0].category == "OBJECT_NOT_FOUND"
    got = {r.id: r.properties for r in response.results}
    for email in emails:
        props = email["properties"]
        assert got[email["id"]] == {
            "hs_timestamp": props["hs_timestamp"],
            "hs_email_direction": props["hs_email_direction"],
            "hs_email_subject": props["hs_email_subject"],
            "hs_email_status": props.get("hs_email_status"),
            "hs_createdate": props["hs_createdate"],
            "hs_lastmodifieddate": props["hs_lastmodifieddate"],
            "hs_object_id": email["id"],
        }
    # an id of another type is not an email; more than 100 inputs is refused whole
    call = next(e["id"] for c in portal.contact_ids() for e in portal.engagements(c, "calls"))
    only_call = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=call)], properties=[], properties_with_history=[]
    )
    assert client.crm.objects.batch_api.read("emails", only_call).results == []
    too_many = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=str(i)) for i in range(101)], properties=[], properties_with_history=[]
    )
    with pytest.raises(ObjectsApiException) as caught:
        client.crm.objects.batch_api.read("calls", too_many)
    assert caught.value.status == 400
    # the per-type SDK modules hit the same endpoints
    read = client.crm.objects.calls.basic_api.get_by_id(
        call, properties=["hs_call_disposition"], associations=["contacts"]
    )
    assert read.properties["hs_call_disposition"]
    assert read.associations["contacts"].results[0].type == "call_to_contact"


def test_seeded_activities_agree_with_the_people_and_their_counters() -> None:
    people = generate_people(300, seed=9, now=SANDBOX_NOW)
    portal = HubSpotPortal(seed=9)
    ids = portal.seed_people(people)
    for person, contact_id in zip(people, ids, strict=True):
        events = person.events()
        found = portal.engagements(contact_id)
        kinds = Counter(e["type"] for e in found)
        assert kinds["calls"] == person.calls and kinds["meetings"] == person.meetings == kinds["notes"]
        incoming = sorted(
            _ms(e["properties"]["hs_timestamp"])
            for e in found
            if e["properties"].get("hs_email_direction") == "INCOMING_EMAIL"
        )
        row = portal.contact(contact_id) or {}
        assert len(incoming) == int(row.get("hs_email_replied", "0")) == person.email_replies
        replies = sorted(_ms(ev.timestamp) for ev in events if ev.kind == "email_reply")
        assert incoming == replies
        meetings = sorted(_ms(ev.timestamp) for ev in events if ev.kind == "meeting")
        assert sorted(_ms(e["properties"]["hs_timestamp"]) for e in found if e["type"] == "meetings") == meetings
        # logged activity never postdates the contact's last modification
        assert all(_ms(e["properties"]["hs_timestamp"]) <= _ms(row["lastmodifieddate"]) for e in found), contact_id


def test_activity_ids_do_not_depend_on_the_order_of_reads() -> None:
    people = generate_people(60, seed=4, now=SANDBOX_NOW)
    forward, backward = HubSpotPortal(seed=4), HubSpotPortal(seed=4)
    ids = forward.seed_people(people)
    backward.seed_people(people)
    snapshot_forward = [forward.engagements(c) for c in ids]
    snapshot_backward = [backward.engagements(c) for c in reversed(ids)][::-1]
    assert snapshot_forward == snapshot_backward
    all_ids = [e["id"] for found in snapshot_forward for e in found]
    assert len(all_ids) == len(set(all_ids)) > 0


def test_creating_an_activity_associates_it_and_modifies_the_contact(sandbox: HubSpotSandboxServer) -> None:
    portal, client = sandbox.portal, sandbox.client()
    contact = portal.contact_ids()[3]
    before = portal.contact(contact) or {}
    at = "2025-02-27T10:00:00.000Z"
    body = SimplePublicObjectInputForCreate(
        properties={"hs_timestamp": at, "hs_call_direction": "OUTBOUND", "hs_call_duration": "120000"},
        associations=[
            PublicAssociationsForObject(to=PublicObjectId(id=contact), types=[AssociationSpec("HUBSPOT_DEFINED", 194)])
        ],
    )
    created = client.crm.objects.calls.basic_api.create(body)
    assert created.properties["hs_timestamp"] == at and int(created.id) > 0
    after = portal.contact(contact) or {}
    assert _ms(after["lastmodifieddate"]) > _ms(before["lastmodifieddate"])
    assert after["notes_last_updated"] == at and after["notes_last_contacted"] >= at
    found, _calls = _all_associated(client, "calls", [contact])
    assert created.id in found[contact]
    assert max(found[contact], key=int) == created.id  # the newest id

    # invalid inputs are refused: no hs_timestamp, an association type of another object, an unknown contact
    for properties, associations in (
        ({"hs_call_direction": "OUTBOUND"}, []),
        (
            {"hs_timestamp": at},
            [
                PublicAssociationsForObject(
                    to=PublicObjectId(id=contact), types=[AssociationSpec("HUBSPOT_DEFINED", 202)]
                )
            ],
        ),
        (
            {"hs_timestamp": at},
            [
                PublicAssociationsForObject(
                    to=PublicObjectId(id="999999"), types=[AssociationSpec("HUBSPOT_DEFINED", 194)]
                )
            ],
        ),
        ({"hs_timestamp": at, "hs_call_direction": "SIDEWAYS"}, []),
    ):
        with pytest.raises(CallsApiException) as caught:
            client.crm.objects.calls.basic_api.create(
                SimplePublicObjectInputForCreate(properties=properties, associations=associations)
            )
        assert caught.value.status == 400 and _error(caught.value)["category"] == "VALIDATION_ERROR"


def test_batch_create_lands_good_records_and_counts_replies(sandbox: HubSpotSandboxServer) -> None:
    portal, client = sandbox.portal, sandbox.client()
    contact = portal.contact_ids()[5]
    replied_before = int((portal.contact(contact) or {}).get("hs_email_replied", "0"))
    link = [PublicAssociationsForObject(to=PublicObjectId(id=contact), types=[AssociationSpec("HUBSPOT_DEFINED", 198)])]
    inputs = [
        SimplePublicObjectBatchInputForCreate(
            properties={
                "hs_timestamp": "2025-02-20T09:00:00Z",
                "hs_email_direction": "EMAIL",
                "hs_email_status": "SENT",
            },
            associations=link,
        ),
        SimplePublicObjectBatchInputForCreate(
            properties={"hs_timestamp": "2025-02-21T09:00:00Z", "hs_email_direction": "INCOMING_EMAIL"},
            associations=link,
        ),
        SimplePublicObjectBatchInputForCreate(properties={"hs_email_direction": "EMAIL"}, associations=link),
    ]
    response = client.crm.objects.batch_api.create(
        "emails", BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
    )
    assert isinstance(response, BatchResponseSimplePublicObjectWithErrors)
    assert len(response.results) == 2 and response.errors[0].context == {"ids": ["2"]}
    row = portal.contact(contact) or {}
    assert int(row["hs_email_replied"]) == replied_before + 1
    assert row["hs_sales_email_last_replied"] >= "2025-02-21T09:00:00.000Z"
    stored = {e["id"] for e in portal.engagements(contact, "emails")}
    assert {r.id for r in response.results} <= stored


def test_add_engagement_keeps_counters_consistent(sandbox: HubSpotSandboxServer) -> None:
    portal = sandbox.portal
    contact = portal.contact_ids()[7]

    def row() -> dict[str, str]:
        return portal.contact(contact) or {}

    def count(name: str) -> int:
        return int(row().get(name, "0"))

    stamps = [_ms(row()["lastmodifieddate"])]
    opens, clicks, views, forms = (
        count(n) for n in ("hs_email_open", "hs_email_click", "hs_analytics_num_page_views", "num_conversion_events")
    )
    assert portal.add_engagement(contact, "email_open") is None
    assert portal.add_engagement(contact, "email_click") is None
    assert portal.add_engagement(contact, "page_view") is None
    assert portal.add_engagement(contact, "form_submission") is None
    assert (count("hs_email_open"), count("hs_email_click")) == (max(opens + 1, clicks + 1), clicks + 1)
    assert count("hs_analytics_num_page_views") == views + 1 and count("num_conversion_events") == forms + 1
    stamps.append(_ms(row()["lastmodifieddate"]))
    meeting = portal.add_engagement(contact, "meeting", SANDBOX_NOW - timedelta(days=400))
    stamps.append(_ms(row()["lastmodifieddate"]))
    assert meeting is not None and (portal.engagement(meeting) or {})["hs_meeting_outcome"] == "COMPLETED"
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]  # even a backdated activity modifies the contact
    with pytest.raises(Exception, match="Unable to infer object type"):
        portal.add_engagement(contact, "telegram")


def test_engagement_endpoints_are_counted_by_template(sandbox: HubSpotSandboxServer) -> None:
    client = sandbox.client()
    first = sandbox.portal.contact_ids()[0]
    _read(client, "calls", [(first, None)])
    _read(client, "emails", [(first, None)])
    client.crm.objects.calls.basic_api.get_page(limit=5)
    client.crm.associations.v4.basic_api.get_page("contacts", first, "notes")
    assert _stats(sandbox)["by_endpoint"] == {
        "POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read": 2,
        "GET /crm/v3/objects/{objectType}": 1,
        "GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}": 1,
    }
