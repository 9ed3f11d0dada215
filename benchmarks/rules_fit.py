"""`leadsync rules fit` on 100,000 labeled rows with 30 candidate columns: seconds, end to end.

Wall seconds on a busy machine overstate the cost: the CPU seconds of the process are printed too.

Target: under 60 s on one core (reading the CSV, choosing candidates, the leakage guard, 5-fold
cross-validation over the penalty grid, the final fit and the commented file). The data are the fit
tests' realistic export (tests/fit/leads_data.py) with the post-sale columns left out, plus numeric
columns of weak signal so that 30 columns are candidates. Prints figures; not a timed test.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
from tests.fit import leads_data  # noqa: E402

ROWS = 100_000
CANDIDATES = 30


def main() -> None:
    header, rows = leads_data.generate(ROWS, seed=7)
    header, rows = leads_data.without(header, rows, leads_data.POST_SALE)
    y = leads_data.outcomes(header, rows)
    rng = np.random.default_rng(7)
    extra = CANDIDATES - 16  # the export has 16 usable candidate columns
    for k in range(extra):
        signal = rng.normal(size=ROWS) + 0.15 * (k % 3) * y
        header.append(f"Extra Score {k + 1}")
        for row, value in zip(rows, np.round(signal, 2), strict=True):
            row.append(str(value))
    with tempfile.TemporaryDirectory() as folder:
        data = leads_data.write(Path(folder) / "labeled.csv", header, rows)
        out = Path(folder) / "fitted.yaml"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "leadsync", "rules", "fit", "--input", str(data), "--label", "Converted"]
        command += ["--output", str(out), "--json"]
        if hasattr(os, "sched_setaffinity"):
            command = ["taskset", "-c", "0", *command]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        seconds = time.perf_counter() - start
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            print(done.stdout, done.stderr)
            raise SystemExit(done.returncode)
        result = json.loads(done.stdout)
    print(
        f"rules fit: {ROWS:,} rows x {len(result['candidates'])} candidate columns in {seconds:.1f} s on one core "
        f"({cpu.ru_utime + cpu.ru_stime:.1f} s of CPU; target < 60 s); {result['rules']} rules, "
        f"cross-validated AUC {result['cv_auc']['value']:.3f}, {len(result['fold_aucs'])} folds"
    )


if __name__ == "__main__":
    main()
