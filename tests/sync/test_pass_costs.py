"""What a pass costs in API calls, counted by the HubSpot sandbox itself (``/__sandbox/stats``) over real HTTP.

Changed scores are written in full batches across the pass, activities read in full batches and only for
contacts that changed, leadsync's own write-backs cost nothing after the search page that returns them, the
overlap window does not re-read leadsync's own write phase, and pacing follows the portal's headers.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import RecordUpdate, WriteResult
from connectors.sandbox.hubspot import HubSpotSandboxServer
from sync.pipeline import PassInterrupted, describe_rate_limit
from tests.sync.test_hubspot_sync import all_contacts, make_pipeline

Factory = Callable[..., HubSpotSandboxServer]
WRITE = "POST /crm/v3/objects/contacts/batch/update"
SEARCH = "POST /crm/v3/objects/contacts/search"
ASSOCIATIONS = "POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read"


def calls(server: HubSpotSandboxServer) -> dict[str, int]:
    return dict(server.stats()["by_endpoint"])


def spent(before: dict[str, int], after: dict[str, int], endpoint: str) -> int:
    return after.get(endpoint, 0) - before.get(endpoint, 0)


def engage(server: HubSpotSandboxServer, ids: list[str]) -> None:
    """Page views on each contact (they move its score) and a logged call on every other one."""
    for n, contact_id in enumerate(ids):
        current = int((server.portal.contact(contact_id) or {}).get("hs_analytics_num_page_views") or 0)
        server.portal.track_engagement(contact_id, {"hs_analytics_num_page_views": str(current + 60)})
        if n % 2 == 0:
            server.portal.add_engagement(contact_id, "call")


def test_changes_spread_over_the_pass_are_written_and_read_in_full_batches(
    hubspot_sandbox_factory: Factory, store_url: str
) -> None:
    server = hubspot_sandbox_factory(contacts=2_500, seed=31, now=None)
    pipe, store = make_pipeline(server, store_url)
    pipe.recheck_per_pass = 0  # the outcome re-check reads deal associations on purpose (test_outcome_recheck)
    try:
        pipe.run_once()
        pipe.run_once()  # reads the full sync's own write-backs: nothing else
        changed = sorted(random.Random(31).sample(server.portal.contact_ids(), 250), key=int)
        assert int(changed[-1]) - int(changed[0]) > 2_000  # spread over the whole id range (many pages)
        engage(server, changed)
        before = calls(server)
        third = pipe.run_once()
        after = calls(server)
        scores = store.get_scores(changed)
    finally:
        store.close()
    assert third.leads_read == 250 and third.own_writes_read_back == 0
    assert third.leads_written > 100
    # 2,500 contacts read 200 a page: across 2 pages, the changed scores go out 100 a call, not page by page
    assert spent(before, after, WRITE) == math.ceil(third.leads_written / 100)
    # one associations read per activity type (4) and one for the deals of the outcomes: all 250 in one batch
    assert spent(before, after, ASSOCIATIONS) == 5
    rows = all_contacts(server, ["leadsync_score"])
    assert all(rows[i]["leadsync_score"] == str(scores[i].total) for i in changed)


def test_own_write_backs_cost_no_activity_read_scoring_or_write_and_are_read_back_once(
    hubspot_sandbox_factory: Factory, store_url: str
) -> None:
    server = hubspot_sandbox_factory(contacts=900, seed=32, now=None)
    pipe, store = make_pipeline(server, store_url)
    pipe.recheck_per_pass = 0
    try:
        first = pipe.run_once()
        before = calls(server)
        second = pipe.run_once()
        middle = calls(server)
        third = pipe.run_once()
        after = calls(server)
    finally:
        store.close()
    assert first.leads_written == 900
    assert second.leads_read == second.own_writes_read_back == 900
    assert second.leads_scored == second.leads_written == 0
    assert spent(before, middle, SEARCH) == math.ceil(900 / 200)  # the search pages, nothing else
    assert spent(before, middle, ASSOCIATIONS) == spent(before, middle, WRITE) == 0
    # the third pass's window starts where the index had caught up with those writes: not read again
    assert third.leads_read == 0 and spent(middle, after, SEARCH) == 1
    assert third.window_start is not None and second.indexed_through is not None
    assert datetime.fromisoformat(third.window_start) == datetime.fromisoformat(second.indexed_through)
    assert datetime.fromisoformat(third.window_start) > datetime.fromisoformat(second.window_start or "")


def test_a_change_between_read_and_write_is_not_taken_for_an_echo(
    hubspot_sandbox_factory: Factory, store_url: str
) -> None:
    """The write then returns a modification time after the change: the tracked properties tell them apart."""
    server = hubspot_sandbox_factory(contacts=300, seed=33, now=None)
    pipe, store = make_pipeline(server, store_url)
    pipe.recheck_per_pass = 0
    target = server.portal.contact_ids()[5]
    try:
        pipe.run_once()
        pipe.run_once()  # the full sync's own write-backs
        engage(server, [target])
        real_write = pipe.connector.write

        def write_after_a_call(updates: list[RecordUpdate]) -> WriteResult:
            server.portal.add_engagement(target, "meeting")  # logged while leadsync scores: after its read
            return real_write(updates)

        pipe.connector.write = write_after_a_call  # type: ignore[method-assign]
        second = pipe.run_once()
        pipe.connector.write = real_write  # type: ignore[method-assign]
        third = pipe.run_once()
        cached = store.get_leads([target])[target]
    finally:
        store.close()
    assert second.leads_read - second.own_writes_read_back == 1 and second.leads_written == 1
    assert third.leads_read >= 1 and third.own_writes_read_back < third.leads_read  # read again, not skipped
    assert any(a["kind"] == "meeting" for a in cached.activities)


def test_a_crm_echo_after_the_write_is_recognised_by_its_properties(
    hubspot_sandbox_factory: Factory, store_url: str
) -> None:
    """HubSpot may move the modification time after a write (its own calculated properties): nothing that
    leadsync tracks changed, so the record costs nothing."""
    server = hubspot_sandbox_factory(contacts=400, seed=34, now=None)
    pipe, store = make_pipeline(server, store_url)
    pipe.recheck_per_pass = 0
    try:
        pipe.run_once()
        pipe.run_once()
        echoed = server.portal.contact_ids()[:50]
        written = store.get_written(echoed)
        assert all("_crm_modified_at" in written[i] for i in echoed)
        server.portal.bulk_stamp(echoed)  # the time moves, no value does
        before = calls(server)
        third = pipe.run_once()
        after = calls(server)
    finally:
        store.close()
    assert third.leads_read == third.own_writes_read_back >= 50
    assert third.leads_scored == 0 and spent(before, after, ASSOCIATIONS) == spent(before, after, WRITE) == 0


def test_a_lagging_index_moves_the_next_window_back_to_the_first_write_it_did_not_show(
    hubspot_sandbox_factory: Factory, store_url: str
) -> None:
    # the lag outlasts the lagging pass even on a loaded machine (4 s did not, at a load of 13 on 2 cores)
    server = hubspot_sandbox_factory(contacts=300, seed=35, now=None, index_lag_s=10.0)
    pipe, store = make_pipeline(server, store_url)
    pipe.recheck_per_pass = 0
    try:
        full = pipe.run_once()
        lagging = pipe.run_once()  # at once: the index does not show the full sync's writes yet
        time.sleep(10.1)
        caught_up = pipe.run_once()
    finally:
        store.close()
    assert full.leads_written == 300
    assert lagging.indexed_through is not None and lagging.watermark is not None
    assert datetime.fromisoformat(lagging.indexed_through) < datetime.fromisoformat(lagging.watermark)
    assert caught_up.window_start == lagging.indexed_through
    assert lagging.leads_read < 300 <= lagging.leads_read + caught_up.leads_read  # the lagging ones come now
    # read back once the index shows them, at no further cost
    assert caught_up.own_writes_read_back == caught_up.leads_read and caught_up.leads_scored == 0


def test_an_interrupted_pass_commits_only_scores_whose_write_went_out(
    hubspot_sandbox_factory: Factory, store_url: str
) -> None:
    """Held scores are committed with their write: a pass stopped between two write batches leaves the
    unwritten ones to the next pass (rescored and written), and each qualification triggers once."""
    server = hubspot_sandbox_factory(contacts=450, seed=36, now=None)
    pipe, store = make_pipeline(server, store_url)
    pipe.recheck_per_pass = 0
    real_write = pipe.connector.write
    batches: list[int] = []

    def stop_at_the_second_batch(updates: list[RecordUpdate]) -> WriteResult:
        if batches:
            raise PassInterrupted("stopped between two write batches")
        batches.append(len(updates))
        return real_write(updates)

    try:
        pipe.connector.write = stop_at_the_second_batch  # type: ignore[method-assign]
        with pytest.raises(PassInterrupted):
            pipe.run_once()
        stored = store.get_scores(server.portal.contact_ids())
        written = store.get_written(server.portal.contact_ids())
        assert batches == [400]  # the first 1,000-record group of 450: 4 full batches in one call
        assert set(stored) == set(written) and len(written) == 400
        pipe.connector.write = real_write  # type: ignore[method-assign]
        again = pipe.run_once()
        outbox = store.outbox_counts()
    finally:
        store.close()
    assert again.leads_written == 50
    rows = all_contacts(server, ["leadsync_score", "leadsync_qualified_at"])
    assert all(r["leadsync_score"] not in (None, "") for r in rows.values())
    qualified = sum(1 for r in rows.values() if r["leadsync_qualified_at"])
    assert sum(outbox.values()) == qualified


def test_pacing_follows_the_portals_own_limit_without_a_429(hubspot_sandbox_factory: Factory, store_url: str) -> None:
    server = hubspot_sandbox_factory(contacts=250, seed=37, now=None, rate_limit=20)
    pipe, store = make_pipeline(
        server, store_url, hubspot={"access_token": server.token, "base_url": server.url, "rate_limit_margin": 0.1}
    )
    pipe.recheck_per_pass = 0
    started = time.monotonic()
    try:
        summary = pipe.run_once()
        (run,) = store.last_runs(1)
    finally:
        store.close()
    elapsed = time.monotonic() - started
    stats = server.stats()
    assert stats["throttled"] == 0  # the configured default (100/10 s) would have hit the portal's 20
    assert stats["requests"] > 20 and elapsed >= 10 * ((stats["requests"] - 2) // 18)
    limit = summary.rate_limit
    assert limit is not None and run.summary["rate_limit"] == limit
    assert (limit["max_calls"], limit["portal_max"], limit["source"]) == (18, 20, "portal")
    assert "18 calls per 10 s (the CRM's X-HubSpot-RateLimit-Max 20 less the 0.1 margin)" in describe_rate_limit(limit)


def test_a_configured_budget_is_a_ceiling_and_other_apps_use_of_the_window_slows_us(
    hubspot_sandbox_factory: Factory, store_url: str
) -> None:
    server = hubspot_sandbox_factory(contacts=10, seed=38, now=None, rate_limit=100)
    pipe, store = make_pipeline(
        server, store_url, hubspot={"access_token": server.token, "base_url": server.url, "rate_limit_per_10s": 40}
    )
    other = server.client().crm.contacts.basic_api
    connector = pipe.connector
    try:
        for _ in range(30):  # another app on the same portal spends 30 of the window
            other.get_page(limit=1)
        connector.describe()
        seen = connector.limit_info()  # type: ignore[attr-defined]
        allowed = connector.limiter.allowed  # type: ignore[attr-defined]
        summary = pipe.run_once()
    finally:
        store.close()
    assert seen["others"] >= 25 and allowed == 40 - seen["others"]  # their calls are taken off our share
    limit = summary.rate_limit
    assert limit is not None
    assert (limit["max_calls"], limit["portal_max"], limit["source"]) == (40, 100, "portal+config")
    assert "the configured budget; the CRM allows 100" in describe_rate_limit(limit)
    assert describe_rate_limit(None).startswith("unknown")


def test_a_quiet_pass_applies_the_overlap_but_never_moves_before_the_proven_index_point(
    hubspot_sandbox_factory: Factory, store_url: str
) -> None:
    server = hubspot_sandbox_factory(contacts=50, seed=39, now=None)
    pipe, store = make_pipeline(server, store_url, sync={"settle_s": 0, "overlap_s": 60})
    pipe.recheck_per_pass = 0
    try:
        pipe.run_once()
        time.sleep(1.1)  # past the full sync's last write second, so the next window holds all of them
        second = pipe.run_once()  # reads the full sync's write-backs: the index is proven through its end
        time.sleep(1.1)
        quiet = pipe.run_once()  # nothing written in its window: no evidence of its own
        after = pipe.run_once()
    finally:
        store.close()
    assert second.indexed_through is not None and quiet.watermark is not None and after.window_start is not None
    proven = datetime.fromisoformat(second.indexed_through)
    overlap_start = datetime.fromisoformat(quiet.watermark) - timedelta(seconds=60)
    assert proven > overlap_start  # the case that matters: the plain overlap would re-read the write-backs
    assert datetime.fromisoformat(quiet.indexed_through or "") == proven
    assert datetime.fromisoformat(after.window_start) == proven
    assert datetime.fromisoformat(after.window_start).tzinfo == UTC


def test_metrics_show_the_limit_in_force_and_its_source(hubspot_sandbox_factory: Factory) -> None:
    from connectors.hubspot import HubSpotConnector
    from sync.metrics import SyncMetrics

    server = hubspot_sandbox_factory(contacts=5, seed=40, rate_limit=190)
    hub = HubSpotConnector(access_token=server.token, base_url=server.url)
    metrics = SyncMetrics(crm="hubspot", stream="hubspot:contacts")
    hub.on_call(metrics.on_api_call)
    metrics.rate_limit_from(hub.limit_info)

    def sample(source: str) -> float | None:
        return metrics.registry.get_sample_value("leadsync_rate_limit_calls", {"crm": "hubspot", "source": source})

    assert sample("config") == 100  # before the portal said anything: the default budget
    hub.describe()
    metrics.refresh_rate_limit()  # the call hook runs before the answer's headers are read
    assert sample("portal") == 171 and sample("config") is None
    headroom = metrics.registry.get_sample_value("leadsync_rate_limit_headroom_ratio", {"crm": "hubspot"})
    assert headroom is not None and 1 - 1 / 171 - 1e-9 <= headroom < 1


def test_a_record_the_overlap_reads_again_unchanged_costs_no_activity_read(
    hubspot_sandbox_factory: Factory, store_url: str
) -> None:
    server = hubspot_sandbox_factory(contacts=60, seed=41, now=None)
    pipe, store = make_pipeline(server, store_url, sync={"settle_s": 0, "overlap_s": 60})
    pipe.recheck_per_pass = 0
    target = server.portal.contact_ids()[3]
    try:
        pipe.run_once()
        time.sleep(1.1)
        pipe.run_once()
        server.portal.update_contact(target, {"firstname": "Renamed"})  # nothing leadsync scores
        time.sleep(1.1)
        changed = pipe.run_once()  # read, activities read, rescored: the same score, nothing written
        before = calls(server)
        again = pipe.run_once()  # no own write to judge the index by: the overlap reads it again
        after = calls(server)
    finally:
        store.close()
    assert changed.leads_read - changed.own_writes_read_back == 1 and changed.leads_written == 0
    # whether told by its own write's echo or by being as last read, nothing re-read costs more than its page
    assert again.leads_read >= 1 and again.leads_scored == 0
    assert again.own_writes_read_back + again.unchanged_read_back == again.leads_read
    assert spent(before, after, ASSOCIATIONS) == 0
