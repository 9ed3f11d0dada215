"""Evaluate 1,000,000 synthetic leads (scores, labels, grades, dates): seconds and peak memory (VmHWM).

Target: under 20 s and under 1 GB for the whole evaluation (AUC + bootstrap CI, lift tables, thresholds,
drift) plus a champion vs candidate comparison. Prints figures; not a timed test.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

# benchmarks/scoring.py would shadow the scoring package: import from the project, not from this folder
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
from scoring.evaluation import compare, evaluate  # noqa: E402

N = 1_000_000


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    rng = np.random.default_rng(0)
    latent = rng.normal(0, 1, N)
    y = rng.random(N) < 1 / (1 + np.exp(-(-2.5 + 1.2 * latent)))
    champion = np.clip(np.round(45 + 15 * latent + rng.normal(0, 12, N)), 0, 100)
    candidate = np.clip(45 + 15 * latent + rng.normal(0, 18, N), 0, 100)  # fractional: no ties
    grades = np.where(champion >= 70, "hot", np.where(champion >= 40, "warm", "cold"))
    dates = np.datetime64("2024-01-01T00:00:00") + rng.integers(0, 365 * 86_400, N).astype("timedelta64[s]")
    start = time.perf_counter()
    result = evaluate(champion, y, threshold=60, objective="capacity:2000/week", grades=grades, dates=dates)
    cand = evaluate(candidate, y, threshold=60, objective="capacity:2000/week", grades=grades, dates=dates)
    comparison = compare(champion, candidate, y)
    seconds = time.perf_counter() - start
    print(f"leads {N:,}, converted {result.positives:,}")
    print(
        f"AUC champion {result.auc.value:.4f} [{result.auc.ci_low:.4f}, {result.auc.ci_high:.4f}], "
        f"candidate {cand.auc.value:.4f}; DeLong p = {comparison.p_value:.3g}"
    )
    print(f"recommended threshold {result.recommendation.threshold} ({result.recommendation.objective})")
    print(
        f"evaluate x2 + compare: {seconds:.2f} s (target < 20 s); peak memory VmHWM {vm_hwm_mb():.0f} MB "
        "(target < 1024 MB)"
    )


if __name__ == "__main__":
    main()
