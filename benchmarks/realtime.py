"""Near-real-time scoring through webhooks: change-to-write latency and API calls per changed contact.

Run: .venv/bin/python benchmarks/realtime.py [--rate 10] [--seconds 60] [--contacts 2000] [--window 2]
     [--attacks 20]

An in-process HubSpot sandbox posts signed ``contact.propertyChange`` webhooks (X-HubSpot-Signature-v3)
over real HTTP to an in-process ``leadsync run`` (its scheduled incremental pass runs once at start, then
every 5 minutes, as in production). After that first pass, ``--rate`` contacts a second get a new job title
(a change that moves the score) for ``--seconds``. Measured:

* change -> write: from the change's modification time to leadsync's write of the new score in the portal
  (both on the portal's clock), median and p99, over every change whose score moved;
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from connectors.sandbox._webhooks import hubspot_signature_v3  # noqa: E402
from connectors.sandbox.hubspot import start_hubspot_sandbox  # noqa: E402

SECRET = "benchmark-app-client-secret"
TITLES = ("VP of Sales", "Student")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def attack(url: str, contact: int, kind: str) -> int:
    """One forged, replayed or malformed request; returns the status leadsync answered."""
    now_ms = int(time.time() * 1000)
    event = [{"objectId": contact, "occurredAt": now_ms, "subscriptionType": "contact.propertyChange"}]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--window", type=float, default=2.0, help="webhooks.batch_window_s")
    parser.add_argument("--attacks", type=int, default=20, help="forged, replayed and malformed requests of each kind")
    args = parser.parse_args()

    from leadsync.app import build_app
    from leadsync.config import parse_config
    from leadsync.runner import build_daemon
    from sync.state import StateStore

    server = start_hubspot_sandbox(contacts=args.contacts, seed=11)
    portal = server.portal
    tmp = tempfile.mkdtemp(prefix="leadsync-realtime-")
    os.environ["BENCH_HUBSPOT_TOKEN"] = server.token
    os.environ["BENCH_APP_SECRET"] = SECRET
    config = parse_config(
        {
            "crm": "hubspot",
            "hubspot": {"access_token": "${BENCH_HUBSPOT_TOKEN}", "base_url": server.url},
            "schedule": {"sync": {"every": "5m"}},
            "run": {"host": "127.0.0.1", "port": 0},
            "state": {"url": f"sqlite:///{tmp}/state.db"},
            "webhooks": {
                "enabled": True,
                "hubspot_client_secret": "${BENCH_APP_SECRET}",
                "batch_window_s": args.window,
            },
        },
        source="<benchmark>",
    )
    app = build_app(config)
    store = StateStore(config.state.url)
    daemon = build_daemon(app, store, port=0, host="127.0.0.1")
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    print(f"first scheduled pass over {args.contacts} contacts ...", flush=True)
    while not daemon._synced.is_set():
        time.sleep(0.2)
    url = f"http://127.0.0.1:{daemon.port}/webhooks/hubspot"
    sender = server.sandbox.enable_webhooks(url, SECRET)

    # the portal's own clock: when each benchmark change happened, when leadsync's write of it landed
    lock = threading.Lock()
    pending: dict[int, int] = {}
    latencies: list[float] = []

    def watch(contact_id: int, ms: int, values: Mapping[str, str] | None) -> None:
        if values is None:
            return
        with lock:
            if "jobtitle" in values:
                pending.setdefault(contact_id, ms)
            elif "leadsync_score" in values or "leadsync_reasons" in values:
                started = pending.pop(contact_id, None)
                if started is not None:
                    latencies.append((ms - started) / 1000)

    portal.change_listeners.append(watch)
    requests.post(f"{server.url}/__sandbox/reset-stats", timeout=10)
    ids = portal.contact_ids()
    rng = random.Random(5)
    targets = rng.sample(ids, min(len(ids), int(args.rate * args.seconds) + args.attacks))
    attacked = [int(i) for i in targets[: args.attacks]]
    changed = targets[args.attacks :]
    kinds = ("forged", "replayed", "malformed")
    statuses: dict[str, list[int]] = {k: [] for k in kinds}
    count = 0
    start = time.monotonic()
    print(f"load: {args.rate:g} changes/s for {args.seconds:g} s, window {args.window:g} s ...", flush=True)
    while count < len(changed):
        due = start + count / args.rate
        time.sleep(max(0.0, due - time.monotonic()))
        contact = changed[count]
        current = (portal.contact(contact) or {}).get("jobtitle")
        portal.update_contact(contact, {"jobtitle": TITLES[1] if current == TITLES[0] else TITLES[0]})
        count += 1
        if count % max(1, int(args.rate)) == 0 and attacked:  # about one attack of each kind a second
            target = attacked.pop()
            for kind in kinds:
                statuses[kind].append(attack(url, target, kind))
    load_s = time.monotonic() - start
    sender.flush(30)
    deadline = time.monotonic() + args.window + 15
    while time.monotonic() < deadline:
        with lock:
            if not pending:
                break
        time.sleep(0.2)
    time.sleep(args.window + 1)  # the write-back notifications' micro-pass (own writes: no read)
    stats = server.stats()
    registry = daemon.metrics.registry

    def events(result: str) -> float:
        return registry.get_sample_value("leadsync_webhook_events_total", {"crm": "hubspot", "result": result}) or 0

    daemon.request_stop("benchmark over")
    thread.join(60)
    with lock:
        unwritten = dict(pending)
    # a change leadsync scored without writing: its written values came out the same (nothing to send)
    scores = store.get_scores([str(i) for i in unwritten])
    rescored = sum(
        1 for i, ms in unwritten.items() if (s := scores.get(str(i))) and s.scored_at.timestamp() * 1000 >= ms - 1000
    )
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
        f"notifications posted by the sandbox: {sender.events} events in {sender.sent} requests "
        f"({sender.failed} given up); leadsync: accepted {events('accepted'):.0f}, duplicate "
        f"{events('duplicate'):.0f}, own_write (no read) {events('own_write'):.0f}, read {events('read'):.0f}, "
        f"overflow {events('overflow'):.0f}"
    )
    for kind in kinds:
        answered = sorted(set(statuses[kind]))
        print(f"{kind}: {len(statuses[kind])} sent, answered {answered}, counted {events(kind):.0f}")
    processed = events("accepted") + events("duplicate")
    print(
        f"attacks processed: {'none' if processed == sender.events else f'{processed - sender.events:.0f}'} "
        f"(accepted + duplicate = {processed:.0f}, sandbox events = {sender.events})"
    )


if __name__ == "__main__":
    main()
