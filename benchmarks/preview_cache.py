"""``leadsync preview`` on a SQLite lead cache: seconds and peak memory, before/after in one run.

A cache of ``--leads`` synthetic HubSpot contacts (titles, company sizes, free-mail and company addresses,
counters, 0-8 activities each, 30% with a stored MQL score) is written once into a temporary SQLite file;
each measured process then runs ``inspect_cache.preview`` of the default rules against lowered thresholds
(the command's work after start-up: reading the cache, scoring with both rule sets, comparing).
``--before REV`` runs the code of git revision ``REV`` too (``git archive``, first on ``PYTHONPATH``).

Usage: ``python benchmarks/preview_cache.py [--leads 100000] [--before 92e40af]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def build(url: str, n: int, seed: int = 5) -> None:
    from sync.state import CachedLead, StateStore, StoredScore

    rng = random.Random(seed)
    with StateStore.open(url) as store:
        for start in range(0, n, 10_000):
            leads, scores = [], []
            for i in range(start, min(start + 10_000, n)):
                email = rng.choice([f"u{i}@acme{i % 300}.com", f"u{i}@gmail.com", f"info@co{i % 50}.com"])
                properties = {
                    "email": email,
                    "jobtitle": rng.choice(["VP Marketing", "CEO", "Student", "Engineer", "Director of Sales"]),
                    "numemployees": rng.choice(["25-50", "1000+", "250", "5000+", ""]),
                    "industry": rng.choice(["software", "retail", "saas", ""]),
                    "num_page_views": str(rng.randint(0, 60)),
                    "createdate": (NOW - timedelta(days=rng.randint(0, 500))).isoformat(),
                }
                activities = [
                    {
                        "kind": rng.choice(["page_view", "form_submission", "email_open", "meeting"]),
                        "timestamp": (NOW - timedelta(days=rng.randint(0, 200))).isoformat(),
                        "attributes": {"url": rng.choice(["/pricing", "/blog", "/demo"])},
                    }
                    for _ in range(rng.randint(0, 8))
                ]
                leads.append(CachedLead(f"L{i:07d}", "contact", email, properties, activities, NOW))
                if rng.random() < 0.3:
                    at = NOW - timedelta(days=3)
                    scores.append(StoredScore(f"L{i:07d}", 55, 30, 25, 0, "warm", True, at, [], "", "v0", NOW))
            store.upsert_leads(leads)
            store.save_scores(scores)


def child(url: str) -> None:
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from leadsync.inspect_cache import preview
    from mappings import load_mapping
    from scoring import compile_rules, default_rules, load_rules
    from sync.state import StateStore

    current = compile_rules(default_rules())
    proposed = compile_rules(load_rules({"qualification": {"threshold": 35, "release": 25}}))
    mapping = load_mapping("hubspot")
    with StateStore.open(url) as store:
        started, cpu = time.perf_counter(), time.process_time()
        impact = preview(store, current, proposed, mapping, NOW)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "leads": impact.leads, "qualify": impact.newly_qualified}))


def measure(url: str, pythonpath: Path | None) -> tuple[float, float, int, int, float]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", url], env=env, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("preview failed")
    found = json.loads(out.decode().strip().splitlines()[-1])
    return found["seconds"], found["cpu"], found["leads"], found["qualify"], usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--before", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="leadsync-preview-bench-") as tmp:
        url = f"sqlite:///{tmp}/cache.db"
        started = time.perf_counter()
        build(url, args.leads)
        print(f"cache of {args.leads:,} leads built in {time.perf_counter() - started:.0f} s")
        runs: list[tuple[str, Path | None]] = [("after", None)]
        if args.before:
            before = Path(tmp) / "before"
            before.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before], check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
            runs.append((f"before {args.before}", before))
        print(f"{'code':<16} {'leads':>9} {'seconds':>8} {'CPU s':>6} {'leads/s':>9} {'MQL +':>6} {'peak RSS MiB':>12}")
        for name, path in runs:
            seconds, cpu, leads, qualify, rss = measure(url, path)
            print(
                f"{name:<16} {leads:>9,} {seconds:>8.1f} {cpu:>6.1f} {leads / seconds:>9,.0f} {qualify:>6} {rss:>12.0f}"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
