"""Decay without dates: a decaying counter on a lead with no date to age from keeps its points undecayed
(a CSV export without date columns used to score every counter rule 0), on both paths."""

from __future__ import annotations

import numpy as np
import yaml

from scoring import LeadBatch, default_rules, load_rules
from scoring.rules import DecayingRule, date_sources, decaying_rules

from .util import NOW, act, ago, hit, lead, points, rules_from, score

RULES = """
decay: {half_life_days: 30}
activity: {timestamp_attributes: [last_visit_at]}
engagement:
  - {name: views, points: 1, cap: 20, counter: page_views}
  - {name: forms, points: 5, once: true, counter: form_submissions, decay_from: last_form_at}
  - {name: clicks, points: 2, counter: email_clicks, half_life_days: 0}
"""


def test_no_date_keeps_the_points_undecayed() -> None:
    engine = rules_from(RULES)
    result = score(engine, lead(page_views=8, form_submissions=2, email_clicks=3))
    assert (points(result, "views"), points(result, "forms"), points(result, "clicks")) == (8, 5, 6)
    views = hit(result, "views")
    assert views is not None and views.count == 8


def test_a_date_still_decays() -> None:
    engine = rules_from(RULES)
    result = score(engine, lead(page_views=8, form_submissions=2, last_visit_at=ago(30), last_form_at=ago(60)))
    assert points(result, "views") == 4 and points(result, "forms") == 1.25
    # created_at is a date to age from too
    assert points(score(engine, lead(page_views=8, created_at=ago(30))), "views") == 4


def test_a_csv_batch_without_date_columns_scores_like_rows() -> None:
    engine = rules_from(RULES)
    views = np.array([8.0, 30.0, np.nan])
    batch = LeadBatch.from_columns(3, {"page_views": views, "form_submissions": ["1", "", "2"]})
    rows = [
        engine.score(lead(id=str(i), page_views=v, form_submissions=f), [], NOW)
        for i, (v, f) in enumerate([(8.0, "1"), (30.0, ""), (None, "2")])
    ]
    columns = engine.score_batch(batch, NOW)
    assert columns.points.tolist() == [r.points for r in rows] == [13.0, 20.0, 5.0]
    assert [s.hits for s in columns.scores()] == [s.hits for s in rows]


def test_decaying_rules_name_the_date_each_ages_from() -> None:
    rules = load_rules({"base": "none", **yaml.safe_load(RULES)})
    assert decaying_rules(rules) == [DecayingRule("views", "last_engaged_at"), DecayingRule("forms", "last_form_at")]
    assert [name for name, _ in decaying_rules(rules)] == ["views", "forms"]  # plain (rule, date) pairs
    assert date_sources(rules, "last_engaged_at") == ("created_at", "last_visit_at")
    assert date_sources(rules, "last_form_at") == ("last_form_at",)
    defaults = decaying_rules(default_rules())
    assert defaults and {d.date_attribute for d in defaults} == {"last_engaged_at"}
    assert "page_views_count" in {d.rule for d in defaults}
    off = load_rules({"base": "none", "engagement": [{"name": "v", "points": 1, "counter": "page_views"}]})
    assert decaying_rules(off) == []  # no half-life anywhere: nothing decays


def test_the_first_date_learned_may_lower_a_counter() -> None:
    """The trade-off of keeping points without a date: an old first activity gives the counter a date to
    age from (once a date is known, more or newer activity never lowers it: the property tests)."""
    engine = rules_from(RULES)
    undated = score(engine, lead(page_views=8))
    dated = score(engine, lead(page_views=8), [act("page_view", 60)])
    assert points(undated, "views") == 8 and points(dated, "views") == 2
    assert points(score(engine, lead(page_views=8), [act("page_view", 60), act("visit", 0)]), "views") == 8
