"""Salesforce sandbox figures: seeding time, SOQL page latency over HTTPS, indexed SystemModstamp queries.

Run: .venv/bin/python benchmarks/salesforce_sandbox.py [--leads 20000] [--big 200000] [--skip-big]

Targets from the design brief: seeding 20,000 leads in under 2 s, a 2,000-record query page served in
well under 100 ms, and ``WHERE SystemModstamp > X`` over 200k records reading only the matching slice.
Figures are printed, never asserted: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sandbox.salesforce import start_salesforce_sandbox  # noqa: E402

NOW = datetime(2025, 3, 1, tzinfo=UTC)
FIELDS = "Id, Email, FirstName, LastName, Company, Title, Industry, NumberOfEmployees, Status, SystemModstamp"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def http_figures(leads: int) -> None:
    started = time.perf_counter()
    server = start_salesforce_sandbox(leads=leads, seed=1, now=NOW)
    print(f"seed {leads} leads + start HTTPS server: {time.perf_counter() - started:.2f} s")
    try:
        sf = server.client()
        sf.query("SELECT Id FROM Lead LIMIT 1")  # TLS handshake and keep-alive out of the way
        first: list[float] = []
        more: list[float] = []
        for _ in range(5):
            t = time.perf_counter()
            page = sf.query(f"SELECT {FIELDS} FROM Lead")
            first.append(time.perf_counter() - t)
            t = time.perf_counter()
            sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
            more.append(time.perf_counter() - t)
        print(
            f"2000-record page over HTTPS (simple-salesforce, parsed): first {_ms(statistics.median(first))} "
            f"(runs the query over {leads}), next {_ms(statistics.median(more))} (median of 5)"
        )
        t = time.perf_counter()
        count = sum(1 for _ in sf.query_all_iter(f"SELECT {FIELDS} FROM Lead"))
        print(f"query_all_iter of {count} leads: {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        csv_bytes = sum(len(p) for p in sf.bulk2.Lead.query(f"SELECT {FIELDS} FROM Lead", wait=0))
        print(f"bulk2 query of {leads} leads: {time.perf_counter() - t:.2f} s, {csv_bytes / 1e6:.1f} MB CSV")
        t = time.perf_counter()
        tasks = server.org.count("Task")
        print(
            f"first read of activities ({tasks} tasks, built from the people's events): {time.perf_counter() - t:.2f} s"
        )
    finally:
        server.stop()


def big_figures(leads: int) -> None:
    started = time.perf_counter()
    server = start_salesforce_sandbox(leads=leads, seed=2, now=NOW)
    print(f"seed {leads} leads: {time.perf_counter() - started:.2f} s, max RSS {_rss_mb():.0f} MB")
    try:
        org = server.org
        stamps = sorted(r[6] for r in org.tables["Lead"].rows.values())
        for share in (0.001, 0.01, 0.1):
            cut = stamps[-int(len(stamps) * share)]
            t = time.perf_counter()
            ran = org.compile_and_run(
                f"SELECT {FIELDS} FROM Lead WHERE SystemModstamp > {cut} ORDER BY SystemModstamp, Id LIMIT 2000"
            )
            elapsed = time.perf_counter() - t
            print(
                f"SystemModstamp > newest {share:.1%}: {len(ran.rows)} rows, plan {ran.plan}, "
                f"scanned {ran.scanned}, {_ms(elapsed)}"
            )
        t = time.perf_counter()
        scan = org.compile_and_run("SELECT Id FROM Lead WHERE Email LIKE '%@gmail.com'")
        print(f"full scan with LIKE over {leads}: {len(scan.rows)} rows, {_ms(time.perf_counter() - t)}")
    finally:
        server.stop()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--big", type=int, default=200_000)
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    http_figures(args.leads)
    if not args.skip_big:
        big_figures(args.big)


if __name__ == "__main__":
    main()
