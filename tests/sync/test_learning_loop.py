"""The learning loop in the pipeline: score history per pass (only changes), outcomes when the CRM reads them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.base import OutcomeReader, OutcomeSpec
from connectors.sandbox.hubspot import HubSpotSandboxServer
from sync.daemon import GuardedConnector
from tests.sync.test_hubspot_sync import make_pipeline


@pytest.fixture
def portal(hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer]) -> HubSpotSandboxServer:
    return hubspot_sandbox_factory(contacts=150, seed=5, now=None)


def test_each_pass_records_history_only_for_changed_scores(portal: HubSpotSandboxServer, store_url: str) -> None:
    pipeline, store = make_pipeline(portal, store_url)
    try:
        first = pipeline.run_once()
        assert store.count_history("champion") == first.leads_scored == 150
        rows = [r for page in store.iter_history() for r in page]
        current = store.get_scores([r.lead_id for r in rows])
        assert all(
            (r.total, r.grade, r.qualified)
            == (current[r.lead_id].total, current[r.lead_id].grade, current[r.lead_id].qualified)
            for r in rows
        )
        second = pipeline.run_once(full=True)  # every lead scored again, nothing changed
        assert second.leads_scored == 150
        assert store.count_history() == 150
        assert second.as_dict()["outcomes"] == 0
    finally:
        store.close()


def test_dry_run_records_no_history(portal: HubSpotSandboxServer, store_url: str) -> None:
    pipeline, store = make_pipeline(portal, store_url)
    try:
        pipeline.run_once(dry_run=True)
        assert store.count_history() == 0
    finally:
        store.close()


def test_guarded_connector_reads_outcomes_only_through_a_reader(portal: HubSpotSandboxServer, store_url: str) -> None:
    pipeline, store = make_pipeline(portal, store_url)
    store.close()
    inner = pipeline.connector
    guarded = GuardedConnector(inner, lambda: None)
    spec = OutcomeSpec()
    if isinstance(inner, OutcomeReader):
        assert list(guarded.outcome_properties(spec)) == list(inner.outcome_properties(spec))
    else:
        assert guarded.outcome_properties(spec) == ()
        assert guarded.read_outcomes([], spec) == {}
