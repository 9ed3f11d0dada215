"""Issue-5 guarantees over real HTTP: the 10k search cap, changes during a pass, faults, budgets, rules changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import RecordUpdate, Window
from connectors.errors import BudgetExhausted
from connectors.hubspot import SEARCH_RESULT_CAP, HubSpotConnector
from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.app import build_app
from leadsync.config import parse_config
from sync.pipeline import SyncPipeline
from sync.state import StateStore
from tests.sync.test_hubspot_sync import all_contacts

Factory = Callable[..., HubSpotSandboxServer]
LEADSYNC_PROPS = [
    "leadsync_score",
    "leadsync_fit",
    "leadsync_engagement",
    "leadsync_grade",
    "leadsync_reasons",
    "leadsync_qualified_at",
    "leadsync_rules_version",
    "lifecyclestage",
]


def connector(server: HubSpotSandboxServer, **options: Any) -> HubSpotConnector:
    return HubSpotConnector(access_token=server.token, base_url=server.url, **options)


def pipeline_for(server: HubSpotSandboxServer, state: Path, **extra: Any) -> tuple[SyncPipeline, StateStore]:
    hubspot = {
        "access_token": server.token,
        "base_url": server.url,
        "max_retries": 10,
        "rate_limit_per_10s": 5000,  # the sandboxes here have no limit unless a test sets one
    } | extra.pop("hubspot", {})
    config = parse_config(
        {"crm": "hubspot", "hubspot": hubspot, "state": {"url": f"sqlite:///{state}"}, "sync": {"settle_s": 0}} | extra,
        source="<test>",
    )
    app = build_app(config)
    store = app.store()
    return app.pipeline(store), store


def test_15000_contacts_stamped_in_one_second_are_all_read_despite_the_10k_cap(
    hubspot_sandbox_factory: Factory,
) -> None:
    server = hubspot_sandbox_factory(contacts=15_000, seed=3)
    stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    server.portal.bulk_stamp(at=stamp + timedelta(milliseconds=500))
    hub = connector(server)
    seen: list[str] = []
    for page in hub.read_records(Window(stamp, stamp + timedelta(seconds=1)), ["email"]):
        seen.extend(r.id for r in page)
    assert len(seen) == len(set(seen)) == 15_000 > SEARCH_RESULT_CAP
    assert hub.api_calls == 15_000 // 200 + 1  # pages of 200, plus the empty page that ends the window


def test_contact_modified_while_a_pass_runs_is_picked_up_by_the_next(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=1_000, seed=9, now=None)
    pipe, store = pipeline_for(server, tmp_path / "s.db")
    first_id = server.portal.contact_ids()[0]
    touched: list[str] = []

    def touch_after_first_page(event: str, n: int) -> None:
        if event == "read" and not touched:  # the first page (which holds first_id) has been read
            server.portal.track_engagement(
                first_id,
                {"hs_analytics_num_page_views": "90", "hs_analytics_last_visit_timestamp": _now_ms()},
            )
            touched.append(first_id)

    try:
        pipe.progress = touch_after_first_page
        pipe.run_once()
        pipe.progress = lambda event, n: None
        second = pipe.run_once()
    finally:
        store.close()
    assert touched
    cached = {c.id: c for chunk in _open(tmp_path).iter_leads() for c in chunk}
    assert cached[first_id].properties["hs_analytics_num_page_views"] == "90"
    assert second.leads_read >= 1


def _now_ms() -> str:
    return str(int(datetime.now(UTC).timestamp() * 1000))


def _open(tmp_path: Path) -> StateStore:
    return StateStore.open(f"sqlite:///{tmp_path / 's.db'}")


def converge(pipe: SyncPipeline, store: StateStore, passes: int = 8) -> None:
    """Run passes until no write is pending and the outbox is drained (what a daemon does over time)."""
    for _ in range(passes):
        pipe.run_once()
        if not store.failed_writes() and not store.pending_triggers():
            return
    raise AssertionError(f"not converged: {store.failed_writes()[:3]} {store.pending_triggers()[:3]}")


def test_faults_at_20_percent_converge_to_the_fault_free_state(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    clean = hubspot_sandbox_factory(contacts=800, seed=21, now=anchor)
    faulty = hubspot_sandbox_factory(contacts=800, seed=21, now=anchor, fault_rate=0.2, slow_response_s=0.05)
    fixed_now = datetime.now(UTC)
    results = {}
    for name, server in (("clean", clean), ("faulty", faulty)):
        pipe, store = pipeline_for(server, tmp_path / f"{name}.db", hubspot={"workflow_id": 77, "timeout_s": 2})
        pipe.clock = lambda: fixed_now  # one "now" for both, so decay cannot differ between the two runs
        pipe.connector._retrying.wait.backoff.multiplier = 0.01  # type: ignore[attr-defined]
        try:
            converge(pipe, store)
        finally:
            store.close()
        server.sandbox.faults.rate = 0.0  # read the outcome without faults
        rows = all_contacts(server, LEADSYNC_PROPS)
        results[name] = {i: {k: row.get(k) for k in LEADSYNC_PROPS} for i, row in rows.items()}
    assert faulty.stats()["faults"] > 0
    assert results["faulty"] == results["clean"]
    for server in (clean, faulty):
        emails = [e["email"] for e in server.portal.enrollments()]
        assert len(emails) == len(set(emails)) > 0  # every qualified contact enrolled exactly once
    assert sorted(e["email"] for e in clean.portal.enrollments()) == sorted(
        e["email"] for e in faulty.portal.enrollments()
    )


def test_batch_with_bad_records_lands_the_good_ones(hubspot_sandbox_factory: Factory) -> None:
    hubspot_sandbox = hubspot_sandbox_factory(contacts=200, seed=6)
    hub = connector(hubspot_sandbox)
    ids = hubspot_sandbox.portal.contact_ids()[:150]
    updates = [RecordUpdate(i, "contact", {"jobtitle": f"Title {i}"}) for i in ids]
    updates[3] = RecordUpdate("999999999", "contact", {"jobtitle": "ghost"})  # unknown id: 207
    updates[120] = RecordUpdate(ids[120], "contact", {"numemployees": "lots"})  # bad enumeration: 207
    updates[77] = RecordUpdate(ids[77], "contact", {"email": "not-an-email"})  # whole batch 400: split
    result = hub.write(updates)
    failed = {f.id: f for f in result.failed}
    assert set(failed) == {"999999999", ids[120], ids[77]}
    assert all(f.message and not f.retriable for f in failed.values())
    assert len(result.succeeded) == 147
    for i in result.succeeded:
        assert (hubspot_sandbox.portal.contact(i) or {})["jobtitle"] == f"Title {i}"


def test_failed_writes_are_kept_with_the_crm_message_and_shown(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=200, seed=4, now=None)
    victim = server.portal.contact_ids()[10]
    pipe, store = pipeline_for(server, tmp_path / "s.db")
    pipe.connector.ensure_properties(pipe.writeback.property_specs())
    # a property the CRM now refuses for this contact only: archive it between read and write
    original_write = pipe.connector.write

    def archive_then_write(updates: Any) -> Any:
        server.portal.archive_contact(victim)
        return original_write(updates)

    pipe.connector.write = archive_then_write  # type: ignore[method-assign]
    try:
        summary = pipe.run_once()
        failures = store.failed_writes()
    finally:
        store.close()
    assert summary.write_failures == 1 and [f.lead_id for f in failures] == [victim]
    assert failures[0].message and failures[0].attempts == 1


def test_budget_guard_stops_cleanly_before_the_daily_limit(hubspot_sandbox_factory: Factory, tmp_path: Path) -> None:
    server = hubspot_sandbox_factory(contacts=3_000, seed=2, rate_limit="1000/10s", daily_limit=40, now=None)
    pipe, store = pipeline_for(server, tmp_path / "s.db", hubspot={"daily_reserve": 0.5, "rate_limit_per_10s": 1000})
    try:
        with pytest.raises(BudgetExhausted, match="budget guard"):
            pipe.run_once()
        run = store.last_runs(1)[0]
        watermark = store.get_watermark(pipe.stream)
    finally:
        store.close()
    assert server.stats()["requests"] <= 21  # stopped at the reserve: half of 40 left untouched
    assert run.status == "stopped" and "budget guard" in (run.error or "")
    assert watermark is None  # nothing skipped: the next pass starts from the same place


def test_rules_change_rescores_from_cache_without_reading_the_crm(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=400, seed=8, now=None)
    pipe, store = pipeline_for(server, tmp_path / "s.db")
    pipe.run_once()
    store.close()
    stricter, store = pipeline_for(
        server, tmp_path / "s.db", scoring={"qualification": {"threshold": 95, "release": 90}}
    )
    try:
        before = server.stats()["by_endpoint"].get("GET /crm/v3/objects/contacts", 0)
        summary = stricter.run_once()
    finally:
        store.close()
    assert summary.leads_rescored == 400
    assert server.stats()["by_endpoint"].get("GET /crm/v3/objects/contacts", 0) == before  # no full re-read
    versions = {r["leadsync_rules_version"] for r in all_contacts(server, ["leadsync_rules_version"]).values()}
    assert versions == {stricter.rules.version}


def test_search_index_lag_is_waited_out_not_missed(hubspot_sandbox_factory: Factory, tmp_path: Path) -> None:
    server = hubspot_sandbox_factory(contacts=300, seed=12, now=None, index_lag_s=1.0)
    pipe, store = pipeline_for(server, tmp_path / "s.db", sync={"settle_s": 1.5, "overlap_s": 0})
    changed = server.portal.contact_ids()[5:8]
    try:
        pipe.run_once()
        time.sleep(2.0)  # let leadsync's own writes settle, so the next pass reads only what changes now
        pipe.run_once()
        for contact_id in changed:
            server.portal.track_engagement(contact_id, {"hs_analytics_num_page_views": "77"})
        too_soon = pipe.run_once()  # the change is younger than settle_s (and not yet searchable)
        time.sleep(2.0)
        later = pipe.run_once()
        cached = {c.id: c for chunk in store.iter_leads() for c in chunk}
    finally:
        store.close()
    assert too_soon.leads_read == 0
    assert later.leads_read == len(changed)
    assert all(cached[i].properties["hs_analytics_num_page_views"] == "77" for i in changed)
