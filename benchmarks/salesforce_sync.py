"""Salesforce sync figures: API calls of a full and an incremental sync against the floor.

Run: .venv/bin/python benchmarks/salesforce_sync.py [--leads 20000] [--contacts 0] [--changed 0.02]

Against the Salesforce sandbox over real HTTPS (trustme CA) with simple-salesforce. The floor counts what
the API cannot do with fewer calls: one SOQL page per 2,000 records read (or, above
``salesforce.bulk_threshold``, one Bulk API 2.0 job: create + status + one results page per 50,000 rows)
and one sObject Collections request per 200 records written. Activity queries (Task, Event,
CampaignMember: three per 450 records) are reported apart. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sandbox.salesforce import SalesforceSandboxServer, start_salesforce_sandbox  # noqa: E402
from leadsync.app import build_app  # noqa: E402
from leadsync.config import parse_config  # noqa: E402
from sync.pipeline import SyncPipeline  # noqa: E402
from sync.state import StateStore  # noqa: E402

QUERY = "GET /services/data/v{version}/query"
QUERY_MORE = "GET /services/data/v{version}/query/{cursor}"
PATCH = "PATCH /services/data/v{version}/composite/sobjects"
BULK = "/jobs/query"


def pipeline(server: SalesforceSandboxServer, state: Path, **salesforce: Any) -> tuple[SyncPipeline, StateStore]:
    config = parse_config(
        {
            "crm": "salesforce",
            "salesforce": {
                "login_url": server.url,
                "client_id": server.client_id,
                "client_secret": server.client_secret,
                "ca_file": server.ca_pem_path,
                "max_retries": 10,
            }
            | salesforce,
            "state": {"url": f"sqlite:///{state}"},
            "sync": {"settle_s": 0},
        },
        source="<benchmark>",
    )
    app = build_app(config)
    store = app.store()
    return app.pipeline(store), store


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def report(title: str, calls: dict[str, int], read: int, written: int, bulk: bool) -> None:
    reads = sum(v for k, v in calls.items() if k in (QUERY, QUERY_MORE) or BULK in k)
    writes = calls.get(PATCH, 0)
    floor_reads = 3 if bulk else math.ceil(read / 2000)
    floor_writes = math.ceil(written / 200)
    print(f"{title}")
    print(f"  records read {read}, written {written}")
    print(f"  read/query calls {reads} (incl. activity queries and COUNT()), floor {floor_reads} for the records")
    print(f"  collection writes {writes}, floor {floor_writes} -> {writes / max(1, floor_writes):.2f}x")
    print(f"  all calls by endpoint: {dict(sorted(calls.items()))}")


def run(leads: int, contacts: int, changed: float, activities: bool) -> None:
    for label, threshold in (("SOQL (bulk off)", 10**9), ("Bulk API 2.0 (threshold 10,000)", 10_000)):
        with (
            tempfile.TemporaryDirectory() as tmp,
            start_salesforce_sandbox(leads=leads, contacts=contacts, seed=3) as server,
        ):
            pipe, store = pipeline(server, Path(tmp) / "s.db", bulk_threshold=threshold, read_activities=activities)
            try:
                before = dict(server.stats()["by_endpoint"])
                started = time.monotonic()
                full = pipe.run_once(full=True)
                elapsed = time.monotonic() - started
                calls = delta(before, server.stats()["by_endpoint"])
                report(
                    f"full sync, {label}: {elapsed:.1f}s, {full.api_calls} API calls",
                    calls,
                    full.leads_read,
                    full.leads_written,
                    bulk=threshold < leads,
                )
                # between passes, a share of the org changes (a system job stamps it, e.g. a roll-up)
                ids = [r["Id"] for r in server.org.records("Lead") if not r.get("IsConverted")]
                picked = random.Random(5).sample(ids, int(len(ids) * changed))
                server.org.touch("Lead", picked)
                before = dict(server.stats()["by_endpoint"])
                inc = pipe.run_once()
                calls = delta(before, server.stats()["by_endpoint"])
                report(
                    f"incremental sync right after ({len(picked)} leads changed; the full sync's own writes are "
                    f"read back too): {inc.api_calls} API calls",
                    calls,
                    inc.leads_read,
                    inc.leads_written,
                    bulk=False,
                )
                server.org.touch("Lead", picked[: len(picked) // 2])
                time.sleep(1.1)
                pipe.overlap = pipe.overlap * 0  # the daemon's usual case: nothing but new changes in the window
                before = dict(server.stats()["by_endpoint"])
                steady = pipe.run_once()
                calls = delta(before, server.stats()["by_endpoint"])
                report(
                    f"steady-state incremental ({len(picked) // 2} leads changed): {steady.api_calls} API calls",
                    calls,
                    steady.leads_read,
                    steady.leads_written,
                    bulk=False,
                )
            finally:
                store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=0)
    parser.add_argument("--changed", type=float, default=0.02)
    parser.add_argument("--no-activities", action="store_true")
    args = parser.parse_args()
    run(args.leads, args.contacts, args.changed, not args.no_activities)


if __name__ == "__main__":
    main()
