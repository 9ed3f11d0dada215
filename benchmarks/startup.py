"""Start-up: wall time of ``leadsync --help`` and ``leadsync explain`` on a 100,000-lead SQLite cache.

Targets (issue 21): ``--help`` under 0.5 s, ``explain`` under 1 s; ``rules fit`` without its input (a usage
error) is timed too. Each command runs as a fresh process (the installed console script, as a user runs it);
the figures are the median wall time and the median CPU time (user + system) of ``--runs`` runs after one
warm-up, which writes the bytecode (to a temporary PYTHONPYCACHEPREFIX, as an installed package has its
.pyc files) and warms the OS file cache. The CPU time is the steadier figure on a shared machine: the load
average is printed with the figures. Then one run of each under ``-X importtime`` (PYTHONPROFILEIMPORTTIME)
gives the packages that cost the most import time (self time summed per top-level package).

The cache is built with the state store's bulk API (``upsert_leads``, ``commit_pass`` for a stored score per
lead): HubSpot-shaped properties and a few activities per lead.

``--before REV`` measures the project as it was at git revision REV too (``git archive`` into a temporary
folder, run from there with the same virtualenv), on the same cache, and prints both.

    .venv/bin/python benchmarks/startup.py [--leads 100000] [--runs 7] [--state /tmp/startup.db] [--before REV]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

# benchmarks/scoring.py would shadow the scoring package: import from the project, not from this folder
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from sync.state import CachedLead, StateStore, StoredScore  # noqa: E402

NOW = datetime(2025, 6, 1, tzinfo=UTC)
TITLES = ("CEO", "VP Marketing", "Marketing Manager", "Engineer", "Student", "Head of Growth", "Sales Rep")
INDUSTRIES = ("Software", "Retail", "Finance", "Healthcare", "Education", "")
SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+", "")
DOMAINS = ("acme.example", "gmail.com", "initech.example", "yahoo.com", "globex.example")
ACTIVITY_KINDS = ("page_view", "email_open", "form_submission", "email_click")
TARGET_S = {"--help": 0.5, "explain": 1.0}
#: where the measured processes write and read their bytecode (set in main)
PYCACHE: dict[str, str] = {}


def _email(i: int) -> str:
    return f"Person{i}@{DOMAINS[i % len(DOMAINS)]}"


def _lead(rng: random.Random, i: int) -> CachedLead:
    email = _email(i)
    created = NOW - timedelta(days=rng.uniform(1, 400))
    properties = {
        "email": email,
        "firstname": f"First{i}",
        "lastname": f"Last{i}",
        "company": f"Company {i % 5000}",
        "jobtitle": rng.choice(TITLES),
        "numemployees": rng.choice(SIZES),
        "industry": rng.choice(INDUSTRIES),
        "country": rng.choice(("US", "DE", "FR", "GB")),
        "lifecyclestage": rng.choice(("lead", "subscriber", "marketingqualifiedlead")),
        "createdate": created.isoformat(),
        "lastmodifieddate": (created + timedelta(days=1)).isoformat(),
        "hs_analytics_num_page_views": str(rng.randint(0, 40)),
        "hs_analytics_num_visits": str(rng.randint(0, 10)),
        "num_conversion_events": str(rng.randint(0, 3)),
        "hs_email_open": str(rng.randint(0, 20)),
    }
    activities = [
        {
            "kind": rng.choice(ACTIVITY_KINDS),
            "timestamp": (created + timedelta(days=rng.uniform(0, 30))).isoformat(),
            "attributes": {"url": "/pricing"},
        }
        for _ in range(rng.randint(0, 4))
    ]
    return CachedLead(f"{i:09d}", "contact", email, properties, activities, created + timedelta(days=1))


def build_cache(path: Path, n: int) -> float:
    """A ``n``-lead cache at ``path`` (and a stored score per lead) via the bulk API; returns seconds taken."""
    started = time.perf_counter()
    rng = random.Random(21)
    store = StateStore.open(f"sqlite:///{path}")
    try:
        for start in range(0, n, 10_000):
            ids = range(start, min(n, start + 10_000))
            store.upsert_leads([_lead(rng, i) for i in ids])
            scores = [
                StoredScore(f"{i:09d}", 40, 30, 10, 0, "warm", False, None, [], "", "bench", NOW, 40.0) for i in ids
            ]
            store.commit_pass(scores=scores, written={}, triggers=[], watermark=None)
    finally:
        store.close()
    return time.perf_counter() - started


def _config(folder: Path, state: Path) -> Path:
    config = folder / "leadsync.yaml"
    config.write_text(
        "crm: hubspot\nhubspot: {access_token: bench-token, base_url: 'http://127.0.0.1:9'}\n"
        f"state: {{url: 'sqlite:///{state}'}}\n",
        encoding="utf-8",
    )
    return config


def _command(source: Path, args: list[str], code: int, *, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    """The console script run from ``source`` (PYTHONPATH first, so a `--before` checkout wins); it must exit
    with ``code``."""
    env = dict(os.environ, PYTHONPATH=str(source), **PYCACHE)
    for name in ("PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    if importtime:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    script = Path(sys.executable).with_name("leadsync")
    result = subprocess.run([str(script), *args], env=env, cwd=source, capture_output=True, text=True, check=False)
    if result.returncode != code:
        raise SystemExit(f"`leadsync {' '.join(args)}` exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _medians(source: Path, args: list[str], code: int, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` runs (after a warm-up)."""
    _command(source, args, code)  # warm-up: bytecode written, files in the OS cache
    walls, cpus = [], []
    for _ in range(runs):
        started, cpu = time.perf_counter(), _cpu_of_children()
        _command(source, args, code)
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu_of_children() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def top_imports(stderr: str, limit: int = 6) -> list[tuple[str, float]]:
    """Import self time (ms) summed per top-level package, from ``-X importtime`` output, largest first."""
    by_package: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, _cumulative, name = (part.strip() for part in line.replace("import time:", "|").split("|"))
        by_package[name.split(".")[0]] += int(self_us) / 1000
    return sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:limit]


