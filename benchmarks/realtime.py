"""Near-real-time scoring through webhooks: change-to-write latency and API calls per changed contact.

Run: .venv/bin/python benchmarks/realtime.py [--crm hubspot|salesforce] [--rate 10] [--seconds 60]
     [--contacts 2000] [--window 2] [--attacks 20]

An in-process sandbox posts signed notifications over real HTTP to an in-process ``leadsync run`` (its
scheduled incremental pass runs once at start, then every 5 minutes, as in production): HubSpot
``contact.propertyChange`` webhooks (X-HubSpot-Signature-v3), or Salesforce Outbound Messages with the
shared secret. After that first pass, ``--rate`` records a second get a new job title (a change that moves
the score) for ``--seconds``. Measured:

* change -> write: from the change in the sandbox to leadsync's write of that record landing there (both
  seen synchronously by the sandbox's change hook), median and p99, over every change whose score moved;
* API calls per changed contact: every request the sandbox answered during the load (``/__sandbox/stats``),
  leadsync's own write-back notifications included, divided by the changes made;
* ``--attacks`` forged (wrong secret), replayed (timestamp 6 minutes old) and malformed (signed, not an
  event array) requests sent during the load: all must be refused (401/401/400) and counted in
  ``leadsync_webhook_events_total``, and none processed (the accepted events equal the sandbox's own).

Figures are printed, never asserted (the machine is shared); the targets are p99 < 5 s and <= 2.2 calls.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from connectors.sandbox._webhooks import WebhookSender, hubspot_signature_v3  # noqa: E402
from connectors.sandbox.hubspot import start_hubspot_sandbox  # noqa: E402
from connectors.sandbox.salesforce import start_salesforce_sandbox  # noqa: E402
from sync.webhooks.verify import salesforce_hmac  # noqa: E402

SECRET = "benchmark-webhook-secret"
TITLES = ("VP of Sales", "Student")
KINDS = ("forged", "replayed", "malformed")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


class HubSpotTarget:
    """The HubSpot sandbox: contacts, job titles, v3-signed webhooks."""

    crm = "hubspot"

    def __init__(self, contacts: int) -> None:
        self.server = start_hubspot_sandbox(contacts=contacts, seed=11)
        os.environ["BENCH_HUBSPOT_TOKEN"] = self.server.token
        self.section = {"access_token": "${BENCH_HUBSPOT_TOKEN}", "base_url": self.server.url}
        self.secret_key = "hubspot_client_secret"

    def enable(self, url: str, on_change: Callable[[str], None]) -> list[WebhookSender]:
        sender = self.server.sandbox.enable_webhooks(url, SECRET)  # replaces the portal's listeners: first
        self.server.portal.change_listeners.append(lambda contact_id, _ms, _values: on_change(str(contact_id)))
        return [sender]

    def ids(self) -> list[str]:
        return self.server.portal.contact_ids()

    def change(self, record_id: str) -> None:
        current = (self.server.portal.contact(record_id) or {}).get("jobtitle")
        self.server.portal.update_contact(record_id, {"jobtitle": TITLES[1] if current == TITLES[0] else TITLES[0]})

    def attack(self, url: str, record_id: str, kind: str) -> int:
        """One forged, replayed or malformed request; returns the status leadsync answered."""
        now_ms = int(time.time() * 1000)
        event = [{"objectId": int(record_id), "occurredAt": now_ms, "subscriptionType": "contact.propertyChange"}]
        body = json.dumps(event).encode()
        secret, ts = SECRET, now_ms
        if kind == "forged":
            secret = "a-guessed-secret"
        elif kind == "replayed":
            ts = now_ms - 360_000
        else:
            body = b'{"objectId": "not an array of events"}'
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Request-Timestamp": str(ts),
            "X-HubSpot-Signature-v3": hubspot_signature_v3(secret, "POST", url, body, ts),
        }
        return requests.post(url, data=body, headers=headers, timeout=10).status_code


class SalesforceTarget:
    """The Salesforce sandbox: leads, titles, Outbound Messages with the shared secret."""

    crm = "salesforce"

    def __init__(self, contacts: int) -> None:
        self.server = start_salesforce_sandbox(leads=contacts, contacts=0, seed=11)
        self.section = {
            "login_url": self.server.url,
            "client_id": self.server.client_id,
            "client_secret": self.server.client_secret,
            "ca_file": self.server.ca_pem_path,
        }
        self.secret_key = "salesforce_secret"

    def enable(self, url: str, on_change: Callable[[str], None]) -> list[WebhookSender]:
        senders = list(self.server.sandbox.enable_webhooks(url, SECRET).values())
        self.server.org.change_listeners.append(lambda _sobject, record_id, _stamp: on_change(record_id))
        return senders

    def ids(self) -> list[str]:
        return [r["Id"] for r in self.server.org.records("Lead") if not r.get("IsConverted")]

    def change(self, record_id: str) -> None:
        current = (self.server.org.record("Lead", record_id) or {}).get("Title")
        self.server.org.update_record("Lead", record_id, {"Title": TITLES[1] if current == TITLES[0] else TITLES[0]})

    def attack(self, url: str, record_id: str, kind: str) -> int:
        """A wrong shared secret, an HMAC signed 6 minutes ago, or an authenticated body that is no message."""
        body = json.dumps({"records": [{"Id": record_id}]}).encode()
        headers = {"Content-Type": "application/json", "X-Leadsync-Secret": SECRET}
        if kind == "forged":
            headers["X-Leadsync-Secret"] = "a-guessed-secret"
        elif kind == "replayed":
            ts = str(int(time.time()) - 360)
            del headers["X-Leadsync-Secret"]
            headers |= {"X-Leadsync-Timestamp": ts, "X-Leadsync-Signature": salesforce_hmac(SECRET, ts, body)}
        else:
            body = b"<notifications"
            headers["Content-Type"] = "text/xml"
        return requests.post(url, data=body, headers=headers, timeout=10).status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crm", choices=("hubspot", "salesforce"), default="hubspot")
    parser.add_argument("--rate", type=float, default=10.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    parser.add_argument("--contacts", type=int, default=2000, help="contacts (HubSpot) or leads (Salesforce)")
    parser.add_argument("--window", type=float, default=2.0, help="webhooks.batch_window_s")
    parser.add_argument("--attacks", type=int, default=20, help="forged, replayed and malformed requests of each kind")
    args = parser.parse_args()

    from leadsync.app import build_app
    from leadsync.config import parse_config
    from leadsync.runner import build_daemon
    from sync.state import StateStore

    target: HubSpotTarget | SalesforceTarget = (HubSpotTarget if args.crm == "hubspot" else SalesforceTarget)(
        args.contacts
    )
    server = target.server
    tmp = tempfile.mkdtemp(prefix="leadsync-realtime-")
    os.environ["BENCH_WEBHOOK_SECRET"] = SECRET
    config = parse_config(
        {
            "crm": target.crm,
            target.crm: target.section,
            "schedule": {"sync": {"every": "5m"}},
            "run": {"host": "127.0.0.1", "port": 0},
            "state": {"url": f"sqlite:///{tmp}/state.db"},
            "webhooks": {"enabled": True, target.secret_key: "${BENCH_WEBHOOK_SECRET}", "batch_window_s": args.window},
        },
        source="<benchmark>",
    )
    app = build_app(config)
    store = StateStore(config.state.url)
    daemon = build_daemon(app, store, port=0, host="127.0.0.1")
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    print(f"first scheduled pass over {args.contacts} records ...", flush=True)
    while not daemon._synced.is_set():
        time.sleep(0.2)
    url = f"http://127.0.0.1:{daemon.port}/webhooks/{target.crm}"

    # a change made by this thread starts the clock; the next write of that record (leadsync's, from a request
    # thread of the sandbox) stops it; both are seen synchronously, under the sandbox's lock
    lock = threading.Lock()
    pending: dict[str, float] = {}
    latencies: list[float] = []
    main_thread = threading.current_thread()

    def on_change(record_id: str) -> None:
        now = time.time()
        with lock:
            if threading.current_thread() is main_thread:
                pending.setdefault(record_id, now)
            elif (started := pending.pop(record_id, None)) is not None:
                latencies.append(now - started)

    senders = target.enable(url, on_change)
    server.app.stats.reset()  # the figures count the load only
    ids = target.ids()
    rng = random.Random(5)
    targets = rng.sample(ids, min(len(ids), int(args.rate * args.seconds) + args.attacks))
    attacked = targets[: args.attacks]
    changed = targets[args.attacks :]
    statuses: dict[str, list[int]] = {k: [] for k in KINDS}
    count = 0
    start = time.monotonic()
    print(f"load: {args.rate:g} changes/s for {args.seconds:g} s, window {args.window:g} s ...", flush=True)
    while count < len(changed):
        due = start + count / args.rate
        time.sleep(max(0.0, due - time.monotonic()))
        target.change(changed[count])
        count += 1
        if count % max(1, int(args.rate)) == 0 and attacked:  # about one attack of each kind a second
            victim = attacked.pop()
            for kind in KINDS:
                statuses[kind].append(target.attack(url, victim, kind))
    load_s = time.monotonic() - start
    for sender in senders:
        sender.flush(30)
    deadline = time.monotonic() + args.window + 15
    while time.monotonic() < deadline:
        with lock:
            if not pending:
                break
        time.sleep(0.2)
    time.sleep(args.window + 1)  # the write-back notifications' micro-pass (own writes: no read)
    stats = server.stats()
    posted = sum(s.events for s in senders)
    sent, failed = sum(s.sent for s in senders), sum(s.failed for s in senders)
    registry = daemon.metrics.registry

    def events(result: str) -> float:
        return registry.get_sample_value("leadsync_webhook_events_total", {"crm": target.crm, "result": result}) or 0

    daemon.request_stop("benchmark over")
    thread.join(60)
    with lock:
        unwritten = dict(pending)
    # a change leadsync scored without writing: its written values came out the same (nothing to send)
    scores = store.get_scores(list(unwritten))
    rescored = sum(1 for i, at in unwritten.items() if (s := scores.get(i)) and s.scored_at.timestamp() >= at - 1)
    store.close()
    server.stop()

    print()
    print(
        f"changes made: {count} in {load_s:.1f} s ({count / load_s:.1f}/s); written back: {len(latencies)}; "
        f"not written: {len(unwritten)} (scored again, nothing to write: {rescored}; "
        f"never scored: {len(unwritten) - rescored})"
    )
    if latencies:
        print(
            f"change -> write: median {statistics.median(latencies):.2f} s, p99 {percentile(latencies, 0.99):.2f} s, "
            f"max {max(latencies):.2f} s (target p99 < 5 s)"
        )
    by_endpoint: dict[str, Any] = stats["by_endpoint"]
    print(
        f"API calls: {stats['requests']} for {count} changed contacts = {stats['requests'] / max(count, 1):.2f} "
        "per changed contact (target <= 2.2)"
    )
    for endpoint, n in sorted(by_endpoint.items(), key=lambda kv: -kv[1]):
        print(f"  {n:6d}  {endpoint}")
    print(
        f"notifications posted by the sandbox: {posted} events in {sent} requests "
        f"({failed} given up); leadsync: accepted {events('accepted'):.0f}, duplicate "
        f"{events('duplicate'):.0f}, own_write (no read) {events('own_write'):.0f}, read {events('read'):.0f}, "
        f"overflow {events('overflow'):.0f}"
    )
    for kind in KINDS:
        answered = sorted(set(statuses[kind]))
        print(f"{kind}: {len(statuses[kind])} sent, answered {answered}, counted {events(kind):.0f}")
    processed = events("accepted") + events("duplicate")
    print(
        f"attacks processed: {'none' if processed == posted else f'{processed - posted:.0f}'} "
        f"(accepted + duplicate = {processed:.0f}, sandbox events = {posted})"
    )


if __name__ == "__main__":
    main()
