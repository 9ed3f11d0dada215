"""Training: guards, holdout, leakage check, gradient boosting with native categoricals, calibration, the card.

The order matters for honesty:

1. **Guards** first: too few labeled leads, too few of the smaller class, one class, the label among the
   features: each refuses with :class:`ModelGuardError` naming the problem.
2. **Holdout** (20% by default): the *latest* leads when dates exist (time-ordered: the model is judged on
   leads that came after the ones it learnt from, as it will be used), else a stratified random one. It is not
   touched until the metrics.
3. **Leakage**: a feature that alone separates the outcome with AUC above 0.97 (see
   :func:`~scoring.predictive.metrics.single_feature_auc`) is almost surely filled in after the sale; training
   stops and names it unless it is explicitly allowed.
4. **Model**: ``HistGradientBoostingClassifier`` with ``categorical_features`` (capped categories, missing
   handled natively) and regularised settings. On up to 30,000 rows, three settings (leaf count, leaf size,
   l2, column subsampling) are compared by 5-fold cross-validation on the training part, and the number of
   trees is chosen there too: the iteration with the lowest mean out-of-fold log loss. The final estimator is
   then fitted on the *whole* training part with that many trees (no rows set aside for early stopping).
   Above 30,000 rows one larger-step setting with early stopping keeps training fast and the trees few.
5. **Calibration**: the out-of-fold log-odds of the training part at the chosen iteration (each row predicted
   by a model that did not see it) are fitted with isotonic regression and with a sigmoid (Platt); the one
   with the lower cross-validated Brier score on those rows is kept (log loss breaks a tie). The holdout
   metrics are of the final estimator with that calibrator, so nothing was tuned on the holdout.
6. **Refit** (default): the estimator is fitted once more on every labeled row for use; the card's metrics
   stay those of the holdout, which that refit has seen (said in the card).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy
import sklearn
import skops
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from scoring.evaluation import auc_score

from .errors import ModelGuardError
from .features import MAX_CATEGORIES, MIN_COUNT, FeatureSpec, FeatureTable, encode, infer_specs
from .metrics import brier, log_loss, quality, single_feature_auc
from .model import PredictiveModel

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: the settings compared by cross-validation on small data; all regularised, the number of trees chosen by CV
CANDIDATES: tuple[dict[str, Any], ...] = (
    {"learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 20, "l2_regularization": 1.0},
    {"learning_rate": 0.05, "max_leaf_nodes": 8, "min_samples_leaf": 20, "l2_regularization": 1.0},
    {"learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 40, "l2_regularization": 1, "max_features": 0.5},
)
#: a fold stops adding trees after this many rounds without a lower log loss on the rows it left out
PATIENCE = 30
SEARCH_MAX_ROWS = 30_000
#: the one setting used above that: a larger step keeps the number of trees, and so the cost of applying, low
LARGE: dict[str, Any] = {"learning_rate": 0.2, "max_leaf_nodes": 31, "min_samples_leaf": 40, "l2_regularization": 1.0}


@dataclass
class TrainOptions:
    """The knobs of :func:`train_model` (the guards' thresholds are the product's)."""

    min_labeled: int = 100
    min_minority: int = 20
    holdout: float = 0.2
    leak_auc: float = 0.97
    allow_leaky: Collection[str] = ()
    #: the label's name: a feature of that name is refused
    label: str | None = None
    max_categories: int = MAX_CATEGORIES
    min_count: int = MIN_COUNT
    max_iter: int = 600
    seed: int = 0
    #: OpenMP threads (1: on a shared machine, more threads fight for the cores and run far slower)
    threads: int = 1
    refit: bool = True
    #: compare the candidate settings (None: when the training part has at most 30,000 rows)
    search: bool | None = None


@dataclass
class TrainResult:
    model: PredictiveModel
    card: dict[str, Any]
    #: holdout rows (indices into the training table) and their likelihoods, for the report and comparisons
    holdout: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    holdout_likelihood: F64 = field(default_factory=lambda: np.zeros(0))


def _guards(y: B, options: TrainOptions, table: FeatureTable) -> None:
    n, positives = len(y), int(y.sum())
    if n < options.min_labeled:
        raise ModelGuardError(
            "too_few", f"only {n} labeled leads; training needs at least {options.min_labeled} (rules alone until then)"
        )
    if positives in (0, n):
        which = "converted" if positives else "not converted"
        raise ModelGuardError("one_class", f"all {n} labeled leads are {which}; training needs both outcomes")
    smaller = min(positives, n - positives)
    if smaller < options.min_minority:
        which = "converted" if positives == smaller else "not converted"
        raise ModelGuardError(
            "too_few",
            f"only {smaller} labeled leads are {which}; training needs at least {options.min_minority} of each outcome",
        )
    if options.label is not None and options.label in table.columns:
        raise ModelGuardError(
            "label_is_feature",
            f"the label '{options.label}' is also a feature column: a model would learn the answer; "
            "remove it from the features (or pick another label)",
        )


def _split(y: B, dates: F64 | None, share: float, seed: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], str]:
    """(training rows, holdout rows, how): the latest ``share`` of rows when dates exist, else stratified."""
    n = len(y)
    index = np.arange(n)
    if dates is not None and np.isfinite(dates).mean() >= 0.9:
        order = np.argsort(np.where(np.isfinite(dates), dates, -np.inf), kind="stable")
        cut = n - max(round(n * share), 1)
        train, hold = np.sort(order[:cut]), np.sort(order[cut:])
        h = y[hold]
        if h.sum() >= 5 and (~h).sum() >= 5:
            return train, hold, "time-ordered (the latest leads)"
    train, hold = train_test_split(index, test_size=share, stratify=y, random_state=seed)
    return np.sort(train), np.sort(hold), "stratified random"


def _leaky(x: F64, specs: list[FeatureSpec], y: B, options: TrainOptions) -> dict[str, float]:
    aucs = {s.name: round(single_feature_auc(x[:, j], s, y), 4) for j, s in enumerate(specs)}
    allowed = set(options.allow_leaky)
    leaky = {n: a for n, a in aucs.items() if a > options.leak_auc and n not in allowed}
    if leaky:
        named = ", ".join(f"'{n}' (AUC {a:.3f})" for n, a in sorted(leaky.items(), key=lambda kv: -kv[1]))
        first = next(iter(sorted(leaky, key=lambda n: -leaky[n])))
        raise ModelGuardError(
            "leaky",
            f"{named} alone separates the outcome (AUC above {options.leak_auc}): almost surely filled in after "
            "the sale (a close reason, a 'lost to competitor' tag). Leave it out of the training data, or pass "
            f"--allow-leaky {first} if it is truly known before the outcome",
        )
    return aucs


def _estimator(
    params: dict[str, Any], categorical: list[bool], options: TrainOptions, trees: int | None = None
) -> HistGradientBoostingClassifier:
    """The gradient boosting; ``trees`` fixes the number of trees (chosen by CV), else early stopping on 15%."""
    return HistGradientBoostingClassifier(
        **params,
        max_iter=trees or options.max_iter,
        categorical_features=np.array(categorical, dtype=bool) if any(categorical) else None,
        early_stopping=trees is None,
        validation_fraction=0.15,
        n_iter_no_change=30,
        scoring="loss",
        random_state=options.seed,
    )


def _oof(
    x: F64, y: B, params: dict[str, Any], categorical: list[bool], options: TrainOptions, folds: int
) -> tuple[F64, int, float]:
    """(out-of-fold log-odds at the best number of trees, that number, the mean out-of-fold log loss there).

    Each fold grows trees until its left-out rows stop improving (``PATIENCE`` rounds); the log loss of every
    fold after each tree gives a mean curve (a fold that stopped keeps its last value), whose minimum is the
    number of trees the final estimator gets. Each row is predicted by a model that did not see it.
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=options.seed)
    curves: list[F64] = []
    staged: list[tuple[npt.NDArray[np.intp], F64]] = []
    for fit, rest in splitter.split(x, y):
        est = HistGradientBoostingClassifier(
            **params,
            max_iter=options.max_iter,
            categorical_features=np.array(categorical, dtype=bool) if any(categorical) else None,
            early_stopping=True,
            n_iter_no_change=PATIENCE,
            scoring="loss",
            random_state=options.seed,
        ).fit(x[fit], y[fit], X_val=x[rest], y_val=y[rest])
        raw = np.array(list(est.staged_decision_function(x[rest])))  # (trees, rows)
        p = np.clip(1 / (1 + np.exp(-raw)), 1e-6, 1 - 1e-6)
        curves.append(-np.mean(np.where(y[rest], np.log(p), np.log1p(-p)), axis=1))
        staged.append((rest, raw))
    longest = max(len(c) for c in curves)
    mean = np.mean([np.pad(c, (0, longest - len(c)), mode="edge") for c in curves], axis=0)
    best = int(np.argmin(mean))
    out = np.zeros(len(y))
    for rest, raw in staged:
        out[rest] = raw[min(best, len(raw) - 1)]
    return out, best + 1, float(mean[best])


