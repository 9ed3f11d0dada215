"""Issue 14 item 4: hostile CRM answers, fed by the sandboxes' fault kinds, on both CRMs.

A page that cannot be trusted whole (``stall`` here; ``corrupt``, ``html`` and ``drip`` in
``test_response_validation``) is retried by the connectors' retry layer and the pass recovers, or, when it
persists, fails naming the call. A record that cannot be trusted (``huge``, ``enum``, ``idtype``) is refused
on its own: the rest of the pass goes on, the run ends ``partial`` with the refusal counted and shown by
``leadsync status``, and the sandbox's stored records show that the refused one got no score written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import connectors.salesforce as salesforce_module
from connectors.errors import RetriableError
from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.salesforce import SalesforceSandboxServer
from leadsync.app import build_app
from leadsync.cli import app as cli_app
from leadsync.config import parse_config
from sync.pipeline import SyncPipeline
from sync.state import StateStore
from tests.sync.test_hubspot_robustness import pipeline_for
from tests.sync.test_hubspot_sync import all_contacts
from tests.sync.test_salesforce_sync import rows, sf_config

Factory = Callable[..., HubSpotSandboxServer]
SfFactory = Callable[..., SalesforceSandboxServer]
LIST = "GET /crm/v3/objects/contacts"
SOQL = "GET /services/data/v{version}/query"
QUERY_MORE = "GET /services/data/v{version}/query/{cursor}"
#: the reason each record fault is refused for
REASONS = {"huge": "oversized", "enum": "unknown_option", "idtype": "id_type"}
#: a rule on the lead's Status (a restricted picklist), so that the Salesforce ``enum`` fault hits a field read
STATUS_RULE = {"name": "working", "points": 5, "when": {"lead_status": {"equals": "Working - Contacted"}}}


def _hubspot(server: HubSpotSandboxServer, tmp_path: Path, **hubspot: Any) -> tuple[SyncPipeline, StateStore]:
    pipe, store = pipeline_for(
        server, tmp_path / "s.db", hubspot={"max_retries": 3, "read_activities": False} | hubspot
    )
    pipe.connector._retrying.wait.backoff.multiplier = 0.01  # type: ignore[attr-defined]
    return pipe, store


def _salesforce(
    server: SalesforceSandboxServer, tmp_path: Path, *, scoring: dict[str, Any] | None = None, **salesforce: Any
) -> tuple[SyncPipeline, StateStore]:
    options = {"max_retries": 3, "read_activities": False} | salesforce
    data = sf_config(server, f"sqlite:///{tmp_path / 'sf.db'}", **options) | ({"scoring": scoring} if scoring else {})
    application = build_app(parse_config(data, source="<test>"))
    store = application.store()
    pipe = application.pipeline(store)
    pipe.connector._retrying.wait.backoff.multiplier = 0.01  # type: ignore[attr-defined]
    return pipe, store


def _hubspot_scores(server: HubSpotSandboxServer) -> dict[str, str | None]:
    return {i: row.get("leadsync_score") for i, row in all_contacts(server, ["leadsync_score"]).items()}


def _salesforce_scores(server: SalesforceSandboxServer) -> dict[str, str | None]:
    leads = rows(server, "Lead", ["Leadsync_Score__c"], "WHERE IsConverted = false")
    contacts = rows(server, "Contact", ["Leadsync_Score__c"])
    return {i: r["Leadsync_Score__c"] for i, r in (leads | contacts).items()}


@pytest.fixture
def small_soql_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """SOQL pages of 200 (the smallest batchSize), so that a small org needs several pages."""
    monkeypatch.setattr(salesforce_module, "QUERY_PAGE_SIZE", 200)


# a page that stalls mid-body: transient, retried -------------------------------------------------------


def test_hubspot_page_stalling_mid_body_is_cut_off_retried_and_the_pass_recovers(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=250, seed=5)
    pipe, store = _hubspot(server, tmp_path, timeout_s=1)
    server.sandbox.faults.stall_s = 120
    rule = server.sandbox.faults.schedule("stall", LIST, nth=2)  # the second page: half of it, then silence
    started = time.monotonic()
    try:
        summary = pipe.run_once(full=True)
        run = store.last_runs(1)[0]
    finally:
        store.close()
    assert rule.fired == 1 and time.monotonic() - started < 90  # cut at timeout_s, not after the 120 s stall
    assert run.status == "ok" and summary.leads_read == 250 and summary.records_refused == 0
    assert None not in _hubspot_scores(server).values()


def test_hubspot_page_that_always_stalls_fails_the_pass_naming_the_call(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=250, seed=5)
    pipe, store = _hubspot(server, tmp_path, timeout_s=2, max_retries=1)
    server.sandbox.faults.schedule("stall", LIST, nth=2, times=None)
    try:
        with pytest.raises(RetriableError, match=r"GET /crm/v3/objects/contacts: no complete answer within"):
            pipe.run_once(full=True)
        run = store.last_runs(1)[0]
        assert run.status == "failed" and store.get_watermark(pipe.stream) is None
    finally:
        store.close()


@pytest.mark.usefixtures("small_soql_pages")
def test_salesforce_page_stalling_mid_body_is_cut_off_retried_and_the_pass_recovers(
    salesforce_sandbox_factory: SfFactory, tmp_path: Path
) -> None:
    server = salesforce_sandbox_factory(leads=300, contacts=100, seed=11)
    pipe, store = _salesforce(server, tmp_path, timeout_s=1)
    server.sandbox.faults.stall_s = 120
    rule = server.sandbox.faults.schedule("stall", QUERY_MORE, nth=1)
    started = time.monotonic()
    try:
        summary = pipe.run_once(full=True)
        run = store.last_runs(1)[0]
    finally:
        store.close()
    assert rule.fired == 1 and time.monotonic() - started < 90
    assert run.status == "ok" and summary.records_refused == 0
    assert None not in _salesforce_scores(server).values()


@pytest.mark.usefixtures("small_soql_pages")
def test_salesforce_page_that_always_stalls_fails_the_pass_naming_the_call(
    salesforce_sandbox_factory: SfFactory, tmp_path: Path
) -> None:
    server = salesforce_sandbox_factory(leads=300, contacts=0, seed=11)
    pipe, store = _salesforce(server, tmp_path, timeout_s=2, max_retries=1)
    server.sandbox.faults.schedule("stall", QUERY_MORE, nth=1, times=None)
    try:
        with pytest.raises(RetriableError, match=r"no complete answer within salesforce.timeout_s=2s"):
            pipe.run_once(full=True)
        assert store.last_runs(1)[0].status == "failed" and store.get_watermark(pipe.stream) is None
    finally:
        store.close()


# a hostile record: refused on its own, the pass goes on and ends partial ---------------------------------


@pytest.mark.parametrize("kind", ["huge", "enum", "idtype"])
def test_hubspot_hostile_record_is_refused_alone_and_the_pass_ends_partial(
    hubspot_sandbox_factory: Factory, tmp_path: Path, kind: str
) -> None:
    server = hubspot_sandbox_factory(contacts=150, seed=4)
    pipe, store = _hubspot(server, tmp_path)
    server.sandbox.faults.schedule(kind, LIST, nth=1)  # the first record of the first page
    try:
        summary = pipe.run_once(full=True)
        run = store.last_runs(1)[0]
        cached = {lead.id for chunk in store.iter_leads() for lead in chunk}
    finally:
        store.close()
    [(spoiled_kind, victim)] = server.sandbox.faults.spoiled
    assert spoiled_kind == kind
    assert run.status == "partial" and summary.records_refused == run.summary["records_refused"] == 1
    assert summary.refused_by_reason == {REASONS[kind]: 1} and summary.leads_read == 149
    [refusal] = run.summary["refusals"]
    assert refusal["object"] == "contact" and refusal["id"] == victim and refusal["call"] == LIST
    assert refusal["reason"] == REASONS[kind]
    scores = _hubspot_scores(server)
    assert scores.pop(victim) is None  # no score was written for what the CRM did not really hold
    assert None not in scores.values() and len(scores) == 149
    assert victim not in cached


@pytest.mark.parametrize("kind", ["huge", "enum", "idtype"])
def test_salesforce_hostile_records_are_refused_alone_and_the_pass_ends_partial(
    salesforce_sandbox_factory: SfFactory, tmp_path: Path, kind: str
) -> None:
    server = salesforce_sandbox_factory(leads=120, contacts=60, seed=7)
    server.sandbox.faults.huge_value_bytes = 9 * 1024 * 1024  # over the 8 Mi default limit; 50 MB is tested below
    pipe, store = _salesforce(server, tmp_path, scoring={"fit": [STATUS_RULE]})
    server.sandbox.faults.schedule(kind, SOQL, nth=1, times=None)  # the first row of every query's first page
    try:
        summary = pipe.run_once(full=True)
        run = store.last_runs(1)[0]
    finally:
        store.close()
    victims = {record_id for _, record_id in server.sandbox.faults.spoiled}
    # huge and idtype spoil the first Lead and the first Contact; enum only the Lead (contacts have no Status)
    assert len(victims) == (1 if kind == "enum" else 2)
    assert run.status == "partial" and summary.records_refused == len(victims)
    assert summary.refused_by_reason == {REASONS[kind]: len(victims)}
    sent = {str(int(v[3:], 36)) for v in victims} if kind == "idtype" else victims  # an id is shown as sent
    assert {r["id"] for r in run.summary["refusals"]} == sent
    assert all(r["call"].startswith("SOQL query on ") and r["reason"] == REASONS[kind] for r in run.summary["refusals"])
    server.sandbox.faults.clear_schedule()  # read back what the org stores, unspoiled
    scores = _salesforce_scores(server)
    assert all(scores.pop(v) is None for v in victims)  # never written
    assert None not in scores.values()


def test_a_50_mb_value_is_refused_without_failing_the_pass(hubspot_sandbox_factory: Factory, tmp_path: Path) -> None:
    server = hubspot_sandbox_factory(contacts=30, seed=4)
    assert server.sandbox.faults.huge_value_bytes == 50 * 1024 * 1024  # the default: the 50 MB
    pipe, store = _hubspot(server, tmp_path)
    server.sandbox.faults.schedule("huge", LIST, nth=1)
    try:
        summary = pipe.run_once(full=True)
        run = store.last_runs(1)[0]
    finally:
        store.close()
    [(_, victim)] = server.sandbox.faults.spoiled
    assert run.status == "partial" and summary.refused_by_reason == {"oversized": 1}
    assert "52,428,800 characters long" in run.summary["refusals"][0]["problem"]
    assert _hubspot_scores(server)[victim] is None and summary.leads_scored == 29


def test_a_refused_record_is_scored_by_the_next_clean_pass_and_status_shows_the_refusal(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=60, seed=4)
    pipe, store = _hubspot(server, tmp_path)
    server.sandbox.faults.schedule("idtype", LIST, nth=1)
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        f"crm: hubspot\nhubspot: {{access_token: {server.token}, base_url: '{server.url}'}}\n"
        f"state: {{url: 'sqlite:///{tmp_path / 's.db'}'}}\n"
    )
    try:
        pipe.run_once(full=True)
        [(_, victim)] = server.sandbox.faults.spoiled
        shown = CliRunner().invoke(cli_app, ["status", "--json", "--config", str(config)])
        assert shown.exit_code == 0, shown.output
        data = json.loads(shown.output)
        assert data["runs"][0]["status"] == "partial" and data["runs"][0]["records_refused"] == 1
        [refused] = data["refused_records"]
        assert refused["id"] == victim and "is a JSON number, not the string the API documents" in refused["problem"]
        table = CliRunner().invoke(cli_app, ["status", "--config", str(config)], terminal_width=200)
        assert "refused records" in table.output and "partial" in table.output
        again = pipe.run_once(full=True)
        assert store.last_runs(1)[0].status == "ok" and again.records_refused == 0
    finally:
        store.close()
    assert _hubspot_scores(server)[victim] is not None


def test_an_unknown_option_of_a_field_no_rule_reads_is_no_reason_to_refuse(
    salesforce_sandbox_factory: SfFactory, tmp_path: Path
) -> None:
    server = salesforce_sandbox_factory(leads=60, contacts=0, seed=7)
    pipe, store = _salesforce(server, tmp_path)  # the default rules: none reads the lead's Status
    server.sandbox.faults.schedule("enum", SOQL, nth=1, times=None)
    try:
        summary = pipe.run_once(full=True)
        run = store.last_runs(1)[0]
    finally:
        store.close()
    [(_, victim)] = server.sandbox.faults.spoiled
    assert run.status == "ok" and summary.records_refused == 0
    server.sandbox.faults.clear_schedule()
    assert _salesforce_scores(server)[victim] is not None


def test_sync_max_value_chars_sets_the_refusal_limit(hubspot_sandbox_factory: Factory, tmp_path: Path) -> None:
    server = hubspot_sandbox_factory(contacts=20, seed=4)
    server.sandbox.faults.huge_value_bytes = 100_000  # scored under the default limit; refused under 65,536
    pipe, store = pipeline_for(
        server,
        tmp_path / "s.db",
        hubspot={"read_activities": False},
        sync={"settle_s": 0, "max_value_chars": 65_536},
    )
    server.sandbox.faults.schedule("huge", LIST, nth=1)
    try:
        summary = pipe.run_once(full=True)
    finally:
        store.close()
    assert summary.refused_by_reason == {"oversized": 1}
    assert "100,000 characters long, over the 65,536" in summary.refusals[0]["problem"]
