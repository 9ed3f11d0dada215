"""Outcomes of leads already cached: a Lead converted after it was read is never read again (Salesforce reads
``IsConverted = false`` leads only), so each pass asks again for a bounded share of the cached leads that have
no outcome yet and whose window is open."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.sandbox.salesforce import SalesforceSandboxServer, start_salesforce_sandbox
from leadsync.app import build_app
from leadsync.config import parse_config
from sync.pipeline import SyncPipeline
from sync.state import StateStore
from tests.sync.test_salesforce_sync import sf_config

Factory = Callable[..., SalesforceSandboxServer]


@pytest.fixture
def org() -> Iterator[SalesforceSandboxServer]:
    server = start_salesforce_sandbox(leads=200, contacts=0, seed=13, now=None)  # dates relative to today
    yield server
    server.stop()


def make(server: SalesforceSandboxServer, tmp_path: Path, **outcomes: Any) -> tuple[SyncPipeline, StateStore]:
    outcomes.setdefault("recheck_interval_s", 0)  # every pass re-checks, unless a test says otherwise
    section = sf_config(server, f"sqlite:///{tmp_path / 'state.db'}") | {"outcomes": outcomes}
    app = build_app(parse_config(section, source="<test>"))
    store = app.store()
    pipe = app.pipeline(store)
    pipe.connector._retrying.wait.backoff.multiplier = 0.01  # type: ignore[union-attr]
    return pipe, store


def open_leads(store: StateStore, window: timedelta) -> list[str]:
    """Cached leads without an outcome whose window (from CreatedDate) has not closed."""
    now = datetime.now(UTC)
    ids = [
        lead_id
        for page in store.iter_lead_values("CreatedDate")
        for lead_id, raw in page
        if raw and datetime.fromisoformat(raw.replace("+0000", "+00:00")) + window > now
    ]
    known = store.get_outcomes(ids)
    return [i for i in ids if i not in known]


def test_a_lead_converted_after_it_was_cached_gets_its_outcome(org: SalesforceSandboxServer, tmp_path: Path) -> None:
    pipe, store = make(org, tmp_path)
    try:
        first = pipe.run_once()
        assert first.leads_read == 200
        candidates = open_leads(store, timedelta(days=90))
        assert candidates, "the seeded org has no lead young enough to re-check"
        lead_id = candidates[0]
        org.sandbox.org.convert_lead(lead_id, opportunity_stage="Closed Won")

        second = pipe.run_once()
        assert second.outcomes_rechecked == len(candidates)
        stored = store.get_outcomes([lead_id])
        assert lead_id in stored and stored[lead_id].source == "opportunity:won"
        # the lead's new Contact (read as a new record, its won deal through its contact role) is the other one
        assert second.outcomes == 2
        assert set(open_leads(store, timedelta(days=90))) == set(candidates) - {lead_id}
    finally:
        store.close()


def test_the_recheck_is_bounded_and_resumes_where_it_stopped(org: SalesforceSandboxServer, tmp_path: Path) -> None:
    pipe, store = make(org, tmp_path, converted_lead=True, recheck_per_pass=7)
    try:
        first = pipe.run_once()  # a full read asks every lead itself: no re-check on top of it
        assert first.outcomes_rechecked == 0 and first.outcomes_recheck_cursor is None
        candidates = sorted(open_leads(store, timedelta(days=90)))  # SQLite orders ids as Python does
        assert len(candidates) > 21
        second = pipe.run_once()
        assert second.outcomes_rechecked == 7 and second.outcomes_recheck_cursor == candidates[6]
        late = candidates[16]  # beyond the third pass's 7
        org.sandbox.org.convert_lead(late)
        between = pipe.run_once()
        assert between.outcomes_rechecked == 7 and between.outcomes_recheck_cursor == candidates[13]
        assert late not in store.get_outcomes([late])
        third = pipe.run_once()
        assert third.outcomes_rechecked == 7 and third.outcomes == 1
        assert store.get_outcomes([late])[late].source == "lead:converted"
    finally:
        store.close()


def test_a_pass_within_the_recheck_interval_asks_nothing_and_carries_the_cursor_on(
    org: SalesforceSandboxServer, tmp_path: Path
) -> None:
    pipe, store = make(org, tmp_path, converted_lead=True, recheck_per_pass=7, recheck_interval_s=3600)
    try:
        first = pipe.run_once()  # the full read counts as a re-check of every lead
        assert first.outcomes_rechecked_at is not None
        second = pipe.run_once()
        assert second.outcomes_rechecked == 0 and second.outcomes_rechecked_at == first.outcomes_rechecked_at
        pipe.recheck_interval = timedelta(0)  # the hour is over
        third = pipe.run_once()
        assert third.outcomes_rechecked == 7 and third.outcomes_recheck_cursor is not None
        assert third.api_calls > second.api_calls  # the re-check is what costs the calls
        pipe.recheck_interval = timedelta(hours=1)
        fourth = pipe.run_once()
        assert fourth.outcomes_rechecked == 0 and fourth.outcomes_recheck_cursor == third.outcomes_recheck_cursor
    finally:
        store.close()


def test_no_recheck_when_off_or_dry_run(org: SalesforceSandboxServer, tmp_path: Path) -> None:
    pipe, store = make(org, tmp_path, recheck_per_pass=0)
    try:
        pipe.run_once()
        lead_id = open_leads(store, timedelta(days=90))[0]
        org.sandbox.org.convert_lead(lead_id, opportunity_stage="Closed Won")
        assert pipe.run_once().outcomes_rechecked == 0
        assert pipe.run_once(dry_run=True).outcomes_rechecked == 0
        assert store.get_outcomes([lead_id]) == {}
    finally:
        store.close()
