"""Bins for a scorecard: a few ranges per number, the frequent values of a category, missing on its own.

Why quantile bins merged by ChiMerge rather than ``optbinning``: the rule is a few lines of numpy that a
reader can check against the file (and the output must say how each table was made), while optbinning
brings an OR-tools solver (~100 MB) for an optimality that the L1 fit after it does not need.

The rule, for a number: cut the non-missing values at their ventiles, each cut rounded to two significant
digits (``from: 1200``, not ``from: 1187.25``); then, repeatedly, merge a bin holding fewer than
``min_bin_share`` of the rows into the neighbour it differs least from, and otherwise merge the two
adjacent bins whose conversion rates differ least (the smallest chi-square of their 2x2 table) while that
difference is not significant (chi-square < 3.84, p > 0.05) or there are more than ``max_bins`` bins.
For a category: values are matched trimmed and case-insensitively (as the rules engine matches them);
those held by at least ``min_category_share`` of the rows (at most ``max_categories`` of them) keep a bin,
the rest share ``other``. Why ventiles, 2% and 8 bins (rather than deciles, 5% and 6): on a real export
(9,240 leads, six 70/30 splits) the finer start keeps steps that deciles straddle (a conversion rate
that jumps between 370 and 740 seconds on site): +0.003 holdout AUC on one split, no loss on the others,
and chi-square merging still removes every cut the data do not support. Missing (blank, or unreadable as
the column's type) is a bin of its own. An
``other`` or ``missing`` bin needs as many leads as a category does; with fewer, its leads are scored like
the most frequent bin (``fallback``), and so are values never seen in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: chi-square of a 2x2 table at p = 0.05 (one degree of freedom)
CHI2_CRITICAL = 3.841


@dataclass(frozen=True)
class BinOptions:
    initial_bins: int = 20
    max_bins: int = 8
    min_bin_share: float = 0.02
    critical: float = CHI2_CRITICAL
    min_category_share: float = 0.01
    min_category_count: int = 10
    max_categories: int = 30


@dataclass(frozen=True)
class Feature:
    """One candidate column: numbers (NaN = missing) or category codes (-1 = missing) into ``levels``."""

    name: str
    kind: Literal["numeric", "categorical"]
    numbers: F64 | None = None
    codes: I64 | None = None
    #: each level's spelling as written in the file (its most frequent one); matched case-insensitively
    levels: tuple[str, ...] = ()

    def __len__(self) -> int:
        data = self.numbers if self.kind == "numeric" else self.codes
        assert data is not None
        return len(data)

    def take(self, rows: I64) -> Feature:
        """The same feature for a subset of rows (a cross-validation fold)."""
        if self.kind == "numeric":
            assert self.numbers is not None
            return Feature(self.name, "numeric", numbers=self.numbers[rows])
        assert self.codes is not None
        return Feature(self.name, "categorical", codes=self.codes[rows], levels=self.levels)

    def missing(self) -> B:
        if self.kind == "numeric":
            assert self.numbers is not None
            return np.isnan(self.numbers)
        assert self.codes is not None
        return self.codes < 0


def numeric_feature(name: str, values: Sequence[float | None] | F64) -> Feature:
    numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    numbers[~np.isfinite(numbers)] = np.nan
    return Feature(name, "numeric", numbers=numbers)


def categorical_feature(name: str, values: Sequence[str | None]) -> Feature:
    """Levels keyed trimmed and case-folded; each shown in its most frequent spelling (ties: the first
    in sort order), levels ordered by key so that the same data always gives the same codes."""
    spellings: dict[str, dict[str, int]] = {}
    keys: list[str | None] = []
    for value in values:
        text = value.strip() if value is not None else ""
        if not text:
            keys.append(None)
            continue
        key = text.casefold()
        keys.append(key)
        seen = spellings.setdefault(key, {})
        seen[text] = seen.get(text, 0) + 1
    ordered = sorted(spellings)
    index = {key: i for i, key in enumerate(ordered)}
    codes = np.array([-1 if k is None else index[k] for k in keys], dtype=np.int64)
    levels = tuple(min(spellings[k].items(), key=lambda kv: (-kv[1], kv[0]))[0] for k in ordered)
    return Feature(name, "categorical", codes=codes, levels=levels)


@dataclass(frozen=True)
class Bins:
    """How one feature is cut, with each bin's training count and converters.

    Bin order: numeric ranges ascending (``edges`` are the cuts: ``[-inf, e0), [e0, e1), ... [e_last, inf)``)
    or the kept categories (most frequent first) then ``other``; ``missing`` last. Values without a bin of
    their own (rare values when they are too few for an ``other`` bin, missing ones when too few for a
    ``missing`` bin, and values never seen in training) take the ``fallback`` bin, the most frequent one.
    """

    feature: str
    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...] = ()
    kept: tuple[int, ...] = ()
    levels: tuple[str, ...] = ()
    other: bool = False
    #: how many distinct values the training data had outside ``kept``, and how many leads held them
    other_levels: int = 0
    other_count: int = 0
    missing: bool = False
    missing_count: int = 0
    fallback: int = 0
    counts: tuple[int, ...] = field(default=())
    positives: tuple[int, ...] = field(default=())

    @property
    def value_bins(self) -> int:
        """Bins other than ``missing``."""
        return len(self.edges) + 1 if self.kind == "numeric" else len(self.kept) + int(self.other)

    def __len__(self) -> int:
        return self.value_bins + int(self.missing)

    @property
    def other_index(self) -> int:
        return len(self.kept) if self.other else self.fallback

    @property
    def missing_index(self) -> int:
        return self.value_bins if self.missing else self.fallback

    def codes(self, feature: Feature) -> I64:
        """Each row's bin."""
        if self.kind == "numeric":
            assert feature.numbers is not None
            values = feature.numbers
            gone = np.isnan(values)
            out = np.searchsorted(np.asarray(self.edges, dtype=np.float64), np.where(gone, 0.0, values), side="right")
            return np.where(gone, self.missing_index, out).astype(np.int64)
        assert feature.codes is not None
        lookup = np.full(len(feature.levels) + 1, self.other_index, dtype=np.int64)
        lookup[-1] = self.missing_index  # code -1 (missing) indexes the last slot
        for position, level in enumerate(self.kept):
            lookup[level] = position
        return lookup[feature.codes]


