"""``leadsync score`` end to end on a generated 20-column CSV: rows per second and peak memory (RSS).

Each run is a fresh ``python -m leadsync score --input F --output O`` process with the default rules and
the default CSV mapping (no config, no model); its wall time covers start-up, the checks of
``check --input``, reading, mapping, scoring and writing the atomic output file, and its peak RSS comes from
``wait4``. The file (generated in chunks, ~200 bytes a row: company and free-mail addresses, titles,
company-size ranges, revenue, ISO-8601 date-times, HubSpot counters, a few quoted cells) is written once per
size into a temporary folder.

``--before REV`` runs the same command on the code of git revision ``REV`` too (exported with ``git archive``
and put first on ``PYTHONPATH``, same virtualenv), for a before/after in one run; the row-by-row path is
slow, so ``--before-rows`` bounds the sizes it is run on.

Usage: ``python benchmarks/score_csv.py [--rows 100000,1000000] [--before 92e40af] [--before-rows 100000]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "employees",
    "annual_revenue",
    "industry",
    "country",
    "lifecycle_stage",
    "lead_status",
    "opted_out",
    "bounced",
    "owner",
    "created_at",
    "page_views",
    "visits",
    "form_submissions",
    "email_opens",
    "last_visit_at",
)
TITLES = [
    "CEO", "Founder", "CTO", "VP Marketing", "VP of Sales", "Head of Growth", "Director of Marketing",
    "IT Director", "Marketing Manager", "Product Manager", "Sales Manager", "Software Engineer", "Data Analyst",
    "Account Executive", "Consultant", "Designer", "Student", "Intern", "Retired", "", "n/a",
    "Director, Sales Ops",
]  # fmt: skip
FIRST = ["Ana", "Ben", "Chloé", "Dev", "Eva", "Femi", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lena", "Mo", "Nia"]
LAST = ["Smith", "García", "Okafor", "Nguyen", "Müller", "Rossi", "Kowalski", "Tanaka", "Dubois", "O'Brien"]
DOMAINS = ["gmail.com", "yahoo.com", "mailinator.com", "hotmail.com"] + [f"company{i}.com" for i in range(400)]
SIZES = ["1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5000+", "250", "", "N/A"]
INDUSTRIES = ["Software", "SaaS", "Retail", "Healthcare", "Manufacturing", "Finance", "Education", ""]
COUNTRIES = ["US", "DE", "FR", "GB", "ES", "IN", "BR", "JP", ""]
STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "customer", ""]
STATUSES = ["NEW", "OPEN", "IN_PROGRESS", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", ""]
#: date-times fall in the 400 days before today, so that recency rules fire as they would on a live export
BASE = np.datetime64("today", "s") - np.timedelta64(400 * 86_400, "s")


def _pick(rng: np.random.Generator, values: list[str], n: int) -> np.ndarray:
    return np.array(values, dtype=object)[rng.integers(0, len(values), n)]


def _instants(rng: np.random.Generator, n: int, blank: float) -> np.ndarray:
    seconds = rng.integers(0, 400 * 86_400, n)
    texts = np.datetime_as_string(BASE + seconds.astype("timedelta64[s]"), unit="s").astype(object) + "Z"
    texts[rng.random(n) < blank] = ""
    return texts


def generate(path: Path, rows: int, seed: int = 7, chunk: int = 100_000) -> None:
    """A CSV of ``rows`` leads with the 20 ``COLUMNS``, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(COLUMNS) + "\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ids = np.arange(start, start + n).astype(str).astype(object)
            local = np.where(rng.random(n) < 0.05, "info", "u") + ids
            cells = {
                "email": local + "@" + _pick(rng, DOMAINS, n),
                "first_name": _pick(rng, FIRST, n),
                "last_name": _pick(rng, LAST, n),
                "company": "Company " + rng.integers(0, 5_000, n).astype(str).astype(object),
                "job_title": _pick(rng, TITLES, n),
                "employees": _pick(rng, SIZES, n),
                "annual_revenue": (rng.integers(1, 50_000, n) * 1_000).astype(str).astype(object),
                "industry": _pick(rng, INDUSTRIES, n),
                "country": _pick(rng, COUNTRIES, n),
                "lifecycle_stage": _pick(rng, STAGES, n),
                "lead_status": _pick(rng, STATUSES, n),
                "opted_out": np.where(rng.random(n) < 0.02, "true", "false").astype(object),
                "bounced": np.where(rng.random(n) < 0.01, "true", "false").astype(object),
                "owner": "owner" + rng.integers(0, 50, n).astype(str).astype(object),
                "created_at": _instants(rng, n, 0.0),
                "page_views": rng.poisson(8, n).astype(str).astype(object),
                "visits": rng.poisson(3, n).astype(str).astype(object),
                "form_submissions": rng.poisson(0.4, n).astype(str).astype(object),
                "email_opens": rng.poisson(2, n).astype(str).astype(object),
                "last_visit_at": _instants(rng, n, 0.2),
            }
            quoted = cells["job_title"] == "Director, Sales Ops"
            cells["job_title"][quoted] = '"Director, Sales Ops"'
            lines = cells[COLUMNS[0]]
            for name in COLUMNS[1:]:
                lines = lines + "," + cells[name]
            handle.write("\n".join(lines.tolist()) + "\n")


def run_score(source: Path, output: Path, pythonpath: Path | None) -> tuple[float, float, int]:
    """Seconds, peak RSS (MiB) and exit code of one ``leadsync score`` process."""
    env = {k: v for k, v in os.environ.items() if k != "LEADSYNC_CONFIG"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    command = [sys.executable, "-m", "leadsync", "score", "--input", str(source), "--output", str(output)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=source.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise SystemExit(f"leadsync score failed ({process.returncode}): {stderr.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, process.returncode


def export(rev: str, folder: Path) -> Path:
    """The code of git revision ``rev`` in ``folder`` (for the "before" runs)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--before", default=None, help="also run this git revision (before/after)")
    parser.add_argument("--before-rows", type=int, default=100_000, help="largest size the --before run is given")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (the best is kept)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="leadsync-score-bench-") as tmp:
        folder = Path(tmp)
        before = None
        if args.before:
            (folder / "before").mkdir()
            before = export(args.before, folder / "before")
        print(f"{'code':<10} {'rows':>10} {'MB':>7} {'seconds':>8} {'rows/s':>10} {'peak RSS MiB':>13}")
        for rows in sizes:
            source = folder / f"leads-{rows}.csv"
            generate(source, rows)
            size = source.stat().st_size / 1e6
            runs = [("after", None)] + ([("before", before)] if before is not None and rows <= args.before_rows else [])
            for name, path in runs:
                best = min(run_score(source, folder / "scored.csv", path) for _ in range(args.repeat))
                seconds, rss, _ = best
                label = name if path is None else f"{name} {args.before}"
                print(f"{label:<10} {rows:>10,} {size:>7.0f} {seconds:>8.2f} {rows / seconds:>10,.0f} {rss:>13.0f}")
                sys.stdout.flush()
            source.unlink()


if __name__ == "__main__":
    main()
