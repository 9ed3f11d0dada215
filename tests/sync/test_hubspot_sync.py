"""End to end over real HTTP: the HubSpot sandbox, the official SDK, the pipeline and a real state store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.app import build_app
from leadsync.config import parse_config
from sync.pipeline import SyncPipeline
from sync.state import StateStore
from sync.writeback import format_time

STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist"]
WRITTEN = ["leadsync_score", "leadsync_grade", "leadsync_qualified_at", "lifecyclestage", "email"]


def all_contacts(server: HubSpotSandboxServer, properties: list[str]) -> dict[str, dict[str, Any]]:
    """Every contact as the official SDK reads it."""
    client = server.client()
    rows: dict[str, dict[str, Any]] = {}
    after = None
    while True:
        page = client.crm.contacts.basic_api.get_page(limit=100, after=after, properties=properties)
        rows.update({c.id: c.properties for c in page.results})
        if not page.paging or not page.paging.next:
            return rows
        after = page.paging.next.after


def make_pipeline(server: HubSpotSandboxServer, state_url: str, **extra: Any) -> tuple[SyncPipeline, StateStore]:
    config = parse_config(
        {
            "crm": "hubspot",
            "hubspot": {"access_token": server.token, "base_url": server.url, "rate_limit_per_10s": 5000},
            "state": {"url": state_url},
            "sync": {"settle_s": 0},  # the sandbox's search index has no lag unless asked for
        }
        | extra
    )
    app = build_app(config)
    store = app.store()
    return app.pipeline(store), store


@pytest.fixture
def portal(hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer]) -> HubSpotSandboxServer:
    # synthetic dates anchored at today (not the fixed test anchor): the pipeline scores against the real clock
    return hubspot_sandbox_factory(contacts=600, seed=11, now=None)


@pytest.fixture
def pipeline(portal: HubSpotSandboxServer, store_url: str) -> Iterator[SyncPipeline]:
    pipe, store = make_pipeline(portal, store_url)
    yield pipe
    store.close()


def test_first_sync_scores_and_writes_every_contact(portal: HubSpotSandboxServer, pipeline: SyncPipeline) -> None:
    before = all_contacts(portal, WRITTEN)
    summary = pipeline.run_once()
    after = all_contacts(portal, WRITTEN)

    assert summary.leads_read == summary.leads_scored == len(before) == 600
    assert summary.leads_written == 600 and summary.write_failures == 0
    assert all(row.get("leadsync_score") not in (None, "") for row in after.values())
    assert all(row.get("leadsync_grade") in {"hot", "warm", "cold"} for row in after.values())
    assert all(0 <= int(row["leadsync_score"]) <= 100 for row in after.values())

    qualified = {i for i, row in after.items() if row.get("leadsync_qualified_at")}
    assert len(qualified) == summary.qualified > 0
    for contact_id in qualified:
        stage = after[contact_id]["lifecyclestage"]
        # "other" (partners, vendors...) is outside the funnel: leadsync leaves it to the humans
        assert stage == "other" or STAGES.index(stage) >= STAGES.index("marketingqualifiedlead")
    for contact_id, row in before.items():
        stage = row.get("lifecyclestage")
        if stage in STAGES:  # nothing ever moves backwards
            assert STAGES.index(after[contact_id]["lifecyclestage"]) >= STAGES.index(stage)
    customers = [i for i, row in before.items() if row.get("lifecyclestage") == "customer"]
    assert customers and all(after[i]["lifecyclestage"] == "customer" for i in customers)


def test_second_pass_writes_nothing_unchanged_and_reads_incrementally(
    portal: HubSpotSandboxServer, pipeline: SyncPipeline
) -> None:
    pipeline.recheck_per_pass = 0  # the outcome re-check reads deal associations on purpose (tests/sync)
    first = pipeline.run_once()
    stats_before = portal.stats()["by_endpoint"]
    second = pipeline.run_once()
    stats_after = portal.stats()["by_endpoint"]

    assert second.leads_written == 0 and second.leads_unchanged == second.leads_scored
    assert second.newly_qualified == 0 and second.workflows_triggered == 0
    assert stats_after.get("POST /crm/v3/objects/contacts/batch/update") == stats_before.get(
        "POST /crm/v3/objects/contacts/batch/update"
    )
    # incremental: the search endpoint, not the full list
    assert stats_after.get("GET /crm/v3/objects/contacts") == stats_before.get("GET /crm/v3/objects/contacts")
    assert stats_after.get("POST /crm/v3/objects/contacts/search", 0) > stats_before.get(
        "POST /crm/v3/objects/contacts/search", 0
    )
    assert second.api_calls < first.api_calls
    # records read back only because leadsync wrote them: their activities come from the cache
    assert second.own_writes_read_back == second.leads_read
    assert {k: v for k, v in stats_after.items() if "associations" in k or "{objectType}/batch/read" in k} == {
        k: v for k, v in stats_before.items() if "associations" in k or "{objectType}/batch/read" in k
    }


def test_engagement_between_passes_is_picked_up(portal: HubSpotSandboxServer, pipeline: SyncPipeline) -> None:
    pipeline.run_once()
    cold = [i for i, row in all_contacts(portal, ["leadsync_grade"]).items() if row["leadsync_grade"] == "cold"][:5]
    scores = {i: int(all_contacts(portal, ["leadsync_score"])[i]["leadsync_score"]) for i in cold}
    for contact_id in cold:
        portal.portal.track_engagement(
            contact_id,
            {
                "hs_analytics_num_page_views": "60",
                "hs_analytics_num_visits": "14",
                "num_conversion_events": "3",
                "hs_email_click": "9",
                "hs_analytics_last_visit_timestamp": format_time(datetime.now(UTC)),
            },
        )
    summary = pipeline.run_once()
    after = all_contacts(portal, ["leadsync_score"])
    assert summary.leads_written >= 1
    assert all(int(after[i]["leadsync_score"]) > scores[i] for i in cold)


def test_free_email_scores_lower_than_company_email(portal: HubSpotSandboxServer, pipeline: SyncPipeline) -> None:
    base = {
        "firstname": "Dana",
        "lastname": "Twin",
        "jobtitle": "VP of Engineering",
        "company": "Acme Robotics",
        "numemployees": "500-1000",
        "industry": "COMPUTER_SOFTWARE",
        "country": "United States",
    }
    gmail = portal.portal.create_contact(base | {"email": "dana.twin@gmail.com"})
    company = portal.portal.create_contact(base | {"email": "dana.twin@acmerobotics.com"})
    pipeline.run_once()
    rows = all_contacts(portal, ["leadsync_score", "leadsync_reasons"])
    assert int(rows[gmail]["leadsync_score"]) < int(rows[company]["leadsync_score"])
    assert "free" in rows[gmail]["leadsync_reasons"].lower()


def test_dry_run_writes_nothing_and_keeps_no_state(portal: HubSpotSandboxServer, pipeline: SyncPipeline) -> None:
    summary = pipeline.run_once(dry_run=True)
    assert summary.leads_scored == 600 and summary.leads_written == 600  # would write
    assert "POST /crm/v3/objects/contacts/batch/update" not in portal.stats()["by_endpoint"]
    assert not any(row.get("leadsync_score") for row in all_contacts(portal, ["leadsync_score"]).values())
    assert pipeline.store.get_watermark(pipeline.stream) is None
    assert pipeline.store.last_runs() == []


def test_properties_are_created_once(portal: HubSpotSandboxServer, pipeline: SyncPipeline) -> None:
    first = pipeline.run_once()
    second = pipeline.run_once()
    assert "leadsync_score" in first.properties_created and second.properties_created == []
    prop = portal.client().crm.properties.core_api.get_by_name("contacts", "leadsync_grade")
    assert prop.group_name == "leadsync" and {o.value for o in prop.options} == {"hot", "warm", "cold"}


def test_workflow_enrollment_fires_once_per_qualification(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=300, seed=5, now=None)
    pipe, store = make_pipeline(
        server,
        f"sqlite:///{tmp_path / 's.db'}",
        hubspot={"access_token": server.token, "base_url": server.url, "workflow_id": 4242},
    )
    try:
        first = pipe.run_once()
        pipe.run_once()
        pipe.run_once(full=True)
    finally:
        store.close()
    enrolled = server.portal.enrollments()
    emails = [e["email"] for e in enrolled]
    assert first.newly_qualified > 0
    assert len(emails) == len(set(emails)) == first.workflows_triggered
    assert all(str(e["workflowId"]) == "4242" for e in enrolled)
