"""End to end against the HubSpot sandbox over real HTTP: sync a portal, train through the CLI on its history,
then score with the model on the next pass.

The portal's conversions follow a hidden propensity; a model trained on the synced outcomes (features as of
before each outcome) must rank a later holdout better than the default rules do on the same leads, and the
next pass must write the likelihood, priority, model version and reasons (diff-only: a third pass writes none).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.app import build_app
from leadsync.cli import app
from leadsync.config import parse_config
from leadsync.model_train import champion_challenger
from scoring.predictive import FeatureTable, TrainOptions, train_model
from tests.model.synthetic import INTAKE, labeled_rows

runner = CliRunner()


@pytest.mark.slow
def test_model_trained_on_synced_history_beats_the_rules(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path
) -> None:
    portal = hubspot_sandbox_factory(contacts=3000, seed=21, now=None)
    section = {
        "crm": "hubspot",
        "hubspot": {"access_token": portal.token, "base_url": portal.url, "rate_limit_per_10s": 5000},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "sync": {"settle_s": 0},
    }
    config = tmp_path / "leadsync.yaml"
    config.write_text(yaml.safe_dump(section))
    built = build_app(parse_config(section))
    store = built.store()
    try:
        first = built.pipeline(store).run_once()
        assert first.outcomes > 100

        trained = runner.invoke(app, ["model", "train", "--config", str(config), "--json"])
        assert trained.exit_code == 0, trained.output
        card = json.loads(trained.stdout)
        metrics = card["metrics"]
        assert card["holdout"].startswith("time-ordered"), card["holdout"]
        assert metrics["auc"] > metrics["rules_auc"] + 0.01, metrics
        assert metrics["auc"] > 0.75 and metrics["brier"] < 0.2, metrics
        features = {f["name"] for f in card["features"]}
        assert not features & {"lifecycle_stage", "lead_status", "owner", "created_at", "customer_at"}

        second = built.pipeline(store).run_once(full=True)
        assert second.leads_written > 0
        ids = [lead_id for lead_id, _ in next(iter(store.iter_lead_values("email", chunk_size=200)))]
        written = store.get_written(ids)
        values = [w for w in written.values() if "leadsync_likelihood" in w]
        assert len(values) == len(ids), "every lead gets a likelihood once a model is active"
        assert all(0 <= int(w["leadsync_likelihood"]) <= 100 for w in values)
        assert {w["leadsync_priority"] for w in values} <= {"very_high", "high", "medium", "low"}
        assert {w["leadsync_model_version"] for w in values} == {card["version"]}
        assert all(w["leadsync_likelihood_reasons"].count(";") <= 2 for w in values)
        third = built.pipeline(store).run_once(full=True)
        assert third.leads_written == 0, third.as_dict()  # diff-only: nothing changed, nothing sent

        # champion / challenger: the same data gives the same model, which does not beat itself
        same = champion_challenger(built, store)
        assert not same["activated"] and same["champion"] == card["version"], same
        # a champion that knows nothing of this portal (trained on other columns) is beaten on the same holdout
        rows = labeled_rows(600, seed=2)
        other = train_model(
            FeatureTable.from_rows([{c: r[c] for c in INTAKE} for r in rows]),
            np.array([r["converted"] for r in rows], dtype=bool),
            options=TrainOptions(search=False),
        )
        weak = store.save_model(other.model.to_bytes(), other.card, "csv", activate=True)
        beaten = champion_challenger(built, store)
        assert beaten["activated"] and beaten["champion"] == weak, beaten
        assert beaten["auc"] > beaten["champion_auc"] + 0.1 and store.active_model_version() == beaten["version"]
    finally:
        store.close()


def test_scheduled_training_falls_back_to_rules_until_enough_outcomes(tmp_path: Path) -> None:
    section = {
        "crm": "hubspot",
        "hubspot": {"access_token": "t", "base_url": "http://127.0.0.1:9"},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
    }
    built = build_app(parse_config(section))
    store = built.store()
    try:
        result = champion_challenger(built, store)
    finally:
        store.close()
    assert result == {
        "activated": False,
        "reason": "only 0 labeled leads; training needs at least 100 (rules alone until then); "
        "scoring stays with the rules alone",
        "guard": "too_few",
    }
