"""HubSpot sync figures: API calls against the floor, rate-limit utilisation, incremental cost, memory.

Run: .venv/bin/python benchmarks/hubspot_sync.py [--contacts 20000] [--rate-contacts 6000]
     [--memory-contacts 200000] [--skip-memory]

Everything runs against the HubSpot sandbox over real HTTP with the official SDK. Figures are printed,
never asserted: these machines are shared and noisy, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sandbox.hubspot import HubSpotSandboxServer, start_hubspot_sandbox  # noqa: E402
from leadsync.app import build_app  # noqa: E402
from leadsync.config import parse_config  # noqa: E402
from sync.pipeline import SyncPipeline  # noqa: E402
from sync.state import StateStore  # noqa: E402


def pipeline(
    server: HubSpotSandboxServer, state: Path, rate: int = 100_000, activities: bool = True, **sync: Any
) -> tuple[SyncPipeline, StateStore]:
    """A pipeline on ``server``; ``rate`` is the connector's limit (the sandboxes here have none unless set)."""
    config = parse_config(
        {
            "crm": "hubspot",
            "hubspot": {
                "access_token": server.token,
                "base_url": server.url,
                "max_retries": 10,
                "rate_limit_per_10s": rate,
                "read_activities": activities,
            },
            "state": {"url": f"sqlite:///{state}"},
            "sync": sync or {"settle_s": 0},
        },
        source="<benchmark>",
    )
    app = build_app(config)
    store = app.store()
    return app.pipeline(store), store


def full_sync_calls(contacts: int, tmp: Path, *, activities: bool) -> None:
    with start_hubspot_sandbox(contacts=contacts, seed=1) as server:
        pipe, store = pipeline(server, tmp / f"full-{activities}.db", activities=activities)
        summary = pipe.run_once()
        store.close()
        by_endpoint = server.stats()["by_endpoint"]
    floor = math.ceil(summary.leads_read / 100) + math.ceil(summary.leads_written / 100)
    setup = sum(n for k, n in by_endpoint.items() if "/properties/" in k)
    assoc = sum(n for k, n in by_endpoint.items() if "/associations/" in k)
    objects = by_endpoint.get("POST /crm/v3/objects/{objectType}/batch/read", 0)
    contact_calls = summary.api_calls - setup - assoc - objects
    label = "with activities" if activities else "counters only (hubspot.read_activities: false)"
    print(f"full sync of {contacts:,} contacts, {label}: {summary.api_calls} API calls")
    print(
        f"  contacts: {contact_calls} calls against a floor of {floor} (1 per 100 read + 1 per 100 written), "
        f"{contact_calls / floor:.3f}x; schema set-up {setup} calls"
    )
    if activities:
        print(f"  activities: {assoc} association reads + {objects} object reads (100 objects a call)")
    print(f"  by endpoint: {json.dumps(by_endpoint, sort_keys=True)}")


def rate_utilisation(contacts: int, tmp: Path) -> None:
    """Utilisation of a 100/10 s limit, with the sandbox in its own process (a real CRM is remote too)."""
    with sandbox_process(contacts, seed=2, token="rate-bench", extra=["--rate-limit", "100/10s"]) as url:
        config = parse_config(
            {
                "crm": "hubspot",
                "hubspot": {"access_token": "rate-bench", "base_url": url, "rate_limit_per_10s": 100},
                "state": {"url": f"sqlite:///{tmp / 'rate.db'}"},
                "sync": {"settle_s": 0},
            },
            source="<benchmark>",
        )
        app = build_app(config)
        store = app.store()
        pipe = app.pipeline(store)
        started = time.monotonic()
        summary = pipe.run_once()
        elapsed = time.monotonic() - started
        store.close()
        with urllib.request.urlopen(f"{url}/__sandbox/stats") as response:
            stats = json.loads(response.read())
    achieved = stats["requests"] / elapsed
    print(
        f"rate limit 100 req/10 s, full sync of {contacts:,} (sandbox in its own process): {stats['requests']} "
        f"requests in {elapsed:.1f} s = {achieved:.2f} req/s; utilisation {achieved / 10:.3f} of the allowed "
        f"rate; 429s served {stats['throttled']}; writes failed for good {summary.write_failures}"
    )


