"""The report's predictive-model section: ROC, calibration curve, lift, feature importance and the model card,
all from the active model's card (its time-ordered or stratified holdout), so the report needs no retraining."""

from __future__ import annotations

import html
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from leadsync.report import CONVERTED, NOT_CONVERTED, _figure, _mark


def chart_model_roc(card: dict[str, Any]) -> Figure:
    m = card["metrics"]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    (line,) = ax.plot(m["roc"]["fpr"], m["roc"]["tpr"], color=CONVERTED, label=f"model (AUC {m['auc']:.3f})")
    _mark(line, "model-roc")
    ax.plot([0, 1], [0, 1], ls=":", color=NOT_CONVERTED, label="coin toss")
    ax.set(xlabel="non-converters flagged", ylabel="converters caught", title="Model ROC (holdout)")
    ax.legend(loc="lower right", frameon=False)
    return fig


def chart_calibration(card: dict[str, Any]) -> Figure:
    rows = card["metrics"]["calibration"]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    (line,) = ax.plot([r["predicted"] for r in rows], [r["observed"] for r in rows], "o-", color=CONVERTED)
    _mark(line, "calibration")
    ax.plot([0, 1], [0, 1], ls=":", color=NOT_CONVERTED)
    ax.set(xlabel="predicted likelihood", ylabel="observed conversion", title="Calibration (holdout tenths)")
    return fig


def chart_lift(card: dict[str, Any]) -> Figure:
    rows = card["metrics"]["lift"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    bars = ax.bar([r["decile"] for r in rows], [r["rate"] for r in rows], color=CONVERTED)
    _mark(bars, "model-lift")
    ax.set(ylabel="conversion rate", title="Conversion by likelihood decile (holdout)")
    return fig


def chart_importance(card: dict[str, Any], top: int = 12) -> Figure:
    rows = card["importance"][:top][::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(rows) + 1.2))
    bars = ax.barh([r["feature"] for r in rows], [r["mean_abs_contribution"] for r in rows], color=CONVERTED)
    _mark(bars, "importance")
    ax.set(xlabel="mean |contribution| to the log-odds", title="Feature importance (holdout)")
    return fig


def _card_table(version: str, card: dict[str, Any]) -> str:
    m = card["metrics"]
    rows = [
        ("version", version),
        ("trained", card.get("trained_at", "")),
        ("source", card.get("source", "")),
        ("data window", " to ".join(str(v) for v in (card.get("data_window") or {}).values() if v)),
        ("labeled leads / converted", f"{card['rows']} / {card['positives']}"),
        ("holdout", f"{card['holdout']}, {m['leads']} leads"),
        ("AUC / Brier / log loss", f"{m['auc']:.3f} / {m['brier']:.3f} / {m['log_loss']:.3f}"),
        ("rules' AUC on the same holdout", "" if m.get("rules_auc") is None else f"{m['rules_auc']:.3f}"),
        ("calibration", card["calibration"]["method"]),
        ("features", ", ".join(f["name"] for f in card["features"])),
        ("libraries", ", ".join(f"{k} {v}" for k, v in card["versions"].items())),
    ]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table><tr><th>model card</th><th></th></tr>{body}</table>"


def model_section(version: str, card: dict[str, Any]) -> str:
    """The HTML of the active model's section."""
    figures = [
        _figure("mroc", lambda: chart_model_roc(card), "The model's ROC on leads it did not learn from."),
        _figure(
            "calib",
            lambda: chart_calibration(card),
            "Each point is a tenth of the holdout: on the dotted line, a likelihood of 30% means 30 in 100 convert.",
        ),
        _figure(
            "mlift", lambda: chart_lift(card), "D1 is the 10% most likely to close: conversion should fall to D10."
        ),
        _figure(
            "imp",
            lambda: chart_importance(card),
            "How much each feature moves the likelihood on average (path contributions of the trees).",
        ),
    ]
    return "<h2>Predictive model</h2>" + _card_table(version, card) + "".join(figures)
