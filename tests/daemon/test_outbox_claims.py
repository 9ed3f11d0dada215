"""The outbox's crash window, in-process and deterministic: a trigger sent just before the process died is
found delivered by the next pass (not sent again); one claimed but never sent is sent. On Salesforce, which
cannot say whether a Flow ran, an interrupted delivery is never sent again and says so."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.salesforce import SalesforceSandboxServer
from connectors.sandbox.synthetic import generate_people
from leadsync.app import build_app
from leadsync.config import parse_config
from sync.pipeline import SyncPipeline
from sync.state import StateStore
from tests.daemon._harness import SCORING, SCORING_NOW, WORKFLOW_ID, crm_section, enrollments, seed, triggers

Factory = Callable[..., HubSpotSandboxServer]
SfFactory = Callable[..., SalesforceSandboxServer]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (BaseException, so that no handler records anything)."""


def pipeline(server: HubSpotSandboxServer, state: Path) -> tuple[SyncPipeline, StateStore]:
    config = parse_config(
        {
            "crm": "hubspot",
            "hubspot": {"access_token": server.token, "base_url": server.url, "workflow_id": WORKFLOW_ID},
            "sync": {"settle_s": 0, "overlap_s": 0},
            "state": {"url": f"sqlite:///{state}"},
        }
    )
    app = build_app(config)
    store = app.store()
    pipe = app.pipeline(store)
    pipe.scoring_clock = lambda: SCORING_NOW
    return pipe, store


@pytest.mark.parametrize("dies", ["after_send", "before_send"])
def test_a_trigger_interrupted_by_a_crash_fires_exactly_once(
    hubspot_sandbox_factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies: str
) -> None:
    server = hubspot_sandbox_factory(contacts=150, seed=9)
    first, store = pipeline(server, tmp_path / "state.db")
    connector: Any = first.connector
    real_trigger = connector.trigger
    calls = {"n": 0}

    def dying_trigger(record_id: str, email: str | None) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            if dies == "after_send":
                real_trigger(record_id, email)  # the CRM has it; the outcome is never recorded
            raise Killed
        real_trigger(record_id, email)

    monkeypatch.setattr(connector, "trigger", dying_trigger)
    with pytest.raises(Killed):
        first.run_once()
    store.close()
    interrupted = [i for i in StateStore(f"sqlite:///{tmp_path / 'state.db'}").outbox_items() if i.claimed_at]
    assert any(i.status == "pending" for i in interrupted)  # claimed, outcome unknown

    second, store = pipeline(server, tmp_path / "state.db")  # the next process
    checks: list[str] = []
    real_check = second.connector.trigger_delivered  # type: ignore[attr-defined]
    monkeypatch.setattr(second.connector, "trigger_delivered", lambda r, e: checks.append(r) or real_check(r, e))
    summary = second.run_once()
    store.close()

    enrolled = enrollments(server)
    assert enrolled and max(enrolled.values()) == 1
    assert len(checks) == 1  # only the interrupted item was checked against the CRM
    # the two delivered before the crash are done; the interrupted one is confirmed (sent or found) now
    assert summary.workflows_triggered == len(enrolled) - 2
    outbox = StateStore(f"sqlite:///{tmp_path / 'state.db'}").outbox_counts()
    assert outbox == {"pending": 0, "done": len(enrolled), "failed": outbox["failed"]}