def bin_feature(feature: Feature, y: B, options: BinOptions | None = None) -> Bins:
    """Bins of ``feature`` fitted on these rows (see the module docstring for the rule)."""
    options = options or BinOptions()
    gone = feature.missing()
    n = len(y)
    #: fewer leads than this cannot carry points of their own (a category, ``other``, ``missing``)
    few = max(options.min_category_count, math.ceil(options.min_category_share * n))
    missing_count = int(gone.sum())
    if feature.kind == "numeric":
        assert feature.numbers is not None
        min_count = max(1, math.ceil(options.min_bin_share * n))
        edges = _numeric_edges(feature.numbers[~gone], y[~gone], options, min_count)
        bins = Bins(feature.name, "numeric", edges=edges, missing=missing_count >= few, missing_count=missing_count)
    else:
        assert feature.codes is not None
        counts = np.bincount(feature.codes[~gone], minlength=len(feature.levels))
        order = sorted((i for i in range(len(counts)) if counts[i] >= few), key=lambda i: (-counts[i], i))
        kept = tuple(order[: options.max_categories])
        rare = int((counts > 0).sum()) - len(kept)
        other_count = int(counts.sum() - counts[list(kept)].sum())
        bins = Bins(
            feature.name,
            "categorical",
            kept=kept,
            levels=feature.levels,
            other=other_count >= few or not kept,
            other_levels=rare,
            other_count=other_count,
            missing=missing_count >= few,
            missing_count=missing_count,
        )
    own = replace(bins, fallback=0)
    total = np.bincount(own.codes(feature), minlength=len(own))
    if len(own) > own.value_bins:  # missing too: the fallback is the most frequent bin of values
        total[own.value_bins] = -1
    bins = replace(bins, fallback=int(np.argmax(total)))
    codes = bins.codes(feature)
    return replace(
        bins,
        counts=tuple(int(c) for c in np.bincount(codes, minlength=len(bins))),
        positives=tuple(int(p) for p in np.bincount(codes, weights=y.astype(np.float64), minlength=len(bins))),
    )


def nice(value: float) -> float:
    """``value`` rounded to two significant digits (a cut a person can read)."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    return float(round(value, 1 - math.floor(math.log10(abs(value)))))


def _numeric_edges(values: F64, y: B, options: BinOptions, min_count: int) -> tuple[float, ...]:
    if len(values) == 0:
        return ()
    lo, hi = float(values.min()), float(values.max())
    qs = np.linspace(0, 1, options.initial_bins + 1)[1:-1]
    cuts = sorted({nice(float(q)) for q in np.quantile(values, qs, method="inverted_cdf")})
    edges = [c for c in cuts if lo < c <= hi]
    if not edges:
        return ()
    index = np.searchsorted(np.asarray(edges), values, side="right")
    n = np.bincount(index, minlength=len(edges) + 1).astype(np.float64)
    p = np.bincount(index, weights=y.astype(np.float64), minlength=len(edges) + 1)
    n_list, p_list = list(n), list(p)
    while len(n_list) > 1:
        chi = [_chi2(n_list[i], p_list[i], n_list[i + 1], p_list[i + 1]) for i in range(len(n_list) - 1)]
        smallest = min(range(len(n_list)), key=lambda i: (n_list[i], i))
        if n_list[smallest] < min_count:
            if smallest == 0:
                j = 0
            elif smallest == len(n_list) - 1:
                j = smallest - 1
            else:
                j = smallest - 1 if chi[smallest - 1] <= chi[smallest] else smallest
        elif len(n_list) > options.max_bins or min(chi) < options.critical:
            j = min(range(len(chi)), key=lambda i: (chi[i], i))
        else:
            break
        n_list[j : j + 2] = [n_list[j] + n_list[j + 1]]
        p_list[j : j + 2] = [p_list[j] + p_list[j + 1]]
        del edges[j]
    return tuple(edges)


def _chi2(n1: float, p1: float, n2: float, p2: float) -> float:
    """Chi-square of the 2x2 table (converted or not x bin 1 or 2); 0 when either margin is empty."""
    total, positives = n1 + n2, p1 + p2
    denominator = n1 * n2 * positives * (total - positives)
    if denominator <= 0:
        return 0.0
    return float(total * (p1 * (n2 - p2) - p2 * (n1 - p1)) ** 2 / denominator)
