"""How good a probability is on held-out leads: AUC, Brier, log loss, a calibration table and lift by decile;
and the single-feature AUCs behind the leakage guard."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_curve

from scoring.evaluation import auc_score

from .features import FeatureSpec

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
_EPS = 1e-6


def brier(p: F64, y: B) -> float:
    return float(np.mean((p - y) ** 2))


def log_loss(p: F64, y: B) -> float:
    q = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(np.where(y, np.log(q), np.log1p(-q))))


def calibration_table(p: F64, y: B, bins: int = 10) -> list[dict[str, Any]]:
    """Leads in ``bins`` groups of equal size by predicted probability: mean predicted vs observed rate."""
    order = np.argsort(p, kind="stable")
    rows = []
    for k, part in enumerate(np.array_split(order, bins)):
        if len(part):
            rows.append(
                {
                    "bin": k + 1,
                    "leads": len(part),
                    "predicted": round(float(p[part].mean()), 4),
                    "observed": round(float(y[part].mean()), 4),
                }
            )
    return rows


def lift_by_decile(p: F64, y: B) -> list[dict[str, Any]]:
    """D1 = the 10% with the highest likelihood: conversion rate and lift over the overall rate."""
    base = float(y.mean()) if len(y) else 0.0
    order = np.argsort(-p, kind="stable")
    rows = []
    for k, part in enumerate(np.array_split(order, 10)):
        if len(part):
            rate = float(y[part].mean())
            rows.append(
                {
                    "decile": f"D{k + 1}",
                    "leads": len(part),
                    "converted": int(y[part].sum()),
                    "rate": round(rate, 4),
                    "lift": round(rate / base, 3) if base else None,
                }
            )
    return rows


def roc_points(p: F64, y: B, points: int = 60) -> dict[str, list[float]]:
    """The ROC curve, thinned to about ``points`` points (for the report's chart)."""
    fpr, tpr, _ = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).round().astype(np.intp))
    return {"fpr": [round(float(v), 4) for v in fpr[keep]], "tpr": [round(float(v), 4) for v in tpr[keep]]}


def quality(p: F64, y: B) -> dict[str, Any]:
    """The model card's holdout metrics."""
    return {
        "roc": roc_points(p, y),
        "leads": len(y),
        "positives": int(y.sum()),
        "auc": round(auc_score(p, y), 4),
        "brier": round(brier(p, y), 4),
        "log_loss": round(log_loss(p, y), 4),
        "calibration": calibration_table(p, y),
        "lift": lift_by_decile(p, y),
    }


def _rate_auc(groups: npt.NDArray[np.int64], y: B) -> float:
    """AUC of each group's own conversion rate: the best ranking a feature gives on its own."""
    sizes = np.bincount(groups)
    hits = np.bincount(groups, weights=y.astype(np.float64), minlength=len(sizes))
    rate = hits / np.maximum(sizes, 1)
    return auc_score(rate[groups], y)


def _groups(column: F64, spec: FeatureSpec) -> npt.NDArray[np.int64]:
    """Cells -> group ids: categories as coded, numbers in up to 20 quantile bins; missing its own group."""
    missing = np.isnan(column)
    groups = np.zeros(len(column), dtype=np.int64)
    present = column[~missing]
    if spec.kind == "categorical":
        groups[~missing] = present.astype(np.int64) + 1
    elif len(present):
        edges = np.unique(np.quantile(present, np.linspace(0, 1, 21)[1:-1]))
        groups[~missing] = np.searchsorted(edges, present, side="right") + 1
    return groups


def single_feature_auc(column: F64, spec: FeatureSpec, y: B, *, min_class: int = 20) -> float:
    """How well this feature alone separates the outcome (0.5..1).

    The larger of two views: over every lead, and over the leads that have a value, when a real share lack
    one. The second catches what is filled in only after the sales team worked a lead (a "lost to
    competitor" tag, a close reason): empty for most leads, yet a near-perfect split wherever it is set.
    """
    groups = _groups(column, spec)
    if y.all() or not y.any():
        return 0.5
    best = _rate_auc(groups, y)
    present = groups > 0
    sub = y[present]
    if present.mean() <= 0.95 and int(sub.sum()) >= min_class and int((~sub).sum()) >= min_class:
        best = max(best, _rate_auc(groups[present] - 1, sub))
    return float(best)
