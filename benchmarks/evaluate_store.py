"""Evaluate 1,000,000 leads with score history from the state store (SQLite); prints seconds and peak memory.

Target: under 20 s and under 1 GB. The store is seeded directly with bulk inserts (cache rows with a creation
date, two history rows per lead, an outcome for about one lead in eight); only the evaluation is timed.

    .venv/bin/python benchmarks/evaluate_store.py [--leads 1000000] [--state /tmp/bench.db]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# benchmarks/scoring.py would shadow the scoring package: import from the project, not from this folder
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from leadsync.config import OutcomesConfig  # noqa: E402
from leadsync.evaluate_store import evaluate_store  # noqa: E402
from mappings import load_mapping  # noqa: E402
from scoring import compile_rules, load_rules  # noqa: E402
from sync.state import StateStore, t_leads, t_outcomes, t_score_history  # noqa: E402

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def seed(store: StateStore, n: int) -> None:
    rng = random.Random(7)
    chunk = 20_000
    with store.engine.begin() as conn:
        for start in range(0, n, chunk):
            leads, history, outcomes = [], [], []
            for i in range(start, min(n, start + chunk)):
                lid = f"{i:08d}"
                created = NOW - timedelta(days=rng.uniform(100, 500))
                quality = rng.random()
                score = int(min(100, max(0, quality * 80 + rng.gauss(0, 15))))
                leads.append(
                    {"id": lid, "object_type": "contact", "email": None, "email_lower": None,
                     "properties": {"createdate": created.isoformat()}, "activities": [], "updated_at": None,
                     "cached_at": NOW}
                )  # fmt: skip
                for day, total in ((1, max(0, score - 10)), (20, score)):
                    history.append(
                        {"lead_id": lid, "at": created + timedelta(days=day), "total": total, "grade": "cold",
                         "qualified": total >= 60, "rules_version": "bench", "arm": "champion"}
                    )  # fmt: skip
                if rng.random() < quality**2 * 0.4:
                    outcomes.append(
                        {"lead_id": lid, "converted_at": created + timedelta(days=rng.uniform(25, 85)),
                         "source": "lifecycle:customer", "detail": {}, "first_seen_at": NOW}
                    )  # fmt: skip
            conn.execute(t_leads.insert(), leads)
            conn.execute(t_score_history.insert(), history)
            if outcomes:
                conn.execute(t_outcomes.insert(), outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--state", type=Path, default=None, help="reuse (or create) this SQLite file")
    args = parser.parse_args()
    path = args.state or Path(tempfile.mkdtemp()) / "bench.db"
    store = StateStore.open(f"sqlite:///{path}")
    if store.count_leads() != args.leads:
        started = time.perf_counter()
        seed(store, args.leads)
        print(f"seeded {args.leads:,} leads in {time.perf_counter() - started:.1f} s ({path})")
    mapping = load_mapping("hubspot", None)
    rules = compile_rules(load_rules(None))
    started = time.perf_counter()
    result = evaluate_store(store, mapping, rules, OutcomesConfig(), "f1", now=NOW)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = result.labels.counts()
    auc = result.run.champion.auc.value if result.run else float("nan")
    print(f"evaluated {counts['evaluated']:,} of {counts['leads']:,} leads ({counts['positives']:,} converted), "
          f"AUC {auc:.3f}")  # fmt: skip
    print(f"evaluate: {seconds:.1f} s, peak memory {peak_mb:.0f} MB (targets: < 20 s, < 1024 MB)")
    store.close()


if __name__ == "__main__":
    main()
