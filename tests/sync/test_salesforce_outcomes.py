"""Outcomes from Salesforce over real HTTPS: converted leads, won Opportunities (through the converted lead or
an OpportunityContactRole), the number of queries, and a bad page retried."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from connectors._salesforce_auth import SalesforceAuth
from connectors.base import OutcomeSpec, RawRecord, Window
from connectors.salesforce import OUTCOME_ID_CHUNK, SalesforceConnector
from connectors.sandbox.salesforce import SalesforceSandboxServer
from connectors.sandbox.synthetic import iter_people

Factory = Callable[..., SalesforceSandboxServer]
QUERY = "GET /services/data/v{version}/query"
ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)
WON = OutcomeSpec(lifecycle_stage=None, closed_won=True, converted_lead=False)
CONVERTED = OutcomeSpec(lifecycle_stage=None, closed_won=False, converted_lead=True)
BOTH = OutcomeSpec(lifecycle_stage=None, closed_won=True, converted_lead=True)


@pytest.fixture
def sf_factory(salesforce_sandbox_factory: Factory) -> Factory:
    return functools.partial(salesforce_sandbox_factory, now=ANCHOR)


def connector(server: SalesforceSandboxServer, **options: Any) -> SalesforceConnector:
    auth = SalesforceAuth.from_settings(
        login_url=server.url, client_id=server.client_id, client_secret=server.client_secret
    )
    conn = SalesforceConnector(auth=auth, ca_file=server.ca_pem_path, read_activities=False, **options)
    conn._retrying.wait.backoff.multiplier = 0.01  # type: ignore[attr-defined]
    return conn


def rows(server: SalesforceSandboxServer, soql: str) -> list[dict[str, Any]]:
    """Records as a plain simple-salesforce client reads them."""
    return [dict(r) for r in server.client().query_all_iter(soql)]


def queries(server: SalesforceSandboxServer) -> int:
    return int(server.stats()["by_endpoint"].get(QUERY, 0))


def bare(ids: list[str], object_type: str) -> list[RawRecord]:
    """Records as the cache may hold them: no conversion fields, so the connector must look them up."""
    return [RawRecord(id=i, object_type=object_type, properties={}) for i in ids]


def day(value: datetime) -> date:
    return value.astimezone(UTC).date()


def test_converted_leads_are_outcomes_on_their_converted_date(sf_factory: Factory) -> None:
    server = sf_factory(leads=300, seed=11)
    truth = [p for p in iter_people(300, seed=11, now=ANCHOR) if p.converted]
    leads = [r["Id"] for r in rows(server, "SELECT Id FROM Lead")]
    conn = connector(server)
    before = queries(server)

    outcomes = conn.read_outcomes(bare(leads, "lead"), CONVERTED)

    assert truth and len(outcomes) == len(truth)
    assert Counter(day(o.converted_at) for o in outcomes.values()) == Counter(
        day(p.customer_at) for p in truth if p.customer_at
    )
    assert {o.source for o in outcomes.values()} == {"lead:converted"}
    assert queries(server) - before == math.ceil(len(leads) / OUTCOME_ID_CHUNK)


def test_leads_read_with_outcome_properties_cost_no_lookup(sf_factory: Factory) -> None:
    server = sf_factory(leads=300, seed=11)
    conn = connector(server, objects=("lead",))
    properties = ["Email", *conn.outcome_properties(BOTH)]
    pages = list(conn.read_records(Window(None, datetime.now(UTC)), properties))
    records = [r for page in pages for r in page]
    assert records and all(r.properties["IsConverted"] == "false" for r in records)
    before = queries(server)
    assert conn.read_outcomes(records, BOTH) == {}
    assert queries(server) == before  # the read already said: not converted

    converted = rows(
        server, "SELECT Id, IsConverted, ConvertedDate, ConvertedOpportunityId FROM Lead WHERE IsConverted = true"
    )
    carried = [
        RawRecord(r["Id"], "lead", {k: ("true" if v is True else v) for k, v in r.items() if k != "attributes"})
        for r in converted
    ]
    before = queries(server)
    outcomes = conn.read_outcomes(carried, CONVERTED)
    assert len(outcomes) == len(converted) and queries(server) == before  # conversion fields came with the record


def test_won_opportunities_count_for_converted_leads_and_contacts_on_their_close_date(sf_factory: Factory) -> None:
    server = sf_factory(leads=300, contacts=200, seed=11)
    truth = [p for p in iter_people(500, seed=11, now=ANCHOR) if p.converted]
    conn = connector(server)
    leads = [r["Id"] for r in rows(server, "SELECT Id FROM Lead")]
    contacts = [r["Id"] for r in rows(server, "SELECT Id FROM Contact")]
    won = {
        r["Id"]: r["CloseDate"]
        for r in rows(server, "SELECT Id, CloseDate FROM Opportunity WHERE StageName = 'Closed Won'")
    }

    outcomes = conn.read_outcomes(bare(leads, "lead") + bare(contacts, "contact"), WON)

    lead_outcomes = {k: v for k, v in outcomes.items() if k.startswith("00Q")}
    contact_outcomes = {k: v for k, v in outcomes.items() if k.startswith("003")}
    converted_leads = sum(1 for p in truth if p.index < 300)
    assert len(lead_outcomes) == converted_leads > 0
    assert len(contact_outcomes) == len(truth)  # every customer has one contact with the won deal
    for outcome in outcomes.values():
        assert outcome.source == "opportunity:won"
        assert outcome.converted_at.isoformat()[:10] == won[outcome.detail["opportunity_id"]]
    assert Counter(day(o.converted_at) for o in contact_outcomes.values()) == Counter(
        day(p.customer_at) for p in truth if p.customer_at
    )


def test_open_and_lost_opportunities_are_not_outcomes_until_won(sf_factory: Factory) -> None:
    server = sf_factory(leads=50, contacts=300, seed=5)
    conn = connector(server)
    open_or_lost = rows(
        server, "SELECT ContactId, Opportunity.StageName FROM OpportunityContactRole WHERE Opportunity.IsWon = false"
    )
    stages = {r["Opportunity"]["StageName"] for r in open_or_lost}
    assert "Closed Lost" in stages and stages - {"Closed Lost"}  # both kinds are seeded
    losers = sorted({r["ContactId"] for r in open_or_lost})
    assert conn.read_outcomes(bare(losers, "contact"), WON) == {}

    org = server.sandbox.org
    fresh = [r["Id"] for r in rows(server, "SELECT Id FROM Lead WHERE IsConverted = false LIMIT 2")]
    org.convert_lead(fresh[0], opportunity_stage="Closed Lost")
    org.convert_lead(fresh[1], opportunity_stage="Prospecting", close_date="2026-09-30")
    assert conn.read_outcomes(bare(fresh, "lead"), WON) == {}
    assert {o.source for o in conn.read_outcomes(bare(fresh, "lead"), CONVERTED).values()} == {"lead:converted"}

    # the open deal is won later: now it counts, on its close date, for the lead and its contact
    lead = rows(server, f"SELECT ConvertedOpportunityId, ConvertedContactId FROM Lead WHERE Id = '{fresh[1]}'")[0]
    path = f"sobjects/Opportunity/{lead['ConvertedOpportunityId']}"
    server.client().restful(path, method="PATCH", json={"StageName": "Closed Won"})
    records = bare([fresh[1]], "lead") + bare([lead["ConvertedContactId"]], "contact")
    outcomes = conn.read_outcomes(records, WON)
    assert set(outcomes) == {fresh[1], lead["ConvertedContactId"]}
    assert {o.converted_at for o in outcomes.values()} == {datetime(2026, 9, 30, tzinfo=UTC)}


def test_the_earliest_evidence_counts(sf_factory: Factory) -> None:
    server = sf_factory(leads=20, seed=3)
    conn = connector(server)
    lead_id = rows(server, "SELECT Id FROM Lead WHERE IsConverted = false LIMIT 1")[0]["Id"]
    server.sandbox.org.convert_lead(lead_id, opportunity_stage="Closed Won", close_date="2099-01-31")
    converted_on = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)

    both = conn.read_outcomes(bare([lead_id], "lead"), BOTH)[lead_id]
    assert (both.source, both.converted_at) == ("lead:converted", converted_on)
    won = conn.read_outcomes(bare([lead_id], "lead"), WON)[lead_id]
    assert (won.source, won.converted_at) == ("opportunity:won", datetime(2099, 1, 31, tzinfo=UTC))
    assert conn.read_outcomes(bare([lead_id], "lead"), OutcomeSpec(closed_won=False)) == {}


def test_queries_per_chunk_of_records(sf_factory: Factory) -> None:
    server = sf_factory(contacts=1000, seed=8)
    conn = connector(server)
    contacts = [r["Id"] for r in rows(server, "SELECT Id FROM Contact")]
    before = queries(server)
    outcomes = conn.read_outcomes(bare(contacts, "contact"), WON)
    assert outcomes
    assert queries(server) - before == math.ceil(len(contacts) / OUTCOME_ID_CHUNK) == 3


def test_a_malformed_outcome_page_is_retried(sf_factory: Factory) -> None:
    server = sf_factory(leads=200, contacts=200, seed=9)
    conn = connector(server)
    records = bare([r["Id"] for r in rows(server, "SELECT Id FROM Lead")], "lead") + bare(
        [r["Id"] for r in rows(server, "SELECT Id FROM Contact")], "contact"
    )
    clean = conn.read_outcomes(records, BOTH)
    for kind in ("corrupt", "html"):
        rule = server.sandbox.faults.schedule(kind, QUERY, nth=2)
        assert conn.read_outcomes(records, BOTH) == clean
        assert rule.fired == 1
    assert clean


def test_outcome_properties_follow_the_spec_and_objects(sf_factory: Factory) -> None:
    server = sf_factory(seed=1)
    assert list(connector(server).outcome_properties(WON)) == ["IsConverted", "ConvertedDate", "ConvertedOpportunityId"]
    assert list(connector(server, objects=("contact",)).outcome_properties(WON)) == []
    assert list(connector(server).outcome_properties(OutcomeSpec(closed_won=False))) == []
