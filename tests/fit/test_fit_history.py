"""``leadsync rules fit --from-history`` against the HubSpot sandbox over real HTTP (issue 18, item 4).

The portal's conversions follow a hidden propensity. Rules fitted on the synced cache's earlier leads (their
attributes and activity counts as of before each outcome, from ``leadsync.training_data``) must rank a later
holdout better than the default rules do, both scored as ``evaluate --backfill`` scores a fresh install:
rescored from the cache as of each lead's moment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.app import build_app
from leadsync.cli import app
from leadsync.config import parse_config
from leadsync.evaluate_cmd import load_candidate
from leadsync.evaluate_store import label_from_store, rescore_as_of
from scoring.evaluation import auc_score

runner = CliRunner()


@pytest.mark.slow
def test_rules_fitted_from_history_beat_the_default_rules_on_a_later_holdout(
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
        assert built.pipeline(store).run_once().outcomes > 100
        now = datetime.now(UTC)
        labels = label_from_store(store, built.mapping, built.config.outcomes, now=now, backfill=True)
        anchors = np.array([a.timestamp() for a in labels.anchors])
        cutoff = datetime.fromtimestamp(float(np.quantile(anchors, 0.7)), UTC)

        out = tmp_path / "fitted.yaml"
        args = ["rules", "fit", "--from-history", "--config", str(config), "--until", cutoff.isoformat()]
        result = runner.invoke(app, [*args, "--output", str(out), "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["rules"] <= 30 and summary["labeled"] < len(labels.lead_ids)
        assert not set(summary["candidates"]) & {"lifecycle_stage", "lead_status", "owner", "customer_at"}
        text = out.read_text()
        assert "--from-history --until" in text and "point in time" in text and "csv:" not in text
        fitted = load_candidate(out, built.mapping)  # as `evaluate --rules` reads it

        later = np.flatnonzero(anchors >= cutoff.timestamp())
        y = np.array(labels.outcomes, dtype=bool)[later]
        assert 20 <= y.sum() < len(y)
        default = np.array(rescore_as_of(store, built.mapping, built.rules, labels, "champion").scores)[later]
        ours = np.array(rescore_as_of(store, built.mapping, fitted, labels, "candidate").scores)[later]
    finally:
        store.close()
    default_auc, fitted_auc = auc_score(default, y), auc_score(ours, y)
    assert fitted_auc > default_auc, (fitted_auc, default_auc)
    assert ours.min() >= 0 and ours.max() <= 100
