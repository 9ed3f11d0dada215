"""The predictive model's speed and size: training on 100,000 labeled leads x 20 features (one core),
applying it on the bulk path (feature columns -> encoded matrix -> calibrated likelihood and priority), and the
size of its skops file. Prints the figures; data generation is not timed.

    .venv/bin/python benchmarks/model.py [--leads 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.predictive import FeatureTable, TrainOptions, train_model
from tests.model.synthetic import INTAKE, labeled_rows

#: six more intake-time columns on top of the synthetic file's fourteen: 20 features in all
EXTRA = ("email_opens", "form_submissions", "employees", "industry", "seniority", "webinar")


def table(n: int, seed: int) -> tuple[FeatureTable, np.ndarray]:
    rows = labeled_rows(n, seed=seed)
    rng = np.random.default_rng(seed)
    y = np.array([r["converted"] for r in rows], dtype=bool)
    columns = {c: [r[c] for r in rows] for c in INTAKE}
    columns["email_opens"] = rng.poisson(2 + 2 * y).tolist()
    columns["form_submissions"] = rng.poisson(0.5 + 0.6 * y).tolist()
    columns["employees"] = np.where(rng.random(n) < 0.2, np.nan, rng.lognormal(4 + 0.5 * y, 1.5)).round().tolist()
    columns["industry"] = rng.choice(["software", "retail", "banking", "education", "health", "other"], n).tolist()
    columns["seniority"] = np.where(y & (rng.random(n) < 0.3), "director", rng.choice(["ic", "manager", "vp"], n))
    columns["seniority"] = columns["seniority"].tolist()
    columns["webinar"] = (rng.random(n) < 0.1 + 0.1 * y).tolist()
    return FeatureTable(columns, n), y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=100_000)
    args = parser.parse_args()
    train, y = table(args.leads, seed=1)
    fresh, _ = table(args.leads, seed=2)
    started, cpu = time.perf_counter(), time.process_time()
    result = train_model(train, y, options=TrainOptions(threads=1))
    trained, trained_cpu = time.perf_counter() - started, time.process_time() - cpu
    model = result.model
    m = result.card["metrics"]
    print(
        f"train: {args.leads:,} labeled leads x {len(train.columns)} columns "
        f"({len(model.specs)} features kept) in {trained:.1f} s on one core ({trained_cpu:.1f} s of CPU time); "
        f"holdout AUC {m['auc']:.3f}, Brier {m['brier']:.3f}, calibration {model.method}, "
        f"{result.card['estimator']['iterations']} trees"
    )
    model.predict(fresh.take(np.arange(1000)))  # warm-up
    best = cpu_best = float("inf")
    for _ in range(3):  # the best of three: the machine is shared, and a neighbour's burst is not our cost
        started, cpu = time.perf_counter(), time.process_time()
        prediction = model.predict(fresh)
        best = min(best, time.perf_counter() - started)
        cpu_best = min(cpu_best, time.process_time() - cpu)
    x = model.matrix(fresh)
    cpu = time.process_time()
    model.raw(x)
    trees = time.process_time() - cpu
    print(
        f"apply: {args.leads:,} leads in {best:.2f} s = {args.leads / best:,.0f} leads/s "
        f"({args.leads / cpu_best:,.0f} leads/s of CPU time, the trees {trees / cpu_best:.0%} of it; bulk path: encode "
        f"+ trees + calibration + priority, one thread; {sum(t == 'very_high' for t in prediction.priority):,} "
        "very_high)"
    )
    started = time.perf_counter()
    x = model.matrix(fresh.take(np.arange(10_000)))
    model.reasons(x)
    explained = time.perf_counter() - started
    print(f"reasons: 10,000 leads' top three factors in {explained:.2f} s = {10_000 / explained:,.0f} leads/s")
    body = model.to_bytes()
    print(f"model file: {len(body) / 2**20:.2f} MB (skops)")


if __name__ == "__main__":
    main()