def _oof_early(x: F64, y: B, params: dict[str, Any], categorical: list[bool], options: TrainOptions, folds: int) -> F64:
    """Out-of-fold log-odds with each fold's own early stopping (the large-data path: one setting, no search)."""
    out = np.zeros(len(y))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=options.seed)
    for fit, rest in splitter.split(x, y):
        out[rest] = _estimator(params, categorical, options).fit(x[fit], y[fit]).decision_function(x[rest])
    return out


def _sigmoid(raw: F64, y: B) -> LogisticRegression:
    return LogisticRegression(C=1e4).fit(raw.reshape(-1, 1), y)


def _isotonic(raw: F64, y: B) -> IsotonicRegression:
    return IsotonicRegression(out_of_bounds="clip", y_min=1e-3, y_max=1 - 1e-3).fit(raw, y.astype(np.float64))


def _apply(calibrator: Any, raw: F64) -> F64:
    if isinstance(calibrator, LogisticRegression):
        return np.asarray(calibrator.predict_proba(raw.reshape(-1, 1))[:, 1], dtype=np.float64)
    return np.asarray(calibrator.predict(raw), dtype=np.float64)


def _pick_calibration(raw: F64, y: B, seed: int) -> tuple[str, Any, dict[str, float], dict[str, float]]:
    """Isotonic or sigmoid, whichever has the lower cross-validated Brier score on the out-of-fold log-odds."""
    fitters = {"isotonic": _isotonic, "sigmoid": _sigmoid}
    scores: dict[str, list[tuple[float, float]]] = {k: [] for k in fitters}
    splitter = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for fit, rest in splitter.split(raw.reshape(-1, 1), y):
        for name, fitter in fitters.items():
            p = _apply(fitter(raw[fit], y[fit]), raw[rest])
            scores[name].append((brier(p, y[rest]), log_loss(p, y[rest])))
    means = {k: round(float(np.mean([b for b, _ in v])), 5) for k, v in scores.items()}
    losses = {k: round(float(np.mean([ll for _, ll in v])), 5) for k, v in scores.items()}
    # Brier first (what the card and the CRM show); log loss, then the smoother sigmoid, break a tie
    method = min(means, key=lambda k: (means[k], losses[k], k != "sigmoid"))
    calibrator = fitters[method](raw, y)
    return method, calibrator, means, losses


