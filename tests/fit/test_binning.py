"""Bins: the stated merge rule holds on the result, categories are matched as the engine matches them."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.fit import BinOptions, bin_feature, categorical_feature, numeric_feature
from scoring.fit.binning import CHI2_CRITICAL, _chi2, nice


@pytest.mark.parametrize(
    ("value", "expected"), [(1187.25, 1200.0), (0.237, 0.24), (76.4, 76.0), (5.0, 5.0), (-0.0449, -0.045), (0, 0.0)]
)
def test_cuts_are_rounded_to_two_significant_digits(value: float, expected: float) -> None:
    assert nice(value) == expected


def _numeric_case(seed: int = 0, n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(n) < 0.3, 0.0, np.round(rng.lognormal(5, 1, n)))
    y = rng.random(n) < 1 / (1 + np.exp(-(np.tanh((x - 300) / 300) * 2)))
    x[rng.random(n) < 0.04] = np.nan
    return x, y


def test_numeric_bins_obey_the_stated_rule() -> None:
    x, y = _numeric_case()
    options = BinOptions()
    bins = bin_feature(numeric_feature("t", x), y, options)
    assert 2 <= bins.value_bins <= options.max_bins
    assert all(nice(e) == e for e in bins.edges)
    assert list(bins.edges) == sorted(bins.edges)
    counts = bins.counts[: bins.value_bins]
    assert min(counts) >= options.min_bin_share * len(y)
    pos = bins.positives
    for i in range(bins.value_bins - 1):  # no two neighbours left that do not differ
        assert _chi2(counts[i], pos[i], counts[i + 1], pos[i + 1]) >= CHI2_CRITICAL
    assert bins.missing and bins.counts[bins.missing_index] == int(np.isnan(x).sum())
    assert sum(bins.counts) == len(y)


def test_a_number_is_coded_from_inclusive_below_exclusive() -> None:
    x, y = _numeric_case()
    bins = bin_feature(numeric_feature("t", x), y)
    edge = bins.edges[0]
    codes = bins.codes(numeric_feature("t", [edge - 1e-9, edge, None]))
    assert codes.tolist() == [0, 1, bins.missing_index]


def test_few_missing_values_are_scored_like_the_most_frequent_bin() -> None:
    x, y = _numeric_case()
    x = np.where(np.isnan(x), 1.0, x)
    x[:5] = np.nan  # 5 of 5,000: under 1%
    bins = bin_feature(numeric_feature("t", x), y)
    assert not bins.missing and bins.missing_count == 5
    assert bins.missing_index == bins.fallback == int(np.argmax(bins.counts))


def test_categories_match_trimmed_and_case_insensitively_in_their_most_frequent_spelling() -> None:
    values = ["Google"] * 50 + ["google"] * 10 + [" Google "] * 5 + ["Direct"] * 40 + ["rare"] * 2 + [None] * 3
    feature = categorical_feature("source", values)
    assert feature.levels == ("Direct", "Google", "rare")
    y = np.zeros(len(values), dtype=bool)
    y[::3] = True
    bins = bin_feature(feature, y, BinOptions(min_category_count=5, min_category_share=0.0))
    assert [bins.levels[k] for k in bins.kept] == ["Google", "Direct"]  # most frequent first
    assert bins.counts[0] == 65 + 5  # with the rare and the missing it stands for
    # 2 rare and 3 missing are too few for bins of their own: they count as "Google", the most frequent
    assert not bins.other and not bins.missing and bins.fallback == 0
    unseen = categorical_feature("source", ["GOOGLE", "direct", "never seen", None])
    assert bins.codes(unseen).tolist() == [0, 1, 0, 0]


def test_rare_values_share_other_when_together_they_are_enough() -> None:
    rng = np.random.default_rng(1)
    values = list(rng.choice(["a", "b"], 900)) + [f"r{i}" for i in range(100)]  # 100 values on 1 lead each
    y = rng.random(1000) < 0.3
    bins = bin_feature(categorical_feature("c", values), y)
    assert bins.other and bins.other_levels == 100 and bins.counts[bins.other_index] == 100
    assert len(bins) == 3
