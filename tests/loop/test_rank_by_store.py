"""``evaluate --rank-by points`` from the state store: the history keeps scores only, so the champion's points
are rescored from the cache as of each lead's moment, and the output says so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from leadsync.cli import app
from leadsync.config import OutcomesConfig
from leadsync.evaluate_store import evaluate_store, rescore_as_of
from sync.state import StateStore

from .test_evaluate_store import MAPPING, NOW, RULES, config_file, seed_store

runner = CliRunner()
__all__ = ["config_file"]  # the fixture, shared


def test_points_are_rescored_as_of_the_moment(store: StateStore) -> None:
    seed_store(store, 400)
    result = evaluate_store(store, MAPPING, RULES, OutcomesConfig(), "f1", now=NOW, n_boot=50, rank_by="points")
    assert result.run is not None and result.run.rank_by == "points"
    labels = result.labels
    points = np.array(rescore_as_of(store, MAPPING, RULES, labels, "check").totals)
    y = np.array(labels.outcomes)
    assert result.run.champion.auc.value == pytest.approx(roc_auc_score(y, points), abs=1e-12)
    assert result.as_dict()["rank_by"] == "points"
    by_score = evaluate_store(store, MAPPING, RULES, OutcomesConfig(), "f1", now=NOW, n_boot=50)
    assert by_score.run is not None and by_score.run.rank_by == "score"
    assert by_score.run.champion.auc.value == pytest.approx(roc_auc_score(y, labels.scores), abs=1e-12)


def test_cli_says_the_points_are_rescored(config_file: Path, tmp_path: Path) -> None:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        seed_store(store, 400)
    args = ["evaluate", "--config", str(config_file), "--as-of", NOW.isoformat(), "--rank-by", "points"]
    text = runner.invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "ranked by points" in text.stdout and "rescored from the cache" in text.stdout
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["rank_by"] == "points" and data["source"] == "state"
