"""What company fields cost on HubSpot: the calls of a full pass, and of the pass after companies change.

Run: .venv/bin/python benchmarks/company_fields.py [--contacts 5000] [--edited 100 500] [--seed 7]

One in-process sandbox (seeded with ``--contacts`` people; their accounts become primary companies), one
SQLite state store, the default mapping and rules. Passes: the full sync, the pass that reads its own
write-backs, then for each ``--edited`` count that many companies get a new industry through the SDK and an
incremental pass runs. Calls are counted by the sandbox (``/__sandbox/stats``), per endpoint. Figures are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from hubspot.crm.companies import SimplePublicObjectInput  # noqa: E402

from connectors.sandbox.hubspot import HubSpotSandboxServer, start_hubspot_sandbox  # noqa: E402
from leadsync.app import build_app  # noqa: E402
from leadsync.config import parse_config  # noqa: E402

COMPANY = ("companies", "associations/contacts/companies")


def stats(server: HubSpotSandboxServer) -> dict[str, int]:
    return dict(requests.get(f"{server.url}/__sandbox/stats", timeout=30).json()["by_endpoint"])


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def report(name: str, spent: dict[str, int], seconds: float, extra: str = "") -> None:
    company = {k: v for k, v in spent.items() if any(c in k for c in COMPANY)}
    print(
        f"{name}: {sum(spent.values())} calls in {seconds:.1f} s, of them for companies {sum(company.values())}{extra}"
    )
    for endpoint, n in sorted(company.items()):
        print(f"    {n:6d}  {endpoint}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--edited", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, start_hubspot_sandbox(contacts=args.contacts, seed=args.seed) as server:
        portal = server.portal
        companies = [c for c in portal.company_ids() if portal.company_contacts(c)]
        linked = sum(1 for i in portal.contact_ids() if portal.primary_company(i))
        print(f"{args.contacts} contacts, {linked} with a primary company, {len(companies)} companies with contacts")
        config = parse_config(
            {
                "crm": "hubspot",
                "hubspot": {"access_token": server.token, "base_url": server.url, "rate_limit_per_10s": 100_000},
                "state": {"url": f"sqlite:///{Path(tmp) / 'state.db'}"},
                "sync": {"settle_s": 0},
            }
        )
        app = build_app(config)
        store = app.store()
        pipe = app.pipeline(store)
        pipe.recheck_per_pass = 0
        try:
            for name in ("full sync", "read-back of its own writes"):
                before, started = stats(server), time.monotonic()
                pipe.run_once()
                report(name, delta(before, stats(server)), time.monotonic() - started)
            client = server.client()
            offset = 0
            for count in args.edited:
                chosen = companies[offset : offset + count]
                offset += count
                for company_id in chosen:
                    client.crm.companies.basic_api.update(
                        company_id, SimplePublicObjectInput(properties={"industry": f"Edited {offset}"})
                    )
                before, started = stats(server), time.monotonic()
                summary = pipe.run_once()
                spent = delta(before, stats(server))
                company_calls = sum(v for k, v in spent.items() if any(c in k for c in COMPANY))
                per_100 = company_calls / math.ceil(len(chosen) / 100)
                report(
                    f"after {len(chosen)} companies changed",
                    spent,
                    time.monotonic() - started,
                    f"; {summary.company_rescored} contacts rescored from the cache, {summary.leads_written} written, "
                    f"{per_100:.2f} company calls per 100 changed companies",
                )
        finally:
            store.close()


if __name__ == "__main__":
    main()
