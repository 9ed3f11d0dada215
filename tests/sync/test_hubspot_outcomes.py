"""HubSpot outcomes (who converted, and when) over real HTTP against the sandbox.

Expected outcomes come from the synthetic people's hidden ground truth (``converted``, ``customer_at``) and
from the portal's stored objects, computed here with plain Python.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from connectors.base import OutcomeReader, OutcomeSpec, RawRecord, Window
from connectors.errors import MalformedResponse
from connectors.hubspot import HubSpotConnector, lifecycle_date_properties
from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.synthetic import generate_people
from tests.conftest import SANDBOX_NOW

Factory = Callable[..., HubSpotSandboxServer]
CONTACTS, SEED = 600, 31
LIFECYCLE_ONLY = OutcomeSpec(lifecycle_stage="customer", closed_won=False)


def connector(server: HubSpotSandboxServer, **options: Any) -> HubSpotConnector:
    options.setdefault("rate_limit_per_10s", 10_000)
    options.setdefault("read_activities", False)
    return HubSpotConnector(access_token=server.token, base_url=server.url, **options)


def read_all(hub: HubSpotConnector, spec: OutcomeSpec, window: Window | None = None) -> list[RawRecord]:
    window = window or Window(None, SANDBOX_NOW + timedelta(days=1))
    return [r for page in hub.read_records(window, ["email", *hub.outcome_properties(spec)]) for r in page]


def _ms(value: datetime) -> int:
    """Epoch milliseconds, truncated as HubSpot stores datetimes."""
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@pytest.fixture
def sandbox(hubspot_sandbox_factory: Factory) -> HubSpotSandboxServer:
    return hubspot_sandbox_factory(contacts=CONTACTS, seed=SEED)


def test_outcome_properties_follow_the_spec() -> None:
    hub = HubSpotConnector(access_token="x", base_url="http://127.0.0.1:9", read_activities=False)
    assert isinstance(hub, OutcomeReader)
    assert hub.outcome_properties(OutcomeSpec(lifecycle_stage=None)) == []
    assert hub.outcome_properties(OutcomeSpec()) == [
        "hs_lifecyclestage_customer_date",
        "hs_lifecyclestage_evangelist_date",
    ]
    assert hub.outcome_properties(OutcomeSpec(lifecycle_stage="salesqualifiedlead"))[0] == (
        "hs_lifecyclestage_salesqualifiedlead_date"
    )
    # a custom stage (internal id) has no known order: only its own date
    assert lifecycle_date_properties("1234567") == ["hs_lifecyclestage_1234567_date"]
    with pytest.raises(ValueError, match="lifecycle_stage 'Customer'"):
        hub.outcome_properties(OutcomeSpec(lifecycle_stage="Customer"))


def test_lifecycle_outcomes_are_the_people_who_converted(sandbox: HubSpotSandboxServer) -> None:
    hub = connector(sandbox)
    records = read_all(hub, LIFECYCLE_ONLY)
    calls = hub.api_calls
    got = hub.read_outcomes(records, LIFECYCLE_ONLY)
    assert hub.api_calls == calls  # the dates came with the records: no call
    people = generate_people(CONTACTS, seed=SEED, now=SANDBOX_NOW)
    ids = sandbox.portal.contact_ids()
    truth = {i: p.customer_at for i, p in zip(ids, people, strict=True) if p.converted}
    assert truth, "the fixture portal has converters"
    assert len(truth) < len(ids) / 2, "and non-converters"
    assert {i: _ms(o.converted_at) for i, o in got.items()} == {i: _ms(at) for i, at in truth.items() if at}
    for outcome in got.values():
        assert outcome.source == "lifecycle:customer"
        assert outcome.converted_at.tzinfo is not None
        assert outcome.detail["property"] == "hs_lifecyclestage_customer_date"


def test_an_earlier_stage_counts_the_contacts_past_it(sandbox: HubSpotSandboxServer) -> None:
    spec = OutcomeSpec(lifecycle_stage="opportunity", closed_won=False)
    hub = connector(sandbox)
    since = SANDBOX_NOW - timedelta(days=3650)
    records = read_all(hub, spec, Window(since, SANDBOX_NOW + timedelta(days=1)))  # the search path too
    got = hub.read_outcomes(records, spec)
    stages = {r.id: r.properties.get("lifecyclestage") for r in records}
    portal = sandbox.portal
    expected = {
        i
        for i in portal.contact_ids()
        if (portal.contact(i) or {}).get("lifecyclestage") in ("opportunity", "customer", "evangelist")
    }
    assert set(got) == expected
    assert {stages.get(i) for i in got} <= {None, "opportunity", "customer", "evangelist"}
    assert all(o.source == "lifecycle:opportunity" for o in got.values())


def test_unparseable_or_missing_dates_are_no_outcome() -> None:
    hub = HubSpotConnector(access_token="x", base_url="http://127.0.0.1:9", read_activities=False)
    at = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    records = [
        RawRecord("1", "contact", {"hs_lifecyclestage_customer_date": "2025-01-02T03:04:05.678Z"}),
        RawRecord("2", "contact", {"hs_lifecyclestage_customer_date": "not a date"}),
        RawRecord("3", "contact", {"hs_lifecyclestage_customer_date": ""}),
        RawRecord("4", "contact", {}),
        RawRecord(
            "5",
            "contact",
            {
                "hs_lifecyclestage_customer_date": str(_ms(at)),
                "hs_lifecyclestage_evangelist_date": "2024-12-01T00:00:00Z",
            },
        ),
        RawRecord("", "contact", {"hs_lifecyclestage_customer_date": "2025-01-02T03:04:05Z"}),
    ]
    got = hub.read_outcomes(records, LIFECYCLE_ONLY)
    assert set(got) == {"1", "5"}
    assert got["1"].converted_at == at
    # the earliest date wins, whichever stage it is
    assert got["5"].converted_at == datetime(2024, 12, 1, tzinfo=UTC)
    assert got["5"].detail["property"] == "hs_lifecyclestage_evangelist_date"


# -- closed-won deals (Associations v4 + deal batch reads)

DEALS_ONLY = OutcomeSpec(lifecycle_stage=None, closed_won=True)
ASSOC = "POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read"
DEAL_READ = "POST /crm/v3/objects/deals/batch/read"


def sandbox_calls(server: HubSpotSandboxServer) -> dict[str, int]:
    stats: dict[str, Any] = requests.get(f"{server.url}/__sandbox/stats", timeout=5).json()
    return dict(stats["by_endpoint"])


def expected_won(server: HubSpotSandboxServer, ids: list[str]) -> dict[str, int]:
    """Earliest closed-won closedate (ms) per contact, from the portal's stored deals."""
    out: dict[str, int] = {}
    for contact_id in ids:
        dates = [
            _ms(datetime.fromisoformat(d["properties"]["closedate"]))
            for d in server.portal.deals(contact_id)
            if d["properties"]["dealstage"] == "closedwon"
        ]
        if dates:
            out[contact_id] = min(dates)
    return out