def measure(label: str, source: Path, commands: dict[str, tuple[list[str], int]], runs: int) -> None:
    for name, (args, code) in commands.items():
        wall, cpu = _medians(source, args, code, runs)
        imports = top_imports(_command(source, args, code, importtime=True).stderr)
        target = ""
        if name in TARGET_S:
            target = f"; target {TARGET_S[name]:g} s wall: {'met' if wall < TARGET_S[name] else 'MISSED'}"
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"{label:6} leadsync {name:9} wall {wall:6.3f} s, cpu {cpu:6.3f} s (medians of {runs}{target}; load {load})"
        )
        print("         top imports (self ms): " + ", ".join(f"{pkg} {ms:.0f}" for pkg, ms in imports))


def _checkout(rev: str, into: Path) -> Path:
    """The project's files at git revision ``rev``, unpacked into ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--state", type=Path, help="SQLite file to build the cache in (default: a temporary one)")
    parser.add_argument("--before", metavar="REV", help="also measure the project at this git revision")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leadsync-startup-") as tmp:
        folder = Path(tmp)
        state = args.state or folder / "state.db"
        if state.exists():
            print(f"cache: reusing {state}")
        else:
            seconds = build_cache(state, args.leads)
            print(f"cache: {args.leads} leads (and a score each) built in {seconds:.1f} s at {state}")
        config = _config(folder, state)
        PYCACHE["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        lead = _email(args.leads // 2).lower()  # by email: the id lookup misses, then the email_lower index
        commands = {
            "--help": (["--help"], 0),
            "explain": (["explain", lead, "--config", str(config)], 0),
            "rules fit": (["rules", "fit"], 2),  # neither --input nor --from-history: one line, exit 2
        }
        if args.before:
            measure("before", _checkout(args.before, folder / "before"), commands, args.runs)
        measure("after" if args.before else "now", ROOT, commands, args.runs)


if __name__ == "__main__":
    main()
