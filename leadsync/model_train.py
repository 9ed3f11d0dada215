"""Champion / challenger retraining (the daemon's ``schedule.train``).

A challenger is trained on the store's outcomes like ``leadsync model train``. It becomes active only when it
beats the active model (the champion) on the same recent holdout: the challenger's own time-ordered holdout,
which it did not learn from before its metrics were taken, and on which the champion is scored too (the
champion may have seen some of those leads when it was trained, which only makes it harder to beat). Until
there are enough outcomes, the guards refuse and scoring stays with the rules (or the current model), with
the reason logged and recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import structlog

from leadsync.app import App
from leadsync.model_cmd import store_card, train_options
from leadsync.training_data import training_rows
from scoring.evaluation import auc_score
from scoring.predictive import ModelError, ModelGuardError, PredictiveModel, train_model
from scoring.predictive.metrics import brier
from sync.state import StateStore

log = structlog.get_logger("leadsync.model")


def champion_challenger(app: App, store: StateStore, now: datetime | None = None) -> dict[str, Any]:
    """Train a challenger; save it; activate it when it beats the champion. Returns what happened."""
    now = now or datetime.now(UTC)
    rows = training_rows(store, app.mapping, app.rules, app.config.outcomes, now=now, exclude=app.config.model.exclude)
    try:
        result = train_model(
            rows.table,
            rows.outcomes,
            dates=rows.anchor_seconds(),
            baseline=rows.rules_scores,
            options=train_options(app.config.model, [], None),
            source="store",
        )
    except ModelGuardError as exc:
        active = store.active_model_version()
        fallback = f"the active model {active} stays" if active else "scoring stays with the rules alone"
        log.warning("model.not_trained", guard=exc.kind, reason=str(exc), fallback=fallback)
        return {"activated": False, "reason": f"{exc}; {fallback}", "guard": exc.kind}
    result.card.update(store_card(rows, app.config.outcomes.window_days, app.rules.version))
    y = rows.outcomes[result.holdout]
    challenger = {"auc": auc_score(result.holdout_likelihood, y), "brier": brier(result.holdout_likelihood, y)}
    champion: dict[str, float] | None = None
    stored = store.active_model()
    if stored is not None:
        try:
            model = PredictiveModel.from_bytes(stored.body, stored.card)
            p = model.predict(rows.table.take(result.holdout)).likelihood
            champion = {"auc": auc_score(p, y), "brier": brier(p, y)}
        except ModelError as exc:
            log.warning("model.champion_unusable", version=stored.version, reason=str(exc))
    wins = champion is None or (challenger["auc"], -challenger["brier"]) > (champion["auc"], -champion["brier"])
    result.card["champion_challenger"] = {
        "champion": stored.version if stored is not None else None,
        "holdout_leads": len(y),
        "challenger": {k: round(v, 4) for k, v in challenger.items()},
        "champion_metrics": None if champion is None else {k: round(v, 4) for k, v in champion.items()},
        "activated": wins,
    }
    body = result.model.to_bytes()
    result.card["file_bytes"] = len(body)
    version = store.save_model(body, result.card, "store", activate=wins)
    reason = (
        "no active model yet"
        if champion is None
        else f"AUC {challenger['auc']:.3f} vs {champion['auc']:.3f} on the same {len(y)} recent leads"
    )
    return {
        "activated": wins,
        "version": version,
        "champion": stored.version if stored is not None else None,
        "reason": reason,
        "auc": round(challenger["auc"], 4),
        "champion_auc": None if champion is None else round(champion["auc"], 4),
        "holdout_leads": len(y),
        "positives": int(np.sum(rows.outcomes)),
    }
