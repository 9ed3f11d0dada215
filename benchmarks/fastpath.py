"""The figures of issue 13 in one run: every bulk scoring entry point, each printed next to its target.

* ``leadsync score`` end to end (the whole process: start-up, checks, reading, mapping, scoring, writing)
  on a generated 20-column CSV (``benchmarks/score_csv.py``'s file and child) with the default rules, at
  ``--rows`` and a tenth of it: rows/s and peak RSS (from ``wait4``), which must stay flat.
* The pipeline's scoring step (``SyncPipeline._process_page`` between the reads and the commit): HubSpot
  records with ~10 activities each, in pages of ``BATCH_SIZE``, mapped, scored, the written values and
  the diff against what was last written. Printed without and with the full ``Score`` objects that the
  committed stored scores are built from. Generating the records is not counted.
* The rescore of the whole cache after a rules change (``rescore_from_cache``, dry run: read, map,
  score, diff; the CRM writes that follow are the API's pace, not ours) and ``preview`` of a rules
  change, on a ``--rows``-lead cache in SQLite and in PostgreSQL (a schema of its own, dropped after).
* ``leadsync explain EMAIL`` on the SQLite cache: the whole command, as a fresh process (median of 3).

Usage: ``python benchmarks/fastpath.py [--rows 1000000] [--skip csv,pipeline,sqlite,postgresql,explain]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# benchmarks/scoring.py would shadow the scoring package: import from the project, not from this folder
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PG_ADMIN = os.environ.get("LEADSYNC_TEST_PG_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TITLES = ("CEO", "VP Marketing", "Marketing Manager", "Engineer", "Student", "Head of Growth", "Director of Sales")
SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+", "250", "")
INDUSTRIES = ("software", "saas", "retail", "finance", "healthcare", "")
DOMAINS = ("gmail.com", "yahoo.com", "mailinator.com", *(f"acme{i}.example" for i in range(300)))
KINDS = ("page_view", "page_view", "page_view", "visit", "email_open", "email_click", "form_submission", "meeting")
URLS = ("/pricing", "/blog/a", "/demo", "/docs", "/", "/careers")
STAGES = ("subscriber", "lead", "marketingqualifiedlead", "customer", "")


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def row(figure: str, measured: str, target: str, ok: bool | None) -> None:
    mark = "" if ok is None else verdict(ok)
    print(f"  {figure:<58} {measured:<34} {target:<22} {mark}")
    sys.stdout.flush()


# -- synthetic HubSpot records, activities, cache ---------------------------------------------------------


def record_properties(rng: random.Random, i: int) -> dict[str, str]:
    created = NOW - timedelta(days=rng.uniform(1, 500), seconds=rng.randint(0, 86_399))
    return {
        "email": f"{'info' if i % 20 == 0 else 'u'}{i}@{rng.choice(DOMAINS)}",
        "firstname": f"First{i % 997}",
        "lastname": f"Last{i % 991}",
        "company": f"Company {i % 5000}",
        "jobtitle": rng.choice(TITLES),
        "numemployees": rng.choice(SIZES),
        "annualrevenue": str(rng.randint(0, 500) * 100_000),
        "industry": rng.choice(INDUSTRIES),
        "country": rng.choice(("US", "DE", "FR", "GB", "")),
        "lifecyclestage": rng.choice(STAGES),
        "createdate": created.isoformat().replace("+00:00", "Z"),
        "lastmodifieddate": (created + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        "hs_analytics_num_page_views": str(rng.randint(0, 60)),
        "hs_analytics_num_visits": str(rng.randint(0, 12)),
        "num_conversion_events": str(rng.randint(0, 3)),
        "hs_email_open": str(rng.randint(0, 20)),
    }


def activity_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    return [
        {
            "kind": rng.choice(KINDS),
            "timestamp": (NOW - timedelta(seconds=rng.randint(0, 200 * 86_400))).isoformat(),
            "attributes": {"url": rng.choice(URLS)},
        }
        for _ in range(n)
    ]


def build_cache(url: str, n: int, activities: int) -> float:
    """``n`` cached leads with 0..2*activities activities each and, for 30% of them, a stored MQL score."""
    from sync.state import CachedLead, StateStore, StoredScore

    started = time.perf_counter()
    rng = random.Random(5)
    with StateStore.open(url) as store:
        for start in range(0, n, 10_000):
            leads, scores = [], []
            for i in range(start, min(start + 10_000, n)):
                props = record_properties(rng, i)
                acts = activity_rows(rng, rng.randint(0, 2 * activities))
                leads.append(CachedLead(f"L{i:07d}", "contact", props["email"], props, acts, NOW))
                if rng.random() < 0.3:
                    at = NOW - timedelta(days=3)
                    scores.append(StoredScore(f"L{i:07d}", 55, 30, 25, 0, "warm", True, at, [], "", "v0", NOW))
            store.upsert_leads(leads)
            store.save_scores(scores)
    return time.perf_counter() - started


# -- the figures ------------------------------------------------------------------------------------------


def csv_figures(rows: int) -> None:
    score_csv = _module("score_csv")
    sizes = sorted({max(rows // 10, 1), rows})
    results: dict[int, tuple[float, float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="leadsync-fastpath-csv-") as tmp:
        for n in sizes:
            source = Path(tmp) / f"leads-{n}.csv"
            score_csv.generate(source, n)
            results[n] = score_csv.run_score(source, Path(tmp) / "scored.csv", None)
            source.unlink()
    total, seconds, cpu, rss = results[rows]
    print(f"leadsync score, default rules, 20 columns ({', '.join(f'{n:,}' for n in sizes)} rows)")
    rate = rows / total
    row(f"end to end, {rows:,} rows (whole process)", f"{rate:,.0f} rows/s ({total:.1f} s)", ">= 200,000 rows/s",
        rate >= 200_000)  # fmt: skip
    row("  the command after start-up", f"{rows / seconds:,.0f} rows/s ({seconds:.1f} s)", "", None)
    row("  CPU time of the command", f"{rows / cpu:,.0f} rows/CPU s ({cpu:.1f} s)", "", None)
    row(f"peak RSS, {rows:,} rows", f"{rss:.0f} MiB", "< 500 MB", rss * 1.048576 < 500)
    if len(sizes) > 1:
        small = results[sizes[0]][3]
        row(f"peak RSS, {sizes[0]:,} -> {rows:,} rows", f"{small:.0f} -> {rss:.0f} MiB", "flat (within 10%)",
            rss <= small * 1.1)  # fmt: skip


def pipeline_figures(rows: int, activities: int) -> None:
    from connectors.base import RawRecord
    from mappings import load_mapping
    from scoring import Activity, compile_rules, default_rules
    from sync.pipeline import BATCH_SIZE
    from sync.scoring_step import records_batch, score_batch
    from sync.writeback import WritebackSettings, changed_properties, desired_properties

    rules, mapping, settings = compile_rules(default_rules()), load_mapping("hubspot"), WritebackSettings()
    rng = random.Random(11)
    step = full = step_cpu = full_cpu = 0.0
    acts = 0
    for start in range(0, rows, BATCH_SIZE):
        ids = [f"C{i}" for i in range(start, min(start + BATCH_SIZE, rows))]
        page = [RawRecord(i, "contact", record_properties(rng, n), NOW) for n, i in enumerate(ids, start)]
        activity: dict[str, list[Activity]] = {
            i: [
                Activity(i, a["kind"], datetime.fromisoformat(a["timestamp"]), a["attributes"])
                for a in activity_rows(rng, rng.randint(0, 2 * activities))
            ]
            for i in ids
        }
        acts += sum(len(a) for a in activity.values())
        began, cpu = time.perf_counter(), time.process_time()
        scored = score_batch(rules, records_batch(mapping, page, activity, {}), NOW)
        for i, record in enumerate(page):
            desired = desired_properties(scored.values(i), scored.lead(i), settings)
            changed_properties(desired, {k: record.properties.get(k) for k in desired})
        middle, middle_cpu = time.perf_counter(), time.process_time()
        scored.scores()
        ended, ended_cpu = time.perf_counter(), time.process_time()
        step, step_cpu = step + middle - began, step_cpu + middle_cpu - cpu
        full, full_cpu = full + ended - began, full_cpu + ended_cpu - cpu
    print(f"the pipeline's scoring step: {rows:,} HubSpot records, {acts / rows:.1f} activities each, pages of "
          f"{BATCH_SIZE:,}")  # fmt: skip
    row("mapped, scored, written values and diff", f"{rows / step:,.0f} leads/s ({step:.1f} s)", ">= 200,000 leads/s",
        rows / step >= 200_000)  # fmt: skip
    row("  the same per CPU second", f"{rows / step_cpu:,.0f} leads/CPU s ({step_cpu:.1f} s)", "", None)
    row("  + a full Score per lead (the stored scores)", f"{rows / full:,.0f} leads/s ({full:.1f} s)", "", None)
    row("  the same per CPU second", f"{rows / full_cpu:,.0f} leads/CPU s ({full_cpu:.1f} s)", "", None)


def cache_figures(label: str, url: str, rows: int, activities: int) -> None:
    from connectors.hubspot import HubSpotConnector
    from leadsync.inspect_cache import preview
    from mappings import load_mapping
    from scoring import compile_rules, default_rules, load_rules
    from sync.pipeline import SyncPipeline, SyncSummary
    from sync.state import StateStore
    from sync.writeback import WritebackSettings

    built = build_cache(url, rows, activities)
    mapping = load_mapping("hubspot")
    current = compile_rules(default_rules(), mapping_version=mapping.version)
    proposed = compile_rules(
        load_rules({"qualification": {"threshold": 35, "release": 25}}), mapping_version=mapping.version
    )
    print(f"the lead cache on {label}: {rows:,} leads (built in {built:.0f} s, not counted)")
    with StateStore.open(url) as store:
        pipeline = SyncPipeline(
            connector=HubSpotConnector(access_token="bench", base_url="http://127.0.0.1:9"),
            mapping=mapping,
            rules=proposed,
            store=store,
            writeback=WritebackSettings(),
            use_model=False,
        )
        summary = SyncSummary(crm="hubspot", full=False, dry_run=True, rules_version=proposed.version)
        began, cpu = time.perf_counter(), time.process_time()
        pipeline.rescore_from_cache(NOW, summary, dry_run=True)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        row(f"rescore after a rules change ({summary.leads_rescored:,} leads)", f"{seconds:.1f} s ({cpu:.1f} s CPU)",
            "< 10 s", seconds < 10)  # fmt: skip
        began, cpu = time.perf_counter(), time.process_time()
        impact = preview(store, current, proposed, mapping, NOW)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        row(f"preview of a rules change ({impact.leads:,} leads)", f"{seconds:.1f} s ({cpu:.1f} s CPU)", "< 15 s",
            seconds < 15)  # fmt: skip


def explain_figure(db: Path, rows: int) -> None:
    config = db.parent / "leadsync.yaml"
    config.write_text(
        "crm: hubspot\nhubspot: {access_token: bench-token, base_url: 'http://127.0.0.1:9'}\n"
        f"state: {{url: 'sqlite:///{db}'}}\n",
        encoding="utf-8",
    )
    script = Path(sys.executable).with_name("leadsync")
    from sync.state import StateStore

    with StateStore.open(f"sqlite:///{db}") as store:
        found = store.find_lead(f"L{rows // 2:07d}")
    assert found is not None and found.email
    walls = []
    for _ in range(4):
        began = time.perf_counter()
        subprocess.run([str(script), "explain", "--config", str(config), found.email], check=True, capture_output=True)
        walls.append(time.perf_counter() - began)
    wall = statistics.median(walls[1:])  # the first run writes bytecode and warms the file cache
    row(f"leadsync explain EMAIL, {rows:,}-lead SQLite cache", f"{wall:.2f} s (median of 3)", "< 1.5 s", wall < 1.5)


def pg_schema() -> Iterator[str]:
    from sqlalchemy import create_engine, make_url
    from sqlalchemy.pool import NullPool

    schema = f"fastpath_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(PG_ADMIN).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the CSV, leads of the step and caches")
    parser.add_argument("--activities", type=int, default=5, help="average activities per lead (0..2x)")
    parser.add_argument("--skip", default="", help="comma-separated: csv, pipeline, sqlite, postgresql, explain")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"issue 13 figures, --rows {args.rows:,}; {os.cpu_count()} cores, load average {load} at the start")
    print(f"  {'figure':<58} {'measured':<34} {'target':<22}")
    if "csv" not in skip:
        csv_figures(args.rows)
    if "pipeline" not in skip:
        pipeline_figures(args.rows, args.activities)
    with tempfile.TemporaryDirectory(prefix="leadsync-fastpath-") as tmp:
        db = Path(tmp) / "cache.db"
        if "sqlite" not in skip or "explain" not in skip:
            if "sqlite" in skip:
                build_cache(f"sqlite:///{db}", args.rows, args.activities)
            else:
                cache_figures("SQLite", f"sqlite:///{db}", args.rows, args.activities)
        if "explain" not in skip:
            explain_figure(db, args.rows)
    if "postgresql" not in skip:
        for url in pg_schema():
            cache_figures("PostgreSQL", url, args.rows, args.activities)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load} at the end")


if __name__ == "__main__":
    main()