@contextmanager
def sandbox_process(contacts: int, *, seed: int, token: str, extra: list[str] | None = None) -> Iterator[str]:
    """`leadsync sandbox hubspot` in its own process; yields its base URL."""
    args = ["sandbox", "hubspot", "--port", "0", "--token", token, "--contacts", str(contacts), "--seed", str(seed)]
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "leadsync", *args, *(extra or [])], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert sandbox.stdout is not None
        url = None
        while url is None:
            line = sandbox.stdout.readline()
            if not line:
                raise RuntimeError("sandbox exited")
            match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            url = match.group(1) if match else None
        yield url
    finally:
        sandbox.terminate()
        sandbox.wait(30)


def incremental_calls(contacts: int, tmp: Path) -> None:
    settle, overlap = 1.0, 0.5  # the real defaults (30 s, 60 s) compressed, so the benchmark takes seconds
    with start_hubspot_sandbox(contacts=contacts, seed=3, index_lag_s=0.5) as server:
        pipe, store = pipeline(server, tmp / "inc.db", settle_s=settle, overlap_s=overlap)
        pipe.run_once()
        time.sleep(settle + overlap + 0.2)
        absorb = pipe.run_once()  # reads leadsync's own writes back once
        time.sleep(settle + overlap + 0.2)
        rng = random.Random(3)
        changed = rng.sample(server.portal.contact_ids(), contacts // 100)
        for contact_id in changed:
            current = int((server.portal.contact(contact_id) or {}).get("hs_analytics_num_page_views") or 0)
            server.portal.track_engagement(contact_id, {"hs_analytics_num_page_views": str(current + 40)})
        time.sleep(settle + 0.2)
        inc = pipe.run_once()
        store.close()
    print(
        f"own writes read back once: the pass after the full sync read {absorb.leads_read:,} contacts "
        f"({absorb.api_calls} calls) and wrote {absorb.leads_written}"
    )
    print(
        f"incremental pass after 1% ({len(changed)}) of {contacts:,} contacts changed: {inc.api_calls} API calls, "
        f"{inc.leads_read} read, {inc.leads_written} written; a full pass would need "
        f"{math.ceil(contacts / 100)}+ calls"
    )


def peak_memory(contacts: int) -> float:
    """Peak RSS (MB) of a `leadsync sync --once` process syncing `contacts` from a sandbox in another process.

    Read from /proc/self/status VmHWM: getrusage's ru_maxrss survives exec on Linux, so a child would report
    its parent's peak.
    """
    with sandbox_process(contacts, seed=4, token="mem") as url, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "leadsync.yaml"
        config.write_text(
            f"crm: hubspot\nhubspot: {{access_token: mem, base_url: '{url}', rate_limit_per_10s: 100000}}\n"
            f"state: {{url: 'sqlite:///{tmp}/state.db'}}\n"
        )
        code = (
            "import re, runpy, sys\n"
            f"sys.argv = ['leadsync', 'sync', '--once', '--json', '--config', {str(config)!r}]\n"
            "try:\n    runpy.run_module('leadsync', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "print('PEAK_KB', hwm, file=sys.stderr)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        peak_kb = int(re.search(r"PEAK_KB (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
        summary = json.loads(done.stdout)
        assert summary["leads_read"] == contacts, summary
        return peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--rate-contacts", type=int, default=6_000)
    parser.add_argument("--memory-contacts", type=int, default=200_000)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        full_sync_calls(args.contacts, Path(tmp), activities=False)
        full_sync_calls(args.contacts, Path(tmp), activities=True)
        incremental_calls(args.contacts, Path(tmp))
        rate_utilisation(args.rate_contacts, Path(tmp))
    if not args.skip_memory:
        small = peak_memory(args.memory_contacts // 10)
        large = peak_memory(args.memory_contacts)
        print(
            f"peak memory of the sync process: {small:.0f} MB for {args.memory_contacts // 10:,} contacts, "
            f"{large:.0f} MB for {args.memory_contacts:,} ({large / small:.2f}x for 10x the contacts)"
        )
    print(f"(own process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