def test_closed_won_deals_are_outcomes_at_their_close_date(sandbox: HubSpotSandboxServer) -> None:
    hub = connector(sandbox)
    records = read_all(hub, DEALS_ONLY)
    got = hub.read_outcomes(records, DEALS_ONLY)
    ids = sandbox.portal.contact_ids()
    expected = expected_won(sandbox, ids)
    assert {i: _ms(o.converted_at) for i, o in got.items()} == expected
    # seeded from the hidden ground truth: the converted people, at customer_at
    people = generate_people(CONTACTS, seed=SEED, now=SANDBOX_NOW)
    truth = {i: _ms(p.customer_at) for i, p in zip(ids, people, strict=True) if p.customer_at}
    assert expected == truth
    for outcome in got.values():
        assert outcome.source == "deal:closedwon"
        assert outcome.detail["dealstage"] == "closedwon"
        assert float(outcome.detail["amount"]) > 0
    # the portal has deals that are no outcome: open and closed-lost ones
    stages = Counter(d["properties"]["dealstage"] for d in sandbox.portal.deals())
    assert stages["closedlost"] > 0 and sum(n for s, n in stages.items() if s not in ("closedwon", "closedlost")) > 0
    assert hub.last_outcomes.not_won == sum(n for s, n in stages.items() if s != "closedwon")


