"""Scoring throughput: leads scored per second on one core with the default rules, and peak memory.

Synthetic leads (realistic mix of titles, company sizes, free-mail / disposable / role addresses, HubSpot
counters) with ~10 activities each on average (page views incl. pricing and demo pages, visits, form
submissions, email opens/clicks/replies, meetings, ...) are generated in chunks and streamed through the
engine, so memory stays bounded whatever ``--leads`` is.

Paths measured (generation time is excluded from the rates and reported separately):

* ``columnar``: ``CompiledRules.score_batch`` on a ``LeadBatch`` built from arrays (the bulk path): total,
  parts, grade, qualification and the per-rule explanation matrix for every lead;
  ``--materialize`` also builds every ``Score`` object (hits, values, reasons text).
* ``objects``: ``CompiledRules.score_many`` on ``Lead`` / ``Activity`` objects, full ``Score`` objects
  (what the sync pipeline calls; columnar under the hood, chunk by chunk), and ``CompiledRules.score`` called
  lead by lead (the single-lead path used by explanations).

Usage: ``python benchmarks/scoring.py [--leads 1000000] [--chunk 50000] [--path columnar|objects|both]``
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import Activity, Categorical, LeadBatch, QualificationState, compile_rules, default_rules
from scoring.model import Lead

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOW_US = int((NOW - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
DAY_US = 86_400_000_000

TITLES = [
    "CEO",
    "Founder",
    "CTO",
    "Chief Marketing Officer",
    "VP Marketing",
    "VP of Sales",
    "Head of Growth",
    "SVP Engineering",
    "Director of Marketing",
    "Marketing Director",
    "IT Director",
    "Director, Sales Ops",
    "Marketing Manager",
    "Product Manager",
    "Sales Manager",
    "Engineering Manager",
    "Team Lead",
    "Software Engineer",
    "Data Analyst",
    "Account Executive",
    "Marketing Specialist",
    "Consultant",
    "Designer",
    "Developer",
    "Operations Coordinator",
    "Student",
    "Intern",
    "Job Seeker",
    "Retired",
    "Business Analyst",
    "Sales Development Representative",
    "Customer Success Manager",
    "",
    "n/a",
]
INDUSTRIES = [
    "Software",
    "Computer Software",
    "Information Technology",
    "Financial Services",
    "Retail",
    "Healthcare",
    "Manufacturing",
    "Education",
    "Government",
    "Marketing and Advertising",
    "Telecommunications",
    "Construction",
    "Real Estate",
    "Non-Profit",
    "Consulting",
    "Insurance",
    "Media",
    "Transportation",
]
COUNTRIES = ["US", "United States", "GB", "DE", "FR", "CA", "IN", "BR", "AU", "NL", "ES", "IT", "JP", "CN", "SE"]
FREE = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "qq.com", "mail.ru", "icloud.com", "gmx.de"]
DISPOSABLE = ["mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com"]
FIRST = ["anna", "ben", "carla", "dev", "emma", "farid", "gina", "hiro", "ivan", "jun", "kate", "li", "maria"]
ROLE = ["info", "sales", "contact", "hello", "support", "admin", "noreply"]
#: activity kinds and how often each occurs in the synthetic stream
KIND_SHARES = {
    "page_view": 0.42, "visit": 0.14, "form_submission": 0.04, "email_open": 0.18, "email_click": 0.07,
    "email_reply": 0.01, "email_sent": 0.08, "meeting": 0.01, "call": 0.01, "chat": 0.02, "download": 0.02,
}  # fmt: skip
KINDS = list(KIND_SHARES)
KIND_P = list(KIND_SHARES.values())
URLS = [
    "https://acme.io/",
    "https://acme.io/pricing",
    "https://acme.io/demo",
    "https://acme.io/blog/a",
    "https://acme.io/blog/b",
    "https://acme.io/docs",
    "https://acme.io/product",
    "https://acme.io/careers",
    "https://acme.io/pricing?plan=pro",
    "https://acme.io/about",
    "https://acme.io/customers",
    "https://acme.io/integrations",
    "https://acme.io/blog/c",
    "https://acme.io/contact-sales",
]
URL_P = [0.2, 0.08, 0.03, 0.1, 0.1, 0.1, 0.1, 0.04, 0.03, 0.06, 0.05, 0.05, 0.04, 0.02]
FORMS = ["Newsletter signup", "Ebook: Scoring 101", "Request a demo", "Webinar registration", "Contact sales"]


@dataclass
class Chunk:
    n: int
    leads: dict[str, Any]
    ids: list[str]
    act_lead: np.ndarray[Any, Any]
    act_kind: np.ndarray[Any, Any]
    act_ts: np.ndarray[Any, Any]
    act_url: np.ndarray[Any, Any]
    act_form: np.ndarray[Any, Any]


def generate(n: int, start: int, rng: np.random.Generator, activities: float) -> Chunk:
    """One chunk of synthetic leads, column by column."""
    company = rng.integers(0, 5000, n)
    kind_of_email = rng.choice(4, n, p=[0.62, 0.3, 0.03, 0.05])  # company, free, disposable, role@company
    free_pick = rng.integers(0, len(FREE), n)
    disp_pick = rng.integers(0, len(DISPOSABLE), n)
    first = rng.integers(0, len(FIRST), n)
    role = rng.integers(0, len(ROLE), n)
    emails: list[str] = []
    for i, (k, c, f, d, fn, r) in enumerate(
        zip(
            kind_of_email.tolist(),
            company.tolist(),
            free_pick.tolist(),
            disp_pick.tolist(),
            first.tolist(),
            role.tolist(),
            strict=True,
        )
    ):
        uid = start + i
        if k == 0:
            emails.append(f"{FIRST[fn]}.{uid}@company{c}.com")
        elif k == 1:
            emails.append(f"{FIRST[fn]}{uid}@{FREE[f]}")
        elif k == 2:
            emails.append(f"x{uid}@{DISPOSABLE[d]}")
        else:
            emails.append(f"{ROLE[r]}@company{c}.com")
    work = np.where(rng.random(n) < 0.05, company, -1)
    work_email = [None if w < 0 else f"w{start + i}@company{w}.com" for i, w in enumerate(work.tolist())]
    employees = np.round(np.exp(rng.normal(5.0, 1.8, n)))
    employees[rng.random(n) < 0.2] = np.nan
    created = NOW_US - (rng.exponential(300, n) * DAY_US).astype(np.int64)
    last_visit = NOW_US - (rng.exponential(60, n) * DAY_US).astype(np.int64)
    has_visit = rng.random(n) < 0.7
    leads: dict[str, Any] = {
        "email": emails,
        "work_email": work_email,
        "job_title": Categorical(rng.integers(0, len(TITLES), n), TITLES),
        "employees": employees,
        "annual_revenue": employees * rng.uniform(50_000, 300_000, n),
        "industry": Categorical(rng.integers(0, len(INDUSTRIES), n), INDUSTRIES),
        "country": Categorical(rng.integers(0, len(COUNTRIES), n), COUNTRIES),
        "opted_out": Categorical((rng.random(n) < 0.03).astype(np.int64), [False, True]),
        "bounced": Categorical((rng.random(n) < 0.01).astype(np.int64), [False, True]),
        "created_at": created.astype("datetime64[us]"),
        "page_views": rng.poisson(8, n).astype(np.float64),
        "visits": rng.poisson(3, n).astype(np.float64),
        "form_submissions": rng.poisson(0.4, n).astype(np.float64),
        "email_opens": rng.poisson(4, n).astype(np.float64),
        "email_clicks": rng.poisson(1, n).astype(np.float64),
        "email_replies": rng.poisson(0.05, n).astype(np.float64),
        "last_visit_at": np.where(has_visit, last_visit, np.iinfo(np.int64).min).astype("datetime64[us]"),
    }
    per_lead = rng.poisson(activities, n)
    m = int(per_lead.sum())
    act_lead = np.repeat(np.arange(n, dtype=np.int64), per_lead)
    act_kind = rng.choice(len(KINDS), m, p=KIND_P)
    act_ts = NOW_US - (rng.exponential(70, m) * DAY_US).astype(np.int64)
    act_url = np.where(act_kind == 0, rng.choice(len(URLS), m, p=URL_P), -1)
    act_form = np.where(act_kind == 2, rng.integers(0, len(FORMS), m), -1)
    return Chunk(n, leads, [f"L{start + i}" for i in range(n)], act_lead, act_kind, act_ts, act_url, act_form)


def to_batch(chunk: Chunk) -> LeadBatch:
    return LeadBatch.from_columns(
        chunk.n,
        chunk.leads,
        ids=chunk.ids,
        activity_lead=chunk.act_lead,
        activity_kind=Categorical(chunk.act_kind, KINDS),
        activity_timestamp=chunk.act_ts,
        activity_attributes={"url": Categorical(chunk.act_url, URLS), "form": Categorical(chunk.act_form, FORMS)},
    )


def to_objects(chunk: Chunk) -> list[tuple[Lead, list[Activity], QualificationState | None]]:
    """The same chunk as canonical objects (what the sync pipeline hands to ``score_many``)."""
    cols = {name: _python_values(values, chunk.n) for name, values in chunk.leads.items()}
    fields = (
        "email",
        "job_title",
        "employees",
        "annual_revenue",
        "industry",
        "country",
        "opted_out",
        "bounced",
        "created_at",
    )
    extra = [name for name in cols if name not in fields]
    stamps = chunk.act_ts.astype("datetime64[us]").tolist()
    offsets = np.searchsorted(chunk.act_lead, np.arange(chunk.n + 1)).tolist()
    kinds, urls, forms = chunk.act_kind.tolist(), chunk.act_url.tolist(), chunk.act_form.tolist()
    items: list[tuple[Lead, list[Activity], QualificationState | None]] = []
    for i in range(chunk.n):
        employees = cols["employees"][i]
        lead = Lead(
            id=chunk.ids[i],
            email=cols["email"][i],
            job_title=cols["job_title"][i] or None,
            employees=None if employees is None else int(employees),
            annual_revenue=cols["annual_revenue"][i],
            industry=cols["industry"][i],
            country=cols["country"][i],
            opted_out=bool(cols["opted_out"][i]),
            bounced=bool(cols["bounced"][i]),
            created_at=cols["created_at"][i],
            attributes={name: cols[name][i] for name in extra if cols[name][i] is not None},
        )
        acts = []
        for j in range(offsets[i], offsets[i + 1]):
            attrs: dict[str, Any] = {}
            if urls[j] >= 0:
                attrs["url"] = URLS[urls[j]]
            if forms[j] >= 0:
                attrs["form"] = FORMS[forms[j]]
            acts.append(Activity(chunk.ids[i], KINDS[kinds[j]], stamps[j].replace(tzinfo=UTC), attrs))
        items.append((lead, acts, None))
    return items


def _python_values(values: Any, n: int) -> list[Any]:
    if isinstance(values, Categorical):
        cats = list(values.categories)
        return [cats[c] if c >= 0 else None for c in np.asarray(values.codes).tolist()]
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return [None if v is None else v.replace(tzinfo=UTC) for v in values.astype("datetime64[us]").tolist()]
    if isinstance(values, np.ndarray):
        return [None if v != v else v for v in values.tolist()]
    return list(values)


def chunks(total: int, size: int, seed: int, activities: float) -> Iterator[tuple[float, Chunk]]:
    rng = np.random.default_rng(seed)
    done = 0
    while done < total:
        n = min(size, total - done)
        t0 = time.perf_counter()
        chunk = generate(n, done, rng, activities)
        yield time.perf_counter() - t0, chunk
        done += n


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class StageTimes(dict[str, float]):
    """Seconds spent in each stage, summed over the chunks: ``with times("score"): ...``."""

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = self.get(stage, 0.0) + time.perf_counter() - t0


def run_columnar(args: argparse.Namespace) -> None:
    engine = compile_rules(default_rules())
    gen = 0.0
    times = StageTimes()
    leads = acts = qualified = 0
    grades = np.zeros(3, dtype=np.int64)
    for gen_s, chunk in chunks(args.leads, args.chunk, args.seed, args.activities):
        gen += gen_s
        with times("build"):
            batch = to_batch(chunk)
        with times("score"):
            result = engine.score_batch(batch, NOW)
        with times("materialize"):
            if args.materialize:
                scores = result.scores()
                assert len(scores) == chunk.n
                del scores
        leads += chunk.n
        acts += batch.m
        qualified += int(result.qualified.sum())
        grades += np.bincount(result.grade_codes, minlength=3)
        del batch, result, chunk
        gc.collect()
    build, score, materialize = times["build"], times["score"], times["materialize"]
    core = build + score
    print(f"columnar path (score_batch), rules {engine.version}, {len(engine.rule_names)} rules")
    print(f"  leads: {leads:,}  activities: {acts:,} ({acts / max(leads, 1):.1f}/lead)  chunk: {args.chunk:,}")
    print(f"  generating synthetic data: {gen:.1f}s (not counted)")
    print(f"  batch from arrays: {build:.2f}s   scoring: {score:.2f}s")
    print(f"  => {leads / core:,.0f} leads/s (scores, grades, MQL flags, per-rule explanation matrix)")
    if args.materialize:
        total = core + materialize
        print(f"  + Score objects with hits and reasons: {materialize:.2f}s => {leads / total:,.0f} leads/s")
    print(f"  grades cold/warm/hot: {grades.tolist()}  qualified: {qualified:,}")


def run_objects(args: argparse.Namespace) -> None:
    engine = compile_rules(default_rules())
    gen = 0.0
    times = StageTimes()
    leads = acts = single_leads = 0
    for gen_s, chunk in chunks(args.object_leads, args.chunk, args.seed, args.activities):
        gen += gen_s
        with times("build"):
            items = to_objects(chunk)
        with times("many"):
            scores = engine.score_many(items, NOW)
        sample = items[: max(0, args.single_leads - single_leads)]
        with times("single"):
            for lead, activities, previous in sample:
                engine.score(lead, activities, NOW, previous)
        leads += len(scores)
        single_leads += len(sample)
        acts += sum(len(a) for _, a, _ in items)
        del items, scores, chunk, sample
        gc.collect()
    build, many, single = times["build"], times["many"], times["single"]
    print(f"object path (Lead/Activity objects in, full Score objects out), rules {engine.version}")
    print(f"  leads: {leads:,}  activities: {acts:,}")
    print(f"  generating + building objects: {gen + build:.1f}s (not counted)")
    print(f"  score_many: {many:.2f}s => {leads / many:,.0f} leads/s")
    if single_leads:
        print(f"  score, one lead at a time ({single_leads:,} leads): {single_leads / single:,.0f} leads/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads for the columnar path")
    parser.add_argument("--object-leads", type=int, default=None, help="leads for the object path")
    parser.add_argument("--single-leads", type=int, default=10_000, help="leads scored one at a time")
    parser.add_argument("--chunk", type=int, default=20_000, help="leads per streamed chunk")
    parser.add_argument("--activities", type=float, default=10.0, help="average activities per lead")
    parser.add_argument("--path", choices=["columnar", "objects", "both"], default="both")
    parser.add_argument("--materialize", action="store_true", help="columnar: also build every Score object")
    parser.add_argument("--tracemalloc", action="store_true", help="also report tracemalloc's peak (slower)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.object_leads is None:
        args.object_leads = min(args.leads, 100_000)
    if args.tracemalloc:
        tracemalloc.start()
    compile_rules(default_rules())  # load the packaged rules and the domain lists before measuring
    baseline = peak_rss_mib()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, one process, one core")
    if args.path in ("columnar", "both"):
        run_columnar(args)
    if args.path in ("objects", "both"):
        run_objects(args)
    print(f"peak memory: {peak_rss_mib():.0f} MiB RSS (after imports and rules: {baseline:.0f} MiB)")
    if args.tracemalloc:
        _, peak = tracemalloc.get_traced_memory()
        print(f"tracemalloc peak: {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
