"""The pure fit: integer tables spanning 0..100, the rule cap, determinism, locked rules, and ranking close
to a gradient-boosted model on held-out leads."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from scoring.evaluation import auc_score
from scoring.fit import FitOptions, Scorecard, column_auc, fit_scorecard, numeric_feature
from scoring.fit.binning import Feature
from tests.fit import leads_data

DROP = (*leads_data.POST_SALE, *leads_data.IDS, "Notes", "Created")


@pytest.fixture(scope="module")
def split() -> tuple[list[Feature], np.ndarray, list[Feature], np.ndarray]:
    header, rows = leads_data.generate(6000, seed=11)
    everything = leads_data.features(header, rows, DROP)  # one coding of the levels for both parts
    y = leads_data.outcomes(header, rows)
    order = np.random.default_rng(0).permutation(len(rows))
    train, test = order[:4200], order[4200:]
    return [f.take(train) for f in everything], y[train], [f.take(test) for f in everything], y[test]


@pytest.fixture(scope="module")
def fitted(split: tuple[list[Feature], np.ndarray, list[Feature], np.ndarray]) -> Scorecard:
    train, y, _, _ = split
    return fit_scorecard(train, y)


def test_points_are_integer_tables_from_0_whose_maxima_add_up_to_100(fitted: Scorecard) -> None:
    assert 5 <= len(fitted.tables) <= 30
    for table in fitted.tables:
        assert all(isinstance(p, int) for p in table.points)
        assert min(table.points) == 0 and max(table.points) > 0
        assert len(table.points) == len(table.bins)
    assert 97 <= sum(max(t.points) for t in fitted.tables) <= 100
    assert fitted.points_to_double_odds > 0


def test_totals_are_never_clamped_so_no_ranking_is_lost_at_the_ends(
    split: tuple[list[Feature], np.ndarray, list[Feature], np.ndarray], fitted: Scorecard
) -> None:
    _, _, test, _ = split
    raw = sum(t.score(next(f for f in test if f.name == t.name)) for t in fitted.tables)
    assert raw.min() >= 0 and raw.max() <= 100
    assert (fitted.totals(test) == raw).all()


def test_holdout_auc_is_within_002_of_gradient_boosting(
    split: tuple[list[Feature], np.ndarray, list[Feature], np.ndarray], fitted: Scorecard
) -> None:
    train, y, test, y_test = split

    def matrix(features: list[Feature]) -> np.ndarray:
        return np.column_stack(
            [f.numbers if f.kind == "numeric" else np.where(f.codes < 0, np.nan, f.codes) for f in features]
        ).astype(float)

    model = HistGradientBoostingClassifier(
        categorical_features=[f.kind == "categorical" for f in train], random_state=0, learning_rate=0.05
    )
    model.fit(matrix(train), y)
    boosted = auc_score(model.predict_proba(matrix(test))[:, 1], y_test)
    scorecard = auc_score(fitted.totals(test), y_test)
    assert scorecard >= boosted - 0.02, (scorecard, boosted)
    assert abs(fitted.cv_auc.value - scorecard) < 0.03  # the cross-validated AUC says what the holdout sees


def test_max_rules_caps_the_rules_with_points(
    split: tuple[list[Feature], np.ndarray, list[Feature], np.ndarray],
) -> None:
    train, y, _, _ = split
    capped = fit_scorecard(train, y, options=FitOptions(max_rules=3))
    assert 1 <= len(capped.tables) <= 3
    assert 97 <= sum(max(t.points) for t in capped.tables) <= 100


def test_two_fits_are_identical(
    split: tuple[list[Feature], np.ndarray, list[Feature], np.ndarray], fitted: Scorecard
) -> None:
    train, y, _, _ = split
    again = fit_scorecard(train, y)
    assert again.tables == fitted.tables
    assert again.penalty == fitted.penalty and again.cv_auc == fitted.cv_auc


def test_locked_points_are_fitted_around() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    strong = rng.random(n) < 0.3
    other = rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 2.5 * strong + 0.8 * other)))
    features = [numeric_feature("strong", strong.astype(float)), numeric_feature("other", other)]
    free = fit_scorecard(features, y)
    assert {t.name for t in free.tables} == {"strong", "other"}
    locked = fit_scorecard(features, y, locked=np.where(strong, 30.0, 0.0), reserve=30)
    names = {t.name: t for t in locked.tables}
    assert "strong" not in names or max(names["strong"].points) <= 2  # the locked rule already says it
    assert sum(max(t.points) for t in locked.tables) <= 70
    assert locked.locked_weight > 0


def test_a_copy_of_the_label_alone_separates_the_outcome() -> None:
    rng = np.random.default_rng(4)
    y = rng.random(500) < 0.4
    assert column_auc(numeric_feature("copy", y.astype(float)), y) == 1.0
    assert column_auc(numeric_feature("noise", rng.normal(size=500)), y) < 0.7