def _create_deals(server: HubSpotSandboxServer, inputs: list[dict[str, Any]]) -> list[str]:
    response = requests.post(
        f"{server.url}/crm/v3/objects/deals/batch/create",
        json={"inputs": inputs},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return [r["id"] for r in response.json()["results"]]


def _deal(contact_id: str, stage: str, closes: datetime) -> dict[str, Any]:
    return {
        "properties": {
            "dealname": f"test {stage}",
            "dealstage": stage,
            "closedate": closes.isoformat(),
            "amount": "10",
        },
        "associations": [
            {"to": {"id": contact_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}
        ],
    }


def test_lost_and_open_deals_are_no_outcome_and_the_earliest_evidence_wins(sandbox: HubSpotSandboxServer) -> None:
    portal = sandbox.portal
    ids = portal.contact_ids()
    people = generate_people(CONTACTS, seed=SEED, now=SANDBOX_NOW)
    no_deal = [i for i, p in zip(ids, people, strict=True) if not p.converted and not portal.deals(i)][:2]
    converted = [(i, p) for i, p in zip(ids, people, strict=True) if p.customer_at][:2]
    past = SANDBOX_NOW - timedelta(days=30)
    early = converted[0][1].customer_at
    assert early is not None
    _create_deals(
        sandbox,
        [
            _deal(no_deal[0], "closedlost", past),
            _deal(no_deal[1], "contractsent", past),  # open, expected close date already past
            _deal(converted[0][0], "closedwon", early - timedelta(days=5)),  # won before the lifecycle date
            _deal(converted[1][0], "closedwon", SANDBOX_NOW),  # won after it
        ],
    )
    hub = connector(sandbox)
    spec = OutcomeSpec()  # lifecycle customer and closed-won deals
    records = [r for r in read_all(hub, spec) if r.id in {*no_deal, converted[0][0], converted[1][0]}]
    got = hub.read_outcomes(records, spec)
    assert set(got) == {converted[0][0], converted[1][0]}
    first = got[converted[0][0]]
    assert first.source == "deal:closedwon"
    assert _ms(first.converted_at) == _ms(early - timedelta(days=5))
    second = got[converted[1][0]]
    assert second.source == "lifecycle:customer"
    assert _ms(second.converted_at) == _ms(converted[1][1].customer_at)  # type: ignore[arg-type]


def test_calls_are_association_batches_plus_deal_batches(hubspot_sandbox_factory: Factory) -> None:
    server = hubspot_sandbox_factory(contacts=2300, seed=5)
    hub = connector(server)
    records = read_all(hub, DEALS_ONLY)
    ids = [r.id for r in records]
    deals = {d["id"] for i in ids for d in server.portal.deals(i)}
    assert len(deals) > 200
    without = sum(1 for i in ids if not server.portal.deals(i))
    assert without > len(ids) / 2  # most contacts have no deal: they cost nothing beyond the batch
    before, calls = sandbox_calls(server), hub.api_calls
    got = hub.read_outcomes(records, DEALS_ONLY)
    after = sandbox_calls(server)
    assoc, deal_reads = math.ceil(len(ids) / 1000), math.ceil(len(deals) / 100)
    assert after.get(ASSOC, 0) - before.get(ASSOC, 0) == assoc == 3
    assert after.get(DEAL_READ, 0) - before.get(DEAL_READ, 0) == deal_reads
    assert hub.api_calls - calls == assoc + deal_reads == hub.last_outcomes.api_calls
    assert {i: _ms(o.converted_at) for i, o in got.items()} == expected_won(server, ids)


def test_a_malformed_deals_page_is_retried(sandbox: HubSpotSandboxServer) -> None:
    hub = connector(sandbox, backoff_initial_s=0.01)
    records = read_all(hub, DEALS_ONLY)
    expected = hub.read_outcomes(records, DEALS_ONLY)
    for kind in ("corrupt", "html"):
        rule = sandbox.sandbox.faults.schedule(kind, DEAL_READ, nth=1)
        before = hub.api_calls
        assert hub.read_outcomes(records, DEALS_ONLY) == expected
        assert rule.fired == 1
        assert hub.api_calls - before == hub.last_outcomes.api_calls + 1  # one retried call


def test_a_deals_page_that_stays_malformed_fails_the_read(sandbox: HubSpotSandboxServer) -> None:
    hub = connector(sandbox, backoff_initial_s=0.01, max_retries=2)
    records = read_all(hub, DEALS_ONLY)
    sandbox.sandbox.faults.schedule("corrupt", DEAL_READ, nth=1, times=None)
    with pytest.raises(MalformedResponse, match="deals"):
        hub.read_outcomes(records, DEALS_ONLY)
