"""A points scorecard fitted from outcomes: one-hot bins, L1 logistic regression, integer tables.

The steps, each run again inside every cross-validation fold so that the reported AUC is of the whole
procedure on leads it never saw:

1. bin every feature (:mod:`scoring.fit.binning`) and one-hot encode the bins;
2. fit an L1-regularised logistic regression (scikit-learn's liblinear, seeded) for each penalty of a
   grid; when more than ``max_rules`` features keep a non-zero weight, keep the ``max_rules`` whose
   points vary most across leads (standard deviation of their contribution) and fit again on those;
3. turn the weights into points: each table shifted so that its smallest value is 0, everything scaled by
   one factor so that the largest possible total is ``budget`` (100 less what locked rules can add),
   rounded to integers (the factor is lowered until the rounded maxima still fit), so that totals span
   0..100 and the engine's clamp never ties leads at the ends;
4. the penalty: the largest one whose mean fold AUC (of the integer totals) is within ``tolerance`` of the
   best: fewer rules for no measurable loss.

Locked rules (kept with their points by the user) enter as one column of their points per lead whose weight
is barely penalised, so that the fitted tables account for what the locked rules already say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from scoring.errors import ScoringError
from scoring.evaluation import AucResult, Evaluation, auc_score, bootstrap_auc, evaluate

from .binning import F64, I64, B, BinOptions, Bins, Feature, bin_feature

#: how strongly the locked rules' column is scaled (its weight is penalised 1/LOCKED_SCALE as much)
LOCKED_SCALE = 100.0
TOL = 1e-3
#: with locked rules: their column duplicates some bins, and at weak penalties liblinear stops on a split
#: between the two unless it converges further
LOCKED_TOL = 1e-6
#: liblinear penalises the intercept like a weight (the reference bins keep that from mattering)
INTERCEPT_SCALING = 1.0


class FitError(ScoringError):
    """The data cannot give a scorecard (no column predicts the outcome)."""


@dataclass(frozen=True)
class FitOptions:
    max_rules: int = 30
    folds: int = 5
    #: from this many leads on, 3 folds (each still holds over 16,000 leads; the fit takes 40% less time)
    large: int = 50_000
    seed: int = 0
    #: L1 penalties per lead (the mean log-loss is traded against penalty x sum of |weights|), strongest first
    penalties: tuple[float, ...] = tuple(float(x) for x in np.logspace(-1.5, -4.0, 8))
    tolerance: float = 0.001
    budget: int = 100
    objective: str = "f1"
    bins: BinOptions = field(default_factory=BinOptions)


@dataclass(frozen=True)
class Table:
    """One rule: a feature's bins and their integer points (the engine's table)."""

    bins: Bins
    points: tuple[int, ...]
    #: the fitted weight of each bin in log-odds, shifted so that the smallest is 0
    weights: tuple[float, ...]
    #: standard deviation of the table's points across the training leads (how much it separates them)
    spread: float

    @property
    def name(self) -> str:
        return self.bins.feature

    def score(self, feature: Feature) -> I64:
        codes = self.bins.codes(feature)
        lookup = np.asarray([*self.points, 0], dtype=np.int64)  # -1 (no bin) takes the trailing 0
        return lookup[codes]


@dataclass(frozen=True)
class Scorecard:
    tables: tuple[Table, ...]
    #: points per unit of log-odds: ``points_per_logit * ln 2`` points double the odds
    points_per_logit: float
    #: fitted log-odds of converting at a total of 0 (locked rules at 0 points)
    logit_at_zero: float
    #: log-odds one locked point is worth in the fit (0 without locked rules)
    locked_weight: float
    penalty: float
    cv_auc: AucResult
    fold_aucs: tuple[float, ...]
    #: (penalty, mean fold AUC, mean number of rules) for each penalty tried
    path: tuple[tuple[float, float, float], ...]
    #: each training lead's total scored by the fold model that did not see it
    oof_scores: F64
    #: each training lead's total under the final scorecard
    scores: I64
    evaluation: Evaluation
    bins: tuple[Bins, ...] = ()

    @property
    def points_to_double_odds(self) -> float:
        return self.points_per_logit * math.log(2)

    def totals(self, features: Sequence[Feature], locked: F64 | None = None) -> I64:
        """The engine's total of each lead: points of every table plus the locked rules', rounded, 0..100."""
        return _totals(self.tables, {f.name: f for f in features}, locked, len(features[0]) if features else 0)


def column_auc(feature: Feature, y: B, options: BinOptions | None = None) -> float:
    """How well one column alone separates the outcome: the AUC of its bins' conversion rates (0.5..1;
    a column that ranks backwards separates as well as one that ranks forwards)."""
    bins = bin_feature(feature, y, options or BinOptions())
    if len(bins) < 2:
        return 0.5
    rates = np.asarray(bins.positives, dtype=np.float64) / np.maximum(np.asarray(bins.counts), 1)
    value = auc_score(rates[bins.codes(feature)], y)
    return max(value, 1.0 - value)


def fit_scorecard(
    features: Sequence[Feature],
    y: B,
    *,
    locked: F64 | None = None,
    reserve: int = 0,
    threshold: float = 60.0,
    dates: npt.NDArray[np.datetime64] | None = None,
    options: FitOptions = FitOptions(),
) -> Scorecard:
    """Fit the scorecard (see the module docstring). ``locked``: each lead's points from locked rules;
    ``reserve``: the most points they can add (the fitted tables span ``budget - reserve``)."""
    y = np.asarray(y, dtype=np.bool_)
    n = len(y)
    smaller = int(min(y.sum(), n - y.sum()))
    splits = min(options.folds, 3) if n >= options.large else options.folds
    folds = StratifiedKFold(n_splits=max(2, min(splits, smaller)), shuffle=True, random_state=options.seed)
    budget = options.budget - reserve
    if budget < 10:
        raise FitError(f"the locked rules can add up to {reserve} points, leaving fewer than 10 of 100 to fit")
    oof = np.zeros((len(options.penalties), n))
    fold_auc = np.zeros((len(options.penalties), folds.get_n_splits()))
    rules = np.zeros_like(fold_auc)
    for k, (train, test) in enumerate(folds.split(np.zeros(n), y)):
        part = [f.take(train) for f in features]
        held = {f.name: f.take(test) for f in features}
        design = _Design(part, y[train], options.bins, None if locked is None else locked[train])
        for i, penalty in enumerate(options.penalties):
            tables, *_ = design.fit(penalty, options, budget)
            scores = _totals(tables, held, None if locked is None else locked[test], len(test))
            oof[i, test] = scores
            fold_auc[i, k] = auc_score(scores, y[test]) if len(set(y[test])) == 2 else 0.5
            rules[i, k] = len(tables)
    mean_auc = fold_auc.mean(axis=1)
    good = np.flatnonzero(mean_auc >= mean_auc.max() - options.tolerance)
    chosen = int(good[0])  # penalties run strongest first: the first good one is the sparsest
    design = _Design(list(features), y, options.bins, locked)
    tables, logit_at_zero, locked_weight, scale = design.fit(options.penalties[chosen], options, budget)
    if not tables:
        raise FitError("no column predicts the outcome: every fitted weight is 0")
    scores = _totals(tables, {f.name: f for f in features}, locked, n)
    evaluation = evaluate(scores.astype(np.float64), y, threshold=threshold, objective=options.objective, dates=dates)
    return Scorecard(
        tables=tables,
        points_per_logit=scale,
        logit_at_zero=logit_at_zero,
        locked_weight=locked_weight,
        penalty=options.penalties[chosen],
        cv_auc=bootstrap_auc(oof[chosen], y, seed=options.seed),
        fold_aucs=tuple(float(a) for a in fold_auc[chosen]),
        path=tuple(
            (float(p), float(a), float(r))
            for p, a, r in zip(options.penalties, mean_auc, rules.mean(axis=1), strict=True)
        ),
        oof_scores=oof[chosen],
        scores=scores,
        evaluation=evaluation,
        bins=design.bins,
    )


def _totals(tables: Sequence[Table], features: dict[str, Feature], locked: F64 | None, n: int) -> I64:
    raw = np.zeros(n, dtype=np.float64)
    for table in tables:
        raw += table.score(features[table.name])
    if locked is not None:
        raw += locked
    return np.clip(np.floor(raw + 0.5), 0, 100).astype(np.int64)  # the engine rounds halves up, then clamps


def _round_to_budget(tables: list[F64], scale: float, budget: int) -> tuple[float, list[I64]]:
    """The largest scale (from 5% above ``scale`` down, in 0.5% steps) whose rounded table maxima add up
    to at most ``budget``: rounding moves the sum either way, and the totals should reach 100."""
    scale *= 1.05
    for _ in range(400):
        points = [np.floor(t * scale + 0.5).astype(np.int64) for t in tables]
        if sum(int(p.max()) for p in points) <= budget:
            return scale, points
        scale *= 0.995
    return scale, [np.zeros(len(t), dtype=np.int64) for t in tables]  # pragma: no cover - 400 steps reach 0.13x


class _Design:
    """The one-hot design of some rows: bins fitted on them, one column per bin, plus the locked column."""

    def __init__(self, features: list[Feature], y: B, options: BinOptions, locked: F64 | None) -> None:
        self.y = y
        self.bins = tuple(bin_feature(f, y, options) for f in features)
        self.used = [i for i, b in enumerate(self.bins) if len(b) >= 2]
        sizes = [len(self.bins[i]) for i in self.used]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        n = len(y)
        codes = [self.bins[i].codes(features[i]) for i in self.used]
        cols = [c + off for c, off in zip(codes, self.offsets[:-1], strict=True)]
        self.x = sp.csr_matrix(
            (
                np.ones(n * len(cols)),
                (np.repeat(np.arange(n), len(cols)), np.column_stack(cols).ravel() if cols else np.zeros(0, int)),
            ),
            shape=(n, int(self.offsets[-1])),
        )
        self.locked_unit = 0.0
        if locked is not None and np.abs(locked).max() > 0:
            self.locked_unit = float(np.abs(locked).max()) / LOCKED_SCALE
            self.x = sp.hstack([self.x, sp.csr_matrix(locked[:, None] / self.locked_unit)], format="csr")
        # each feature's most frequent bin is its reference (weight 0): with a column for every bin, a
        # feature's bins could stand in for the intercept and, for free, for a locked rule's points
        references = {int(off) + self.bins[i].fallback for off, i in zip(self.offsets[:-1], self.used, strict=True)}
        self.free = np.asarray([c for c in range(self.x.shape[1]) if c not in references], dtype=np.int64)

    def fit(self, penalty: float, options: FitOptions, budget: int) -> tuple[tuple[Table, ...], float, float, float]:
        """Tables at one penalty, with the log-odds at a total of 0, the locked weight and the points scale."""
        weights, intercept = self._regress(self.free, penalty, options.seed)
        spreads = self._spreads(weights)
        active = [j for j, s in enumerate(spreads) if s > 0]
        if len(active) > options.max_rules:
            keep = sorted(sorted(active, key=lambda j: (-spreads[j], j))[: options.max_rules])
            allowed = np.zeros(self.x.shape[1], dtype=np.bool_)
            for j in keep:
                allowed[self.offsets[j] : self.offsets[j + 1]] = True
            allowed[-1] |= bool(self.locked_unit)
            weights, intercept = self._regress(self.free[allowed[self.free]], penalty, options.seed)
            spreads = self._spreads(weights)
        locked_weight = float(weights[-1]) / self.locked_unit if self.locked_unit else 0.0
        shifted = []
        logit_at_zero = intercept
        for j, i in enumerate(self.used):
            table = weights[self.offsets[j] : self.offsets[j + 1]]
            logit_at_zero += float(table.min())
            shifted.append((i, j, table - table.min()))
        span = sum(float(t.max()) for _, _, t in shifted)
        if span <= 0:
            return (), logit_at_zero, locked_weight, 0.0
        scale, points = _round_to_budget([t for _, _, t in shifted], budget / span, budget)
        tables = [
            Table(self.bins[i], tuple(int(v) for v in p), tuple(float(v) for v in t), spreads[j] * scale)
            for (i, j, t), p in zip(shifted, points, strict=True)
            if p.max() > 0
        ]
        tables.sort(key=lambda t: (-t.spread, t.name))
        return tuple(tables), logit_at_zero, locked_weight, scale

    def _regress(self, columns: I64, penalty: float, seed: int) -> tuple[F64, float]:
        """Weights of every column (0 for those not given), and the intercept."""
        model = LogisticRegression(
            l1_ratio=1.0,
            C=1.0 / (penalty * len(self.y)),
            solver="liblinear",
            tol=LOCKED_TOL if self.locked_unit else TOL,
            intercept_scaling=INTERCEPT_SCALING,
            max_iter=500,
            random_state=seed,
        )
        model.fit(self.x[:, columns], self.y)
        weights = np.zeros(self.x.shape[1])
        weights[columns] = model.coef_[0]
        return weights, float(model.intercept_[0])

    def _spreads(self, weights: F64) -> list[float]:
        """Standard deviation of each used feature's contribution across these rows."""
        out = []
        for j, i in enumerate(self.used):
            table = weights[self.offsets[j] : self.offsets[j + 1]]
            share = np.asarray(self.bins[i].counts, dtype=np.float64) / len(self.y)
            mean = float((share * table).sum())
            out.append(math.sqrt(max(float((share * (table - mean) ** 2).sum()), 0.0)))
        return out
