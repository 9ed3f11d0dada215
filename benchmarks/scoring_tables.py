"""Lookup tables and ranges on the columnar engine: leads/s with tables vs the default rules, in one run.

The same synthetic chunks as ``benchmarks/scoring.py`` (default rules' attributes and ~10 activities per lead),
plus the columns of a typical CRM export: ``lead_origin`` and ``occupation`` (categorical, as a CSV reader
factorizes them), ``lead_source`` (plain Python strings, one object per row), ``time_on_site_s`` (float64 with
blanks). Each chunk is scored by three rule sets, timed separately:

* ``defaults``: the packaged default rules;
* ``defaults + tables``: the same, plus five table rules (three ``points_by_value``, two ``points_by_range``,
  one of them on ``employees``), in all three parts;
* ``tables only``: just the five table rules (``base: none``), their own cost.

Usage: ``python benchmarks/scoring_tables.py [--leads 300000] [--chunk 20000]``
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring import Categorical, CompiledRules, LeadBatch, compile_rules, default_rules, load_rules  # noqa: E402


def _sibling(name: str) -> Any:
    """``benchmarks/<name>.py`` as a module (``benchmarks/scoring.py`` would shadow the ``scoring`` package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).resolve().parent / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


base = _sibling("scoring")

ORIGINS = ["Landing Page Submission", "API", "Lead Add Form", "Lead Import", "Quick Add Form", "Select", ""]
ORIGIN_P = [0.5, 0.3, 0.1, 0.04, 0.02, 0.02, 0.02]
OCCUPATIONS = ["Unemployed", "Working Professional", "Student", "Businessman", "Housewife", "Other", "Select"]
OCCUPATION_P = [0.55, 0.2, 0.1, 0.05, 0.03, 0.02, 0.05]
SOURCES = ["Google", "Direct Traffic", "Olark Chat", "Organic Search", "Reference", "Welingak Website", "Facebook"]

TABLES: list[dict[str, Any]] = [
    {
        "name": "origin",
        "attribute": "lead_origin",
        "points_by_value": {"lead add form": 30, "landing page submission": 5, "api": 3, "lead import": 1},
        "default": 0,
    },
    {
        "name": "occupation",
        "attribute": "occupation",
        "points_by_value": {"working professional": 20, "businessman": 8, "other": 2},
        "missing": 0,
    },
    {
        "name": "company_size_band",
        "attribute": "employees",
        "points_by_range": [{"from": 50, "below": 200, "points": 5}, {"from": 200, "below": 5000, "points": 12}],
    },
]
ENGAGEMENT_TABLES: list[dict[str, Any]] = [
    {
        "name": "time_on_site",
        "attribute": "time_on_site_s",
        "points_by_range": [
            {"below": 100, "points": 0},
            {"from": 100, "below": 500, "points": 5},
            {"from": 500, "below": 1000, "points": 15},
            {"from": 1000, "points": 25},
        ],
    }
]
PENALTY_TABLES: list[dict[str, Any]] = [
    {
        "name": "source",
        "attribute": "lead_source",
        "points_by_value": {"olark chat": -5, "facebook": -3},
        "missing": -2,
    }
]


def rule_sets() -> dict[str, CompiledRules]:
    """The default rules, the default rules plus the tables (appended to each part's default list), the tables."""
    text = (ROOT / "scoring/defaults/rules.yaml").read_text(encoding="utf-8")
    defaults = yaml.safe_load(text)["scoring"]
    combined = load_rules(
        {
            "fit": [*defaults["fit"], *TABLES],
            "engagement": [*defaults["engagement"], *ENGAGEMENT_TABLES],
            "penalties": [*defaults["penalties"], *PENALTY_TABLES],
        }
    )
    only = load_rules({"base": "none", "fit": TABLES, "engagement": ENGAGEMENT_TABLES, "penalties": PENALTY_TABLES})
    return {
        "defaults": compile_rules(default_rules()),
        "defaults + tables": compile_rules(combined),
        "tables only": compile_rules(only),
    }


def export_columns(n: int, rng: np.random.Generator) -> dict[str, Any]:
    """The columns a CRM export adds: categorical, plain strings, and numbers with blanks."""
    seconds = np.round(rng.exponential(450, n))
    seconds[rng.random(n) < 0.1] = np.nan
    sources = rng.integers(0, len(SOURCES) + 1, n).tolist()
    return {
        "lead_origin": Categorical(rng.choice(len(ORIGINS), n, p=ORIGIN_P), ORIGINS),
        "occupation": Categorical(rng.choice(len(OCCUPATIONS), n, p=OCCUPATION_P), OCCUPATIONS),
        "lead_source": [SOURCES[k] if k < len(SOURCES) else "" for k in sources],
        "time_on_site_s": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=300_000)
    parser.add_argument("--chunk", type=int, default=20_000, help="leads per streamed chunk")
    parser.add_argument("--activities", type=float, default=10.0, help="average activities per lead")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    engines = rule_sets()
    seconds = dict.fromkeys(engines, 0.0)
    mean_points = dict.fromkeys(engines, 0.0)
    rng = np.random.default_rng(args.seed + 1)
    leads = 0
    for _, chunk in base.chunks(args.leads, args.chunk, args.seed, args.activities):
        chunk.leads.update(export_columns(chunk.n, rng))
        for name, engine in engines.items():
            # a fresh batch per rule set: columns cache what they compute (numbers, codes), so a second
            # engine on the same batch would be measured warm
            t0 = time.perf_counter()
            batch: LeadBatch = base.to_batch(chunk)
            result = engine.score_batch(batch, base.NOW)
            seconds[name] += time.perf_counter() - t0
            mean_points[name] += float(result.points.sum())
            del batch, result
        leads += chunk.n
        del chunk
        gc.collect()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, one process, one core")
    print(f"columnar path (score_batch on arrays), {leads:,} leads, ~{args.activities:g} activities/lead, same data")
    for name, engine in engines.items():
        tables = sum(1 for r in engine.rules.iter_rules() if r[2].is_table)
        print(
            f"  {name:<18} {len(engine.rule_names):>2} rules ({tables} tables): {leads / seconds[name]:>10,.0f} leads/s"
            f"   mean points {mean_points[name] / leads:6.2f}"
        )
    ratio = seconds["defaults + tables"] / seconds["defaults"]
    print(f"  five table rules add {100 * (ratio - 1):.0f}% to the default rules' time")


if __name__ == "__main__":
    main()
