"""The sandbox's deals and contact <-> deal associations, over real HTTP, in HubSpot's shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.synthetic import generate_people
from tests.conftest import SANDBOX_NOW

Factory = Callable[..., HubSpotSandboxServer]


@pytest.fixture
def sandbox(hubspot_sandbox_factory: Factory) -> HubSpotSandboxServer:
    return hubspot_sandbox_factory(contacts=300, seed=9)


def call(server: HubSpotSandboxServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    return requests.request(method, f"{server.url}{path}", headers=headers, timeout=5, **kwargs)


def test_seeded_deals_follow_the_people_and_are_deterministic(hubspot_sandbox_factory: Factory) -> None:
    first, second = hubspot_sandbox_factory(contacts=300, seed=9), hubspot_sandbox_factory(contacts=300, seed=9)
    assert first.portal.deals() == second.portal.deals()
    people = generate_people(300, seed=9, now=SANDBOX_NOW)
    for contact_id, person in zip(first.portal.contact_ids(), people, strict=True):
        deals = first.portal.deals(contact_id)
        won = [d for d in deals if d["properties"]["dealstage"] == "closedwon"]
        assert len(won) == (1 if person.converted else 0)
        for deal in deals:
            props = deal["properties"]
            assert props["hs_is_closed_won"] == ("true" if props["dealstage"] == "closedwon" else "false")
            assert deal["contacts"] == [contact_id]
        if person.lifecycle_stage == "opportunity":
            assert deals and deals[-1]["properties"]["hs_is_closed"] == "false"


def test_list_read_and_batch_read(sandbox: HubSpotSandboxServer) -> None:
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, "properties": "dealstage,closedate"}
        if after:
            params["after"] = after
        body = call(sandbox, "GET", "/crm/v3/objects/deals", params=params).json()
        seen.extend(r["id"] for r in body["results"])
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            break
    assert seen == [d["id"] for d in sandbox.portal.deals()]
    one = call(sandbox, "GET", f"/crm/v3/objects/deals/{seen[0]}", params={"associations": "contacts"}).json()
    assert one["associations"]["contacts"]["results"][0]["type"] == "deal_to_contact"
    assert call(sandbox, "GET", "/crm/v3/objects/deals/1").status_code == 404
    answer = call(
        sandbox,
        "POST",
        "/crm/v3/objects/deals/batch/read",
        json={"inputs": [{"id": seen[0]}, {"id": "42"}], "properties": ["dealstage", "hs_is_closed_won", "nope"]},
    )
    assert answer.status_code == 207
    body = answer.json()
    assert [r["id"] for r in body["results"]] == [seen[0]]
    assert set(body["results"][0]["properties"]) >= {"dealstage", "hs_is_closed_won", "hs_object_id"}
    assert "nope" not in body["results"][0]["properties"]
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND" and body["errors"][0]["context"]["ids"] == ["42"]
    too_many = call(
        sandbox, "POST", "/crm/v3/objects/deals/batch/read", json={"inputs": [{"id": str(i)} for i in range(101)]}
    )
    assert too_many.status_code == 400


def test_batch_create_validates_per_record(sandbox: HubSpotSandboxServer) -> None:
    contact = sandbox.portal.contact_ids()[0]
    link = [{"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}]
    bad_type = [{"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 4}]}]
    answer = call(
        sandbox,
        "POST",
        "/crm/v3/objects/deals/batch/create",
        json={
            "inputs": [
                {"properties": {"dealstage": "closedwon", "closedate": "2025-01-01T00:00:00Z"}, "associations": link},
                {"properties": {"dealstage": "won"}},
                {"properties": {"dealname": "no stage"}},
                {"properties": {"dealstage": "closedlost", "hs_is_closed_won": "true"}},
                {"properties": {"dealstage": "closedlost"}, "associations": bad_type},
            ]
        },
    )
    assert answer.status_code == 207
    body = answer.json()
    assert len(body["results"]) == 1 and body["numErrors"] == 4
    created = body["results"][0]
    assert created["properties"]["hs_is_closed_won"] == "true"
    assert created["properties"]["closedate"] == "2025-01-01T00:00:00.000Z"
    assert created["id"] in {d["id"] for d in sandbox.portal.deals(contact)}


def test_associations_both_ways_with_hubspot_type_ids(sandbox: HubSpotSandboxServer) -> None:
    portal = sandbox.portal
    with_deal = next(i for i in portal.contact_ids() if portal.deals(i))
    without = next(i for i in portal.contact_ids() if not portal.deals(i))
    answer = call(
        sandbox,
        "POST",
        "/crm/v4/associations/contacts/deals/batch/read",
        json={"inputs": [{"id": with_deal}, {"id": without}]},
    )
    assert answer.status_code == 207
    body = answer.json()
    (result,) = body["results"]
    assert result["from"]["id"] == with_deal
    assert [str(t["toObjectId"]) for t in result["to"]] == [d["id"] for d in portal.deals(with_deal)]
    assert result["to"][0]["associationTypes"] == [{"category": "HUBSPOT_DEFINED", "typeId": 4, "label": None}]
    assert body["errors"][0]["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND"
    deal_id = portal.deals(with_deal)[0]["id"]
    back = call(sandbox, "POST", "/crm/v4/associations/deals/contacts/batch/read", json={"inputs": [{"id": deal_id}]})
    assert back.json()["results"][0]["to"] == [
        {
            "toObjectId": int(with_deal),
            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}],
        }
    ]
    listed = call(sandbox, "GET", f"/crm/v4/objects/contacts/{with_deal}/associations/deals").json()
    assert [str(t["toObjectId"]) for t in listed["results"]] == [d["id"] for d in portal.deals(with_deal)]
    assert call(sandbox, "POST", "/crm/v4/associations/deals/calls/batch/read", json={"inputs": []}).status_code == 400
    stats = requests.get(f"{sandbox.url}/__sandbox/stats", timeout=5).json()["by_endpoint"]
    assert stats["POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read"] == 3
