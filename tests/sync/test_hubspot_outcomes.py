"""HubSpot outcomes (who converted, and when) over real HTTP against the sandbox.

Expected outcomes come from the synthetic people's hidden ground truth (``converted``, ``customer_at``) and
from the portal's stored objects, computed here with plain Python.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import OutcomeReader, OutcomeSpec, RawRecord, Window
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