def test_claims_are_compare_and_set(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    store = StateStore.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        store.enqueue_triggers([("1", "a@b.co", datetime(2025, 3, 1, tzinfo=UTC))])
        item = store.pending_triggers()[0]
        assert store.claim_trigger(item, "replica-a")
        assert not store.claim_trigger(item, "replica-b")  # b read it before a's claim: b must not send
        fresh = store.pending_triggers()[0]
        assert fresh.claimed_by == "replica-a" and fresh.claimed_at is not None
        assert store.claim_trigger(fresh, "replica-b")  # a died: b takes the claim over (and checks the CRM)
        store.mark_triggered(fresh.id)
        assert not store.claim_trigger(store.outbox_items()[0], "replica-c")  # done items are never claimed
    finally:
        store.close()


# ---- Salesforce: a Flow launched through the outbox, and no way to ask Salesforce whether it ran ------------

FLOW_CALLS = "POST /services/data/v{version}/actions/custom/flow/{flow}"


def sf_pipeline(server: SalesforceSandboxServer, state: Path, **salesforce: Any) -> tuple[SyncPipeline, StateStore]:
    section = crm_section(server, secrets_in_env=False) | salesforce
    config = parse_config(
        {
            "crm": "salesforce",
            "salesforce": section,
            "scoring": SCORING["salesforce"],
            "sync": {"settle_s": 0, "overlap_s": 0},
            "state": {"url": f"sqlite:///{state}"},
        }
    )
    app = build_app(config)
    store = app.store()
    pipe = app.pipeline(store)
    pipe.scoring_clock = lambda: SCORING_NOW
    return pipe, store


@pytest.mark.parametrize("dies", ["after_send", "before_send"])
def test_a_flow_interrupted_by_a_crash_is_never_launched_twice_and_says_so(
    salesforce_sandbox_factory: SfFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies: str
) -> None:
    server = salesforce_sandbox_factory(seed=9)
    seed(server, generate_people(160, seed=9, now=SCORING_NOW))
    first, store = sf_pipeline(server, tmp_path / "state.db")
    connector: Any = first.connector
    real_trigger = connector.trigger
    calls: list[str] = []

    def dying_trigger(record_id: str, email: str | None) -> None:
        calls.append(record_id)
        if len(calls) == 3:
            if dies == "after_send":
                real_trigger(record_id, email)  # Salesforce ran the Flow; the outcome is never recorded
            raise Killed
        real_trigger(record_id, email)

    monkeypatch.setattr(connector, "trigger", dying_trigger)
    with pytest.raises(Killed):
        first.run_once()
    store.close()
    interrupted = calls[2]

    second, store = sf_pipeline(server, tmp_path / "state.db")  # the next process
    summary = second.run_once()
    items = {i.lead_id: i for i in store.outbox_items(limit=1000)}
    store.close()

    launched = triggers(server)
    assert launched and max(launched.values()) == 1, "a Flow was launched twice"
    assert (interrupted in launched) == (dies == "after_send")
    # the interrupted item is not sent again: it is failed, with a message saying why and what to do
    held = items[interrupted]
    assert held.status == "failed" and held.last_error is not None
    assert "delivery interrupted" in held.last_error and interrupted in held.last_error
    assert "cannot tell" in held.last_error
    # every other qualification was delivered, once
    assert {i for i, item in items.items() if item.status == "done"} == set(launched) - {interrupted}
    assert summary.workflows_triggered == len(items) - 3


def test_a_flow_call_salesforce_refused_with_an_error_is_sent_again_without_doubt(
    salesforce_sandbox_factory: SfFactory, tmp_path: Path
) -> None:
    server = salesforce_sandbox_factory(seed=9)
    seed(server, generate_people(160, seed=9, now=SCORING_NOW))
    # the first Flow call fails twice (max_retries 1): the pass puts the item back and comes to it again
    refused = server.sandbox.faults.schedule("503", FLOW_CALLS, nth=1, times=2)
    pipe, store = sf_pipeline(server, tmp_path / "state.db", max_retries=1)
    pipe.connector._retrying.wait.backoff.multiplier = 0.01  # type: ignore[attr-defined]
    summary = pipe.run_once()
    items = store.outbox_items(limit=1000)
    store.close()
    assert refused.fired == 2
    launched = triggers(server)
    assert launched and max(launched.values()) == 1
    # the 503 delivered nothing, so the claim was released: sent again, not held as an interrupted delivery
    assert [i.status for i in items] == ["done"] * len(items) and set(launched) == {i.lead_id for i in items}
    assert summary.workflows_triggered == len(items)


def test_a_flow_whose_answer_is_lost_after_it_ran_is_not_retried(
    salesforce_sandbox_factory: SfFactory, tmp_path: Path
) -> None:
    """The retry layer must not launch a Flow twice: Salesforce ran it, then its answer was cut short."""
    server = salesforce_sandbox_factory(seed=9)
    seed(server, generate_people(160, seed=9, now=SCORING_NOW))
    broken = server.sandbox.faults.schedule("corrupt", FLOW_CALLS, nth=1)  # the handler runs, the body is cut
    pipe, store = sf_pipeline(server, tmp_path / "state.db", max_retries=3)
    pipe.connector._retrying.wait.backoff.multiplier = 0.01  # type: ignore[attr-defined]
    summary = pipe.run_once()
    items = store.outbox_items(limit=1000)
    store.close()
    assert broken.fired == 1
    launched = triggers(server)
    assert launched and max(launched.values()) == 1, "a Flow was launched twice"
    held = [i for i in items if i.status == "failed"]
    assert len(held) == 1 and held[0].lead_id in launched  # it did run: held for a person, not sent again
    assert held[0].last_error is not None and "not retried or sent again" in held[0].last_error
    assert summary.workflows_triggered == len(items) - 1 == len(launched) - 1


def test_without_a_workflow_the_outbox_is_settled_without_claims_or_calls(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    """Workflows that react to the leadsync_* properties need no enrollment call: the pass settles the
    outbox in one statement instead of two commits per qualified lead, and calls nothing for it."""
    server = hubspot_sandbox_factory(contacts=150, seed=9)
    config = parse_config(
        {
            "crm": "hubspot",
            "hubspot": {"access_token": server.token, "base_url": server.url},
            "sync": {"settle_s": 0, "overlap_s": 0},
            "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        }
    )
    app = build_app(config)
    store = app.store()
    pipe = app.pipeline(store)
    pipe.scoring_clock = lambda: SCORING_NOW
    summary = pipe.run_once()
    items = store.outbox_items(limit=1000)
    store.close()
    assert summary.workflows_triggered == len(items) > 0  # the sandbox seeds qualified leads
    assert {(i.status, i.claimed_by) for i in items} == {("done", None)}
    assert not enrollments(server)
    assert not any("enrollments" in path for path in server.stats()["by_endpoint"])


def test_two_kills_at_the_commit_point_leave_no_lead_cached_but_unscored(
    hubspot_sandbox_factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass killed after its write landed, then the next one killed after finding nothing left to write:
    the lead cache and the scores commit together, or the third pass would take those leads as unchanged
    since read and never score them or trigger their workflow (seen in the 60-kill crash test)."""
    server = hubspot_sandbox_factory(contacts=0, seed=9)
    people = generate_people(120, seed=9, now=SCORING_NOW)
    seed(server, people[:20])
    state = tmp_path / "state.db"
    pipe, store = pipeline(server, state)
    pipe.run_once()  # a clean first pass: the next ones are incremental
    store.close()
    seed(server, people[20:])
    time.sleep(0.01)
    for _ in range(2):
        pipe, store = pipeline(server, state)
        monkeypatch.setattr(store, "commit_pass", lambda **_: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            pipe.run_once()
        monkeypatch.undo()
        store.close()
    pipe, store = pipeline(server, state)
    pipe.run_once()
    scored = {s.lead_id for s in store.get_scores(server.portal.contact_ids()).values()}
    qualified = {i.lead_id for i in store.outbox_items(limit=1000)}
    store.close()
    assert scored == set(server.portal.contact_ids())
    assert qualified and qualified == set(enrollments(server))
