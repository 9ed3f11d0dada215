"""Webhooks end to end: the sandboxes post signed notifications over real HTTP to an in-process ``leadsync run``,
whose micro-passes read the records by id and write their scores back within seconds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry

from connectors.sandbox._webhooks import hubspot_signature_v3, outbound_message
from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.salesforce import SalesforceSandboxServer
from leadsync.app import build_app
from leadsync.config import parse_config
from leadsync.runner import build_daemon
from sync.daemon import Daemon
from sync.state import StateStore

SECRET = "app-client-secret-4f1c-SHOULD-NOT-LEAK"
SEARCH = "POST /crm/v3/objects/contacts/search"
BATCH_READ = "POST /crm/v3/objects/contacts/batch/read"


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@contextmanager
def running(config: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """An in-process daemon serving on a free port, stopped (and its store closed) afterwards."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = build_app(parse_config(config, source="<test>"))
    store = StateStore(app.config.state.url)
    daemon = build_daemon(app, store, port=0, host="127.0.0.1")
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: daemon._synced.is_set(), 60), "the first scheduled pass did not finish"
        yield daemon
    finally:
        daemon.request_stop("test over")
        thread.join(30)
        store.close()


def wait_for(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    return check()


def hubspot_config(server: HubSpotSandboxServer, tmp_path: Path, **webhooks: Any) -> dict[str, Any]:
    return {
        "crm": "hubspot",
        "hubspot": {"access_token": "${HUBSPOT_TOKEN}", "base_url": server.url, "rate_limit_per_10s": 5000},
        "sync": {"settle_s": 0, "overlap_s": 0},
        "schedule": {"sync": {"every": "1h"}},  # the first pass at start; after it only micro-passes
        "run": {"host": "127.0.0.1", "port": 0, "probe_interval_s": 1},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "webhooks": {"enabled": True, "hubspot_client_secret": "${HUBSPOT_APP_SECRET}", "batch_window_s": 0.5}
        | webhooks,
    }


def test_hubspot_change_is_scored_within_seconds_by_a_batch_read(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = hubspot_sandbox_factory(contacts=40, seed=3)
    env = {"HUBSPOT_TOKEN": server.token, "HUBSPOT_APP_SECRET": SECRET}
    with running(hubspot_config(server, tmp_path), env, monkeypatch) as daemon:
        url = f"http://127.0.0.1:{daemon.port}/webhooks/hubspot"
        sender = server.sandbox.enable_webhooks(url, SECRET)
        portal = server.portal
        registry = daemon.metrics.registry
        before = server.stats()["by_endpoint"]
        contact_id = portal.contact_ids()[5]
        old = portal.contact(contact_id) or {}
        title = "Student" if "student" not in (old.get("jobtitle") or "").lower() else "VP of Sales"
        portal.update_contact(contact_id, {"jobtitle": title})
        changed = wait_for(
            lambda: (portal.contact(contact_id) or {}).get("leadsync_reasons") != old.get("leadsync_reasons"), 15
        )
        assert changed, "the change was not scored and written back"
        assert sender.flush() and wait_for(
            lambda: metric(registry, "leadsync_webhook_events_total", crm="hubspot", result="own_write") > 0, 10
        ), "leadsync's own write was notified back and should have cost no read"
        time.sleep(1)  # one more batch window: any read the echo caused would show now
        after = server.stats()["by_endpoint"]
        assert after.get(SEARCH, 0) == before.get(SEARCH, 0), "a micro-pass must not search (index lag)"
        assert after.get(BATCH_READ, 0) - before.get(BATCH_READ, 0) == 1, "one batch read for the one change"
        assert metric(registry, "leadsync_event_to_write_seconds_count", crm="hubspot") >= 1
        assert metric(registry, "leadsync_event_to_write_seconds_sum", crm="hubspot") < 10
        assert metric(registry, "leadsync_runs_total", job="webhook", status="ok") >= 1


def signed(url: str, body: bytes, *, secret: str = SECRET, age_s: float = 0) -> dict[str, str]:
    ts = int((time.time() - age_s) * 1000)
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": str(ts),
        "X-HubSpot-Signature-v3": hubspot_signature_v3(secret, "POST", url, body, ts),
    }


def test_forged_replayed_and_malformed_hubspot_requests_are_refused_and_counted(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = hubspot_sandbox_factory(contacts=10, seed=4)
    env = {"HUBSPOT_TOKEN": server.token, "HUBSPOT_APP_SECRET": SECRET}
    with running(hubspot_config(server, tmp_path), env, monkeypatch) as daemon:
        url = f"http://127.0.0.1:{daemon.port}/webhooks/hubspot"
        contact = int(server.portal.contact_ids()[0])
        event = [{"objectId": contact, "occurredAt": int(time.time() * 1000), "subscriptionType": "contact.creation"}]
        body = json.dumps(event).encode()
        cases = {
            "forged": (body, signed(url, body, secret="not-the-secret"), 401),
            "replayed": (body, signed(url, body, age_s=301), 401),
            "unsigned": (body, {"Content-Type": "application/json"}, 401),
            "malformed": (b'{"not": "a list"}', signed(url, b'{"not": "a list"}'), 400),
        }
        for result, (data, headers, status) in cases.items():
            answer = requests.post(url, data=data, headers=headers, timeout=5)
            assert answer.status_code == status, result
            assert SECRET not in answer.text
            registry = daemon.metrics.registry
            assert metric(registry, "leadsync_webhook_events_total", crm="hubspot", result=result) == 1, result
        tampered = signed(url, body)
        assert (
            requests.post(url, data=body.replace(b"creation", b"deletion"), headers=tampered, timeout=5).status_code
            == 401
        )
        assert len(daemon.webhooks.queue) == 0 if daemon.webhooks else False
        ok = requests.post(url, data=body, headers=signed(url, body), timeout=5)
        assert ok.status_code == 200 and ok.json() == {"accepted": 1}
        text = requests.get(f"http://127.0.0.1:{daemon.port}/metrics", timeout=5).text
        assert 'leadsync_webhook_events_total{crm="hubspot",result="forged"} 2.0' in text
        assert SECRET not in text


def salesforce_config(server: SalesforceSandboxServer, tmp_path: Path) -> dict[str, Any]:
    return {
        "crm": "salesforce",
        "salesforce": {
            "login_url": server.url,
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "ca_file": server.ca_pem_path,
            "rate_limit_per_10s": 5000,
        },
        "sync": {"settle_s": 0, "overlap_s": 0},
        "schedule": {"sync": {"every": "1h"}},
        "run": {"host": "127.0.0.1", "port": 0, "probe_interval_s": 1},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "webhooks": {
            "enabled": True,
            "salesforce_secret": "${SF_WEBHOOK_SECRET}",
            "salesforce_org_id": server.org.org_id,
            "batch_window_s": 0.5,
        },
    }


def test_salesforce_outbound_message_is_acknowledged_and_scored(
    salesforce_sandbox_factory: Callable[..., SalesforceSandboxServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = salesforce_sandbox_factory(leads=30, contacts=0, seed=2)
    with running(salesforce_config(server, tmp_path), {"SF_WEBHOOK_SECRET": SECRET}, monkeypatch) as daemon:
        url = f"http://127.0.0.1:{daemon.port}/webhooks/salesforce"
        org = server.org
        lead_id = next(r["Id"] for r in org.records("Lead") if not r.get("IsConverted"))
        old = org.record("Lead", lead_id) or {}
        senders = server.sandbox.enable_webhooks(url, SECRET)
        title = "Student" if "student" not in str(old.get("Title") or "").lower() else "VP of Sales"
        org.update_record("Lead", lead_id, {"Title": title})
        changed = wait_for(
            lambda: (org.record("Lead", lead_id) or {}).get("Leadsync_Reasons__c") != old.get("Leadsync_Reasons__c"),
            15,
        )
        assert changed, "the outbound message's lead was not scored and written back"
        assert all(s.flush() for s in senders.values()) and all(s.failed == 0 for s in senders.values())
        registry = daemon.metrics.registry
        assert wait_for(
            lambda: metric(registry, "leadsync_webhook_events_total", crm="salesforce", result="own_write") > 0, 10
        )
        # the Ack, and a message of another org refused even with the secret
        body = outbound_message(org.org_id, "04k0", "Lead", [{"id": "04l1", "fields": {"Id": lead_id}}])
        ack = requests.post(
            url, data=body, headers={"Content-Type": "text/xml", "X-Leadsync-Secret": SECRET}, timeout=5
        )
        assert ack.status_code == 200 and b"<Ack>true</Ack>" in ack.content
        other = outbound_message("00D000000000001AAA", "04k0", "Lead", [{"id": "04l1", "fields": {"Id": lead_id}}])
        refused = requests.post(url, data=other, headers={"X-Leadsync-Secret": SECRET}, timeout=5)
        assert refused.status_code == 401
        wrong = requests.post(url, data=body, headers={"X-Leadsync-Secret": "guess"}, timeout=5)
        assert wrong.status_code == 401
        flow = requests.post(f"{url}?secret={SECRET}", json={"records": [{"Id": lead_id}]}, timeout=5)
        assert flow.status_code == 200 and flow.json() == {"accepted": 1}
        assert metric(registry, "leadsync_webhook_events_total", crm="salesforce", result="forged") == 2


def test_a_full_queue_still_answers_2xx_and_runs_the_incremental_pass_at_once(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = hubspot_sandbox_factory(contacts=10, seed=8)
    env = {"HUBSPOT_TOKEN": server.token, "HUBSPOT_APP_SECRET": SECRET}
    with running(hubspot_config(server, tmp_path, queue_size=1), env, monkeypatch) as daemon:
        url = f"http://127.0.0.1:{daemon.port}/webhooks/hubspot"
        registry = daemon.metrics.registry
        assert metric(registry, "leadsync_runs_total", job="sync", status="ok") == 1
        ids = [int(i) for i in server.portal.contact_ids()[:3]]
        now = int(time.time() * 1000)
        events = [{"objectId": i, "occurredAt": now, "subscriptionType": "contact.propertyChange"} for i in ids]
        body = json.dumps(events + events[:1]).encode()  # a duplicate too: merged, not dropped
        answer = requests.post(url, data=body, headers=signed(url, body), timeout=5)
        assert answer.status_code == 200 and answer.json() == {"accepted": 2}
        assert metric(registry, "leadsync_webhook_events_total", crm="hubspot", result="overflow") == 2
        assert metric(registry, "leadsync_webhook_events_total", crm="hubspot", result="duplicate") == 1
        # the dropped ids are the scheduled pass's: it runs now instead of in an hour
        assert wait_for(lambda: metric(registry, "leadsync_runs_total", job="sync", status="ok") >= 2, 30)


def test_a_standby_replica_answers_2xx_and_queues_nothing(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = hubspot_sandbox_factory(contacts=10, seed=9)
    env = {"HUBSPOT_TOKEN": server.token, "HUBSPOT_APP_SECRET": SECRET}
    config = hubspot_config(server, tmp_path)
    with running(config, env, monkeypatch) as leader:
        app = build_app(parse_config(config, source="<test>"))
        store = StateStore(app.config.state.url)
        standby = build_daemon(app, store, port=0, host="127.0.0.1")
        thread = threading.Thread(target=standby.run, kwargs={"install_signals": False}, daemon=True)
        thread.start()
        try:
            assert wait_for(lambda: standby._started.is_set(), 30) and not standby.lease.held()
            url = f"http://127.0.0.1:{standby.port}/webhooks/hubspot"
            contact = int(server.portal.contact_ids()[0])
            body = json.dumps([{"objectId": contact, "subscriptionType": "contact.creation"}]).encode()
            answer = requests.post(url, data=body, headers=signed(url, body), timeout=5)
            assert answer.status_code == 200 and answer.json() == {"accepted": 0}
            registry = standby.metrics.registry
            assert metric(registry, "leadsync_webhook_events_total", crm="hubspot", result="standby") == 1
            assert standby.webhooks is not None and len(standby.webhooks.queue) == 0
            assert leader.lease.held()
        finally:
            standby.request_stop("test over")
            thread.join(30)
            store.close()
