"""What the data checks of ``leadsync check --input`` / ``score`` cost on a big export (issue 17: < 1 s).

Writes a synthetic 37-column export of ``--rows`` rows (``;``-delimited, ``Select`` and ``NA`` placeholders,
like a marketing-automation export) and a config with lookup tables, ranges, a counter and a ``missing:``
penalty, then times ``csv_check.check_file`` on it: dialect detection, the header and the first 10,000
records, every rule's attributes and values against them. The checks sample, so the figure should not
grow with the file; the same is timed on a 10,000-row file for comparison. Generation time is excluded.

Usage: ``python benchmarks/csv_check.py [--rows 1000000] [--repeat 5] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from leadsync.csv_check import check_file

ORIGINS = ["Landing Page Submission", "API", "Lead Add Form", "Lead Import"]
SOURCES = ["Google", "Direct Traffic", "Olark Chat", "Organic Search", "Reference", "Welingak Website"]
OCCUPATIONS = ["Unemployed", "Working Professional", "Student", "Select", ""]
EXTRA = [f"Field {i}" for i in range(31)]
HEADER = ["Prospect ID", "Lead Origin", "Lead Source", "TotalVisits", "Total Time Spent on Website", "Occupation"]

CONFIG = """\
csv:
  null_values: [Select]
  fields:
    lead_origin: Lead Origin
    lead_source: Lead Source
    occupation: Occupation
    visits_total: {property: TotalVisits, type: int}
    time_on_site_s: {property: Total Time Spent on Website, type: int}
scoring:
  base: none
  fit:
    - {name: origin, attribute: lead_origin, points_by_value: {lead add form: 30, landing page submission: 5}}
    - {name: source, attribute: lead_source, points_by_value: {google: 5, reference: 10, organic search: 3}}
  engagement:
    - name: time_on_site
      attribute: time_on_site_s
      points_by_range: [{below: 100, points: 0}, {from: 100, below: 1000, points: 10}, {from: 1000, points: 25}]
    - {name: visits, points: 2, counter: visits_total, cap: 20}
  penalties:
    - {name: no_occupation, points: -4, when: {occupation: {missing: true}}}
"""


def write_export(path: Path, rows: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(";".join(HEADER + EXTRA) + "\n")
        extra = ";".join(f"v{j}" for j in range(len(EXTRA)))
        for i in range(rows):
            visits = rng.choice(("0", "3", "7", "12", "NA"))
            cells = (
                f"p{i:09d}",
                rng.choice(ORIGINS),
                rng.choice(SOURCES),
                visits,
                str(rng.randrange(2500)),
                rng.choice(OCCUPATIONS),
            )
            out.write(";".join(cells) + ";" + extra + "\n")


def timed(source: Path, config: Path, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        check = check_file(source, config)
        runs.append(time.perf_counter() - start)
        assert not check.errors, check.errors
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="Write the files here and keep them.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "leadsync.yaml"
        config.write_text(CONFIG)
        big, small = folder / "big.csv", folder / "small.csv"
        start = time.perf_counter()
        write_export(big, args.rows)
        write_export(small, 10_000)
        generated = time.perf_counter() - start
        size = big.stat().st_size / 1e6
        print(
            f"generated {args.rows:,} rows x {len(HEADER) + len(EXTRA)} columns ({size:,.0f} MB) in {generated:.1f} s"
        )
        t_big, t_small = timed(big, config, args.repeat), timed(small, config, args.repeat)
        print(f"check_file on {args.rows:,} rows: {t_big * 1000:.0f} ms (median of {args.repeat})")
        print(f"check_file on 10,000 rows: {t_small * 1000:.0f} ms; the big file costs {t_big / t_small:.2f}x")
        print(f"data checks under 1 s on the big file: {'yes' if t_big < 1 else 'NO'}")


if __name__ == "__main__":
    main()