def train_model(
    table: FeatureTable,
    y: Any,
    *,
    dates: F64 | None = None,
    baseline: F64 | None = None,
    options: TrainOptions | None = None,
    source: str = "store",
) -> TrainResult:
    """Train, calibrate and evaluate a model on labeled feature rows (``y`` true = converted).

    ``dates`` (seconds, NaN when unknown) order the holdout; ``baseline`` (the rules' score of each row) is
    evaluated on the same holdout for the card. :raises ModelGuardError: when a guard refuses.
    """
    options = options or TrainOptions()
    with threadpool_limits(limits=options.threads):
        return _train(table, y, dates, baseline, options, source)


def _train(
    table: FeatureTable, y: Any, dates: F64 | None, baseline: F64 | None, options: TrainOptions, source: str
) -> TrainResult:
    started = time.perf_counter()
    y = np.asarray(y, dtype=np.bool_)
    if len(y) != table.rows:
        raise ValueError(f"{len(y)} labels for {table.rows} rows")
    _guards(y, options, table)
    specs, dropped = infer_specs(table, max_categories=options.max_categories, min_count=options.min_count)
    if not specs:
        raise ModelGuardError(
            "no_features", "no usable feature column: " + "; ".join(f"{k}: {v}" for k, v in dropped.items())
        )
    x = encode(specs, table)
    aucs = _leaky(x, specs, y, options)
    train, hold, split = _split(y, dates, options.holdout, options.seed)
    categorical = [s.kind == "categorical" for s in specs]
    xt, yt = x[train], y[train]
    folds = 5 if len(train) <= SEARCH_MAX_ROWS else 3
    search = options.search if options.search is not None else len(train) <= SEARCH_MAX_ROWS
    tried: list[dict[str, Any]] = []
    trees: int | None
    best: tuple[float, int, F64, int] | None = None
    if search:
        for k, params in enumerate(CANDIDATES):
            raw, trees, loss = _oof(xt, yt, params, categorical, options, folds)
            tried.append(
                {
                    "params": params,
                    "trees": trees,
                    "oof_log_loss": round(loss, 5),
                    "oof_auc": round(auc_score(raw, yt), 4),
                }
            )
            if best is None or loss < best[0]:
                best = (loss, k, raw, trees)
        assert best is not None
        params, trees = CANDIDATES[best[1]], best[3]
        oof_raw = best[2]
    else:  # large data: one setting, out-of-fold log-odds for calibration, early stopping on 15% of each fold
        params, trees = LARGE, None
        oof_raw = _oof_early(xt, yt, params, categorical, options, folds)
        tried.append({"params": params, "oof_auc": round(auc_score(oof_raw, yt), 4)})
    method, calibrator, calibration_scores, calibration_losses = _pick_calibration(oof_raw, yt, options.seed)
    estimator = _estimator(params, categorical, options, trees).fit(xt, yt)
    model = PredictiveModel(estimator, calibrator, specs, (0.0, 0.0, 0.0), method, source=source)
    p_hold = model.probabilities(x[hold])
    p_train = _apply(calibrator, oof_raw)
    tiers = tuple(float(q) for q in np.quantile(p_train, [0.75, 0.5, 0.25]))
    model.tiers = tiers
    raw_hold = 1 / (1 + np.exp(-model.raw(x[hold])))
    metrics = quality(p_hold, y[hold])
    metrics["uncalibrated"] = {
        "brier": round(brier(raw_hold, y[hold]), 4),
        "log_loss": round(log_loss(raw_hold, y[hold]), 4),
    }
    if baseline is not None:
        metrics["rules_auc"] = round(auc_score(np.asarray(baseline, dtype=np.float64)[hold], y[hold]), 4)
    _, contrib = model.contributions(x[hold])
    importance = np.abs(contrib).mean(axis=0)
    iterations = int(estimator.n_iter_)
    if options.refit:
        model.estimator = _estimator(params, categorical, options, trees).fit(x, y)
    card: dict[str, Any] = {
        "rows": len(y),
        "positives": int(y.sum()),
        "training_rows": len(train),
        "holdout_rows": len(hold),
        "holdout": split,
        "features": [s.as_dict() | {"single_auc": aucs[s.name]} for s in specs],
        "dropped": dropped,
        "importance": sorted(
            (
                {"feature": s.name, "mean_abs_contribution": round(float(v), 4)}
                for s, v in zip(specs, importance, strict=True)
            ),
            key=lambda d: -d["mean_abs_contribution"],
        ),
        "estimator": {
            "class": "HistGradientBoostingClassifier",
            "params": params,
            "iterations": iterations,
            "trees_chosen_by": "5-fold cross-validation" if trees is not None else "early stopping (15% of rows)",
            "tried": tried,
        },
        "calibration": {"method": method, "cv_brier": calibration_scores, "cv_log_loss": calibration_losses},
        "tiers": dict(zip(("very_high", "high", "medium"), [round(t, 4) for t in tiers], strict=True)),
        "metrics": metrics,
        "refit_on_all_rows": options.refit,
        "allowed_leaky": sorted(set(options.allow_leaky)),
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "skops": skops.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "training_seconds": round(time.perf_counter() - started, 2),
    }
    model.card = card
    return TrainResult(model, card, hold, p_hold)
