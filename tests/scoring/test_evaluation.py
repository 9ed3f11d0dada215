"""scoring.evaluation against scikit-learn and against numbers checkable by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from scoring.evaluation import (
    EvaluationError,
    auc_score,
    bootstrap_auc,
    compare,
    evaluate,
    midranks,
    parse_objective,
    rule_contributions,
)


def synthetic(n: int, seed: int = 0, signal: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.1
    s = np.clip(np.round(rng.normal(40 + signal * y, 15)), 0, 100)
    return s, y


@pytest.mark.parametrize("decimals", [None, 0, 1])
def test_auc_equals_sklearn_with_and_without_ties(decimals: int | None) -> None:
    rng = np.random.default_rng(3)
    y = rng.random(5000) < 0.2
    s = rng.normal(50 + 5 * y, 20)
    if decimals is not None:
        s = np.round(s, decimals)  # decimals=0: thousands of ties
    assert abs(auc_score(s, y) - roc_auc_score(y, s)) < 1e-9


def test_auc_with_massive_ties_equals_sklearn() -> None:
    rng = np.random.default_rng(4)
    y = rng.random(20_000) < 0.3
    s = rng.integers(0, 3, 20_000) * 10.0 + 10 * y * (rng.random(20_000) < 0.2)
    assert len(np.unique(s)) <= 6
    assert abs(auc_score(s, y) - roc_auc_score(y, s)) < 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.booleans()), min_size=2, max_size=60))
def test_auc_matches_sklearn_on_any_small_sample(rows: list[tuple[int, bool]]) -> None:
    s = np.array([r[0] for r in rows], dtype=float)
    y = np.array([r[1] for r in rows])
    if y.all() or not y.any():
        with pytest.raises(EvaluationError):
            auc_score(s, y)
        return
    assert abs(auc_score(s, y) - roc_auc_score(y, s)) < 1e-9


def test_midranks_share_the_mean_rank_of_ties() -> None:
    assert midranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]


def test_bootstrap_interval_is_seeded_and_contains_the_auc() -> None:
    s, y = synthetic(20_000)
    first = bootstrap_auc(s, y, seed=1)
    assert first == bootstrap_auc(s, y, seed=1)
    assert first.ci_low < first.value < first.ci_high and first.ci_high - first.ci_low < 0.05
    assert bootstrap_auc(s, y, seed=2) != first
    # a tiny sample has a wide interval
    small = bootstrap_auc(s[:300], y[:300], seed=1)
    assert small.ci_high - small.ci_low > 2 * (first.ci_high - first.ci_low)


def test_bootstrap_with_fractional_scores_stays_centred_on_the_exact_auc() -> None:
    s, y = synthetic(50_000, seed=5)
    fractional = s + np.random.default_rng(5).random(len(s))
    result = bootstrap_auc(fractional, y, n_boot=300)
    assert len(np.unique(fractional)) > 10_000
    assert result.value == pytest.approx(roc_auc_score(y, fractional), abs=1e-9)
    assert result.ci_low < result.value < result.ci_high


def test_precision_recall_at_the_threshold_equal_sklearn() -> None:
    s, y = synthetic(10_000, seed=6)
    result = evaluate(s, y, threshold=55)
    predicted = s >= 55
    assert result.threshold.mqls == int(predicted.sum())
    assert result.threshold.precision == pytest.approx(precision_score(y, predicted), abs=1e-12)
    assert result.threshold.recall == pytest.approx(recall_score(y, predicted), abs=1e-12)
    assert result.threshold.f1 == pytest.approx(f1_score(y, predicted), abs=1e-12)


# hand-checkable: 10 leads, scores 10..100, converters at 100, 90, 70, 40
HAND_S = np.arange(10, 101, 10, dtype=float)
HAND_Y = np.isin(HAND_S, [100, 90, 70, 40])
HAND_DATES = np.datetime64("2025-01-01") + np.arange(10) * np.timedelta64(14, "D")  # 126 days = 18 weeks


def test_f1_objective_picks_the_best_f1_by_hand() -> None:
    # threshold 70: 4 MQLs, 3 converted -> P 3/4, R 3/4, F1 .75; threshold 40: 7 MQLs, 4 conv -> F1 8/11 = .727
    rec = evaluate(HAND_S, HAND_Y, threshold=50, objective="f1", n_boot=50).recommendation
    assert rec.threshold == 70 and rec.stats is not None and rec.stats.f1 == pytest.approx(0.75)
    assert rec.change is not None and rec.change.direction == "fewer" and rec.change.mqls_delta == -2
    assert rec.change.leads_between == 2 and rec.change.conversion_between == 0.0  # 50 and 60 never converted


def test_precision_objective_is_the_lowest_threshold_reaching_it() -> None:
    # precision at 40 is 4/7 = .571, at 30 is 4/8 = .5, at 20 4/9: the lowest with >= .5 is 30
    rec = evaluate(HAND_S, HAND_Y, threshold=80, objective="precision:0.5", n_boot=50).recommendation
    assert rec.threshold == 30 and rec.stats is not None and rec.stats.precision == 0.5
    assert rec.change is not None and rec.change.direction == "more" and rec.change.mqls_delta == 5
    assert rec.change.conversion_between == pytest.approx(0.4)  # 30..70 added: 40 and 70 converted
    impossible = evaluate(HAND_S, HAND_S == 90, threshold=80, objective="precision:0.6", n_boot=50).recommendation
    assert impossible.threshold is None and "no threshold" in impossible.reason


def test_capacity_objective_uses_the_span_of_dates() -> None:
    # 18 weeks; at most 5/18 = 0.278 MQLs a week -> at most 5 MQLs -> threshold 60 (60..100)
    result = evaluate(HAND_S, HAND_Y, threshold=80, objective="capacity:0.28/week", dates=HAND_DATES, n_boot=50)
    rec = result.recommendation
    assert result.date_span_days == 126
    assert rec.threshold == 60 and rec.stats is not None and rec.stats.mqls == 5
    assert rec.change is not None and rec.change.mqls_per_week_delta == pytest.approx(2 / 18)
    assert "more MQLs a week" in rec.change.summary
    undated = evaluate(HAND_S, HAND_Y, threshold=80, objective="capacity:50/week", n_boot=50).recommendation
    assert undated.threshold is None and "needs the leads' dates" in undated.reason


def test_objectives_parse_and_bad_ones_say_what_is_expected() -> None:
    assert str(parse_objective("capacity:50/week")) == "capacity:50/week"
    assert parse_objective("precision:0.4").value == 0.4
    for bad in ("precision:1.5", "capacity:50", "recall", "capacity:-3/week"):
        with pytest.raises(EvaluationError, match="expected f1, precision:P"):
            parse_objective(bad)


def test_deciles_and_grades_lift() -> None:
    s, y = synthetic(10_000, seed=7)
    grades = np.where(s >= 70, "hot", np.where(s >= 40, "warm", "cold"))
    result = evaluate(s, y, threshold=60, grades=grades, n_boot=50)
    assert [g.label for g in result.grades] == ["hot", "warm", "cold"]
    assert sum(g.n for g in result.grades) == 10_000 and result.grades[-1].capture == pytest.approx(1.0)
    assert result.grades[0].rate > result.grades[2].rate
    assert sum(d.n for d in result.deciles) == 10_000 and result.deciles[-1].capture == pytest.approx(1.0)
    assert result.deciles[0].lift > 1.5 > 0.8 > result.deciles[-1].lift
    # tied scores share a decile: no score appears in two deciles
    for a, b in zip(result.deciles, result.deciles[1:], strict=False):
        assert a.min_score > b.max_score
    for d in result.deciles:
        mask = (s >= d.min_score) & (s <= d.max_score)
        assert d.positives == int(y[mask].sum()) and d.rate == pytest.approx(y[mask].mean())


def test_one_class_and_bad_arrays_are_refused() -> None:
    with pytest.raises(EvaluationError, match="both converted and not converted"):
        evaluate(np.arange(10.0), np.zeros(10), threshold=5)
    with pytest.raises(EvaluationError, match="one length"):
        evaluate(np.arange(10.0), np.zeros(9), threshold=5)
    with pytest.raises(EvaluationError, match="0/1"):
        evaluate(np.arange(3.0), np.array([0, 2, 1]), threshold=5)


def test_delong_detects_a_worse_candidate_and_not_a_copy() -> None:
    s, y = synthetic(5000, seed=8)
    rng = np.random.default_rng(8)
    worse = np.where(rng.random(len(s)) < 0.5, s, rng.integers(0, 100, len(s)))
    result = compare(s, worse, y)
    assert result.significant and result.difference < 0 and result.ci_high < 0
    assert result.champion_auc == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert result.candidate_auc == pytest.approx(roc_auc_score(y, worse), abs=1e-9)
    assert "significantly worse" in result.summary
    same = compare(s, s, y)
    assert not same.significant and same.p_value == 1.0
    # a monotone transform ranks the same: no difference
    assert compare(s, np.sqrt(s), y).difference == pytest.approx(0.0, abs=1e-12)


def test_delong_variance_matches_a_paired_bootstrap() -> None:
    s, y = synthetic(3000, seed=9, signal=8)
    rng = np.random.default_rng(9)
    other = s + rng.normal(0, 8, len(s))
    result = compare(s, other, y)
    diffs = []
    for _ in range(300):
        i = rng.integers(0, len(s), len(s))
        diffs.append(roc_auc_score(y[i], other[i]) - roc_auc_score(y[i], s[i]))
    assert (result.ci_high - result.ci_low) / 3.92 == pytest.approx(np.std(diffs), rel=0.2)


def test_rule_contributions_rank_the_rules_that_carry_converters() -> None:
    y = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    points = np.array([[10, 10, 0, 0, 0, 10], [5, 5, 5, 5, 5, 5], [0, 0, -10, -10, 0, 0]], dtype=float)
    rows = rule_contributions(points, ["demo", "everyone", "free_email"], y)
    assert [r.rule for r in rows] == ["demo", "free_email", "everyone"]  # 7.5, 5, 0 points apart
    demo = rows[0]
    assert demo.mean_converted == 10 and demo.mean_not_converted == 2.5 and demo.fired_not_converted == 0.25


def test_results_are_frozen_and_serialise() -> None:
    s, y = synthetic(2000, seed=10)
    dates = np.datetime64("2025-01-01") + np.arange(2000) * np.timedelta64(2, "h")
    result = evaluate(s, y, threshold=60, dates=dates, objective="capacity:100/week", n_boot=100)
    data = json.loads(result.to_json())
    assert {"n", "positives", "auc", "threshold", "recommendation", "deciles", "grades", "drift"} <= data.keys()
    assert data["auc"]["ci_low"] < data["auc"]["value"] < data["auc"]["ci_high"]
    assert result.drift_period == "week" and sum(r.n for r in result.drift) == 2000
    with pytest.raises(AttributeError):
        result.n = 3  # type: ignore[misc]
