"""``leadsync score`` end to end on a generated 20-column CSV: rows per second and peak memory (RSS).

Each run is a fresh process that runs the ``leadsync score --input F --output O`` command (``run_score``,
as the CLI calls it) with the default rules and the default CSV mapping (no config, no model). Printed: the
whole process's wall time, the command's wall and CPU time after start-up (the checks of ``check --input``,
reading, mapping, scoring, writing the atomic output file; the imports, the model's too, are start-up), rows/s of
both, and the process's peak RSS from ``wait4``. On a shared machine CPU seconds are the steadier figure.
The file (generated in chunks, ~200 bytes a row: company and free-mail addresses, titles,
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


def child(source: Path, output: Path) -> None:
    """In the measured process: the ``leadsync score`` command after start-up, timed (wall and CPU)."""
    import json

    here = Path(__file__).resolve().parent  # benchmarks/scoring.py must not shadow the scoring package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from rich.console import Console

    import leadsync.model_apply  # noqa: F401  (imported by run_score: start-up, not scoring)
    from leadsync.csv_commands import run_score
    from leadsync.scorefile import OutputColumns

    started, cpu = time.perf_counter(), time.process_time()
    code = run_score(
        source, output, None, delimiter=None, encoding=None, max_record_lines=20, strict=False, rejects=None,
        columns=OutputColumns(), err=Console(stderr=True, quiet=True),
    )  # fmt: skip
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "code": code}))


def run_score(source: Path, output: Path, pythonpath: Path | None) -> tuple[float, float, float, float]:
    """Seconds in all, seconds and CPU seconds of the command after start-up, peak RSS (MiB) of one process."""
    import json

    env = {k: v for k, v in os.environ.items() if k != "LEADSYNC_CONFIG"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(source), str(output)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=source.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"leadsync score failed: {err.decode()[-2000:]}")
    timed = json.loads(out.decode().strip().splitlines()[-1])
    return elapsed, timed["seconds"], timed["cpu"], usage.ru_maxrss / 1024


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
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(s) for s in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="leadsync-score-bench-") as tmp:
        folder = Path(tmp)
        before = None
        if args.before:
            (folder / "before").mkdir()
            before = export(args.before, folder / "before")
        print("command = `leadsync score` after interpreter start-up and imports; total = the whole process")
        print(
            f"{'code':<16} {'rows':>10} {'MB':>5} {'total s':>8} {'command s':>10} {'CPU s':>6} "
            f"{'rows/s':>9} {'rows/CPU s':>10} {'peak RSS MiB':>12}"
        )
        for rows in sizes:
            source = folder / f"leads-{rows}.csv"
            generate(source, rows)
            size = source.stat().st_size / 1e6
            runs = [("after", None)] + ([("before", before)] if before is not None and rows <= args.before_rows else [])
            for name, path in runs:
                runs_ = [run_score(source, folder / "scored.csv", path) for _ in range(args.repeat)]
                total, seconds, cpu, rss = min(runs_, key=lambda r: r[1])
                label = name if path is None else f"{name} {args.before}"
                print(
                    f"{label:<16} {rows:>10,} {size:>5.0f} {total:>8.1f} {seconds:>10.2f} {cpu:>6.1f} "
                    f"{rows / seconds:>9,.0f} {rows / cpu:>10,.0f} {rss:>12.0f}"
                )
                sys.stdout.flush()
            source.unlink()


if __name__ == "__main__":
    main()
