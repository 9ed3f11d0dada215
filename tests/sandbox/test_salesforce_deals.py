"""The Salesforce sandbox's deals: Opportunity and OpportunityContactRole in describe, SOQL across their
relationships, seeding that follows each person's outcome, and stage-derived IsWon/IsClosed on writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.sandbox.salesforce import SalesforceSandboxServer, start_salesforce_sandbox

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[SalesforceSandboxServer]:
    started = start_salesforce_sandbox(leads=300, contacts=300, seed=4, now=ANCHOR)
    yield started
    started.stop()


def rest(server: SalesforceSandboxServer, path: str, **options: Any) -> Any:
    """A REST answer (simple-salesforce types it as optional: these calls always answer)."""
    answer = server.client().restful(path, **options)
    assert answer is not None
    return answer


def query(server: SalesforceSandboxServer, soql: str) -> list[dict[str, Any]]:
    return [dict(r) for r in server.client().query_all_iter(soql)]


def test_describe_has_the_deal_objects_and_the_lead_link(server: SalesforceSandboxServer) -> None:
    opportunity = {f["name"]: f for f in rest(server, "sobjects/Opportunity/describe")["fields"]}
    assert opportunity["StageName"]["type"] == "picklist" and opportunity["CloseDate"]["type"] == "date"
    assert not opportunity["IsWon"]["updateable"] and not opportunity["IsClosed"]["createable"]
    role = {f["name"]: f for f in rest(server, "sobjects/OpportunityContactRole/describe")["fields"]}
    assert role["OpportunityId"]["relationshipName"] == "Opportunity" and role["ContactId"]["referenceTo"] == [
        "Contact"
    ]
    lead = {f["name"]: f for f in rest(server, "sobjects/Lead/describe")["fields"]}
    assert lead["ConvertedOpportunityId"]["referenceTo"] == ["Opportunity"]
    prefixes = {o["name"]: o["keyPrefix"] for o in rest(server, "sobjects")["sobjects"]}
    assert prefixes["Opportunity"] == "006" and prefixes["OpportunityContactRole"] == "00K"


def test_relationship_fields_nest_the_parent_and_filter_on_it(server: SalesforceSandboxServer) -> None:
    won = query(
        server,
        "SELECT ContactId, Opportunity.CloseDate, Opportunity.IsWon FROM OpportunityContactRole "
        "WHERE Opportunity.IsWon = true",
    )
    assert won
    for row in won:
        parent = row["Opportunity"]
        assert parent["attributes"]["type"] == "Opportunity"
        assert parent["attributes"]["url"].startswith("/services/data/v59.0/sobjects/Opportunity/006")
        assert parent["IsWon"] is True and len(parent["CloseDate"]) == 10
    everyone = query(server, "SELECT Id FROM OpportunityContactRole")
    assert len(everyone) > len(won)


def test_every_converted_lead_has_a_won_deal_on_its_converted_date(server: SalesforceSandboxServer) -> None:
    leads = query(
        server,
        "SELECT Id, ConvertedDate, ConvertedContactId, ConvertedOpportunityId, ConvertedOpportunity.IsWon, "
        "ConvertedOpportunity.CloseDate FROM Lead WHERE IsConverted = true",
    )
    assert leads
    roles = {
        r["OpportunityId"]: r["ContactId"]
        for r in query(server, "SELECT OpportunityId, ContactId FROM OpportunityContactRole")
    }
    for lead in leads:
        deal = lead["ConvertedOpportunity"]
        assert deal["IsWon"] is True and deal["CloseDate"] == lead["ConvertedDate"]
        assert roles[lead["ConvertedOpportunityId"]] == lead["ConvertedContactId"]
    open_leads = query(server, "SELECT Id FROM Lead WHERE IsConverted = false AND ConvertedOpportunityId != null")
    assert open_leads == []


def test_seeded_deals_follow_the_outcome_and_are_deterministic(server: SalesforceSandboxServer) -> None:
    deals = query(server, "SELECT Id, StageName, IsWon, IsClosed, CloseDate, Probability FROM Opportunity")
    by_stage: dict[str, int] = {}
    for d in deals:
        by_stage[d["StageName"]] = by_stage.get(d["StageName"], 0) + 1
        assert d["IsWon"] == (d["StageName"] == "Closed Won")
        assert d["IsClosed"] == d["StageName"].startswith("Closed")
        if not d["IsClosed"]:
            assert d["CloseDate"] > ANCHOR.date().isoformat()  # open deals close in the future
    customers = query(server, "SELECT Id FROM Account WHERE Type = 'Customer - Direct'")
    assert by_stage["Closed Won"] >= len(customers) > 0 and by_stage["Closed Lost"] > 0
    assert set(by_stage) - {"Closed Won", "Closed Lost"}
    twin = start_salesforce_sandbox(leads=300, contacts=300, seed=4, now=ANCHOR)
    try:
        again = [
            dict(r)
            for r in twin.client().query_all_iter(
                "SELECT Id, StageName, IsWon, IsClosed, CloseDate, Probability FROM Opportunity"
            )
        ]
    finally:
        twin.stop()
    assert again == deals


def test_stage_decides_is_won_and_the_flags_are_read_only(server: SalesforceSandboxServer) -> None:
    created = rest(
        server,
        "sobjects/Opportunity",
        method="POST",
        json={"Name": "Test", "StageName": "Prospecting", "CloseDate": "2026-07-01"},
    )
    path = f"sobjects/Opportunity/{created['id']}"
    record = rest(server, path)
    assert (record["IsWon"], record["IsClosed"], record["Probability"]) == (False, False, 10.0)
    server.client().restful(path, method="PATCH", json={"StageName": "Closed Won"})
    assert rest(server, path)["IsWon"] is True
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_FIELD_FOR_INSERT_UPDATE"):
        server.client().restful(path, method="PATCH", json={"IsWon": False})
    with pytest.raises(SalesforceMalformedRequest, match="REQUIRED_FIELD_MISSING"):
        server.client().restful("sobjects/OpportunityContactRole", method="POST", json={"OpportunityId": created["id"]})


def test_converting_a_lead_can_open_its_opportunity(server: SalesforceSandboxServer) -> None:
    lead_id = query(server, "SELECT Id FROM Lead WHERE IsConverted = false LIMIT 1")[0]["Id"]
    contact_id, _ = server.sandbox.org.convert_lead(lead_id, opportunity_stage="Qualification", close_date="2026-08-15")
    lead = query(server, f"SELECT ConvertedOpportunityId, ConvertedContactId FROM Lead WHERE Id = '{lead_id}'")[0]
    assert lead["ConvertedContactId"] == contact_id
    roles = query(
        server,
        "SELECT IsPrimary, Opportunity.StageName, Opportunity.CloseDate FROM OpportunityContactRole "
        f"WHERE ContactId = '{contact_id}'",
    )
    assert len(roles) == 1 and roles[0]["IsPrimary"] is True
    assert (roles[0]["Opportunity"]["StageName"], roles[0]["Opportunity"]["CloseDate"]) == (
        "Qualification",
        "2026-08-15",
    )
