"""``--rank-by score|points``: evaluation ranks leads by the 0..100 score (default) or by the unclamped points,
which keep apart the leads that the clamp ties at 0; the output says which."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from leadsync.app import load_csv_scoring
from leadsync.cli import app
from leadsync.evaluate_cmd import load_labeled, run_evaluation

from .test_evaluate import AS_OF, write_labeled

runner = CliRunner()

#: heavy penalties: many leads end below 0 and tie at score 0
HARSH = """
scoring:
  caps: {penalties: 100}
  penalties:
    - {name: free_email, points: -45, when: {email: {is: free}}}
    - {name: cold, points: -35, when: {not: {last_engaged_at: {within_days: 20}}}}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("rank")
    labeled, config = folder / "labeled.csv", folder / "leadsync.yaml"
    write_labeled(labeled, 2000, seed=5)
    config.write_text(HARSH)
    return labeled, config


def test_points_keep_apart_what_the_clamp_ties(files: tuple[Path, Path]) -> None:
    labeled, config = files
    _, rules, mapping = load_csv_scoring(config)
    data = load_labeled(labeled, "converted", rules, mapping, now=datetime.fromisoformat(AS_OF))
    scores, points = np.array(data.champion.scores), np.array(data.champion.totals)
    assert (scores == np.clip(np.floor(points + 0.5), 0, 100)).all()
    at_zero = scores == 0
    assert at_zero.sum() > 100 and len(set(points[at_zero])) > 3  # tied by the score, apart by the points
    by_score = run_evaluation(data, "f1", n_boot=50)
    by_points = run_evaluation(data, "f1", n_boot=50, rank_by="points")
    y = data.outcomes
    assert by_score.rank_by == "score" and by_points.rank_by == "points"
    assert by_score.champion.auc.value == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert by_points.champion.auc.value == pytest.approx(roc_auc_score(y, points), abs=1e-12)
    assert by_points.champion.auc.value != by_score.champion.auc.value
    assert by_points.as_dict()["rank_by"] == "points"


def test_cli_says_what_it_ranks_by(files: tuple[Path, Path], tmp_path: Path) -> None:
    labeled, config = files
    base = ["evaluate", "--input", str(labeled), "--label", "converted", "--config", str(config), "--as-of", AS_OF]
    default = runner.invoke(app, [*base, "--json"])
    assert default.exit_code == 0, default.output
    assert json.loads(default.stdout)["rank_by"] == "score"
    points = runner.invoke(app, [*base, "--json", "--rank-by", "points"])
    assert points.exit_code == 0, points.output
    data = json.loads(points.stdout)
    assert data["rank_by"] == "points" and data["auc"]["value"] != json.loads(default.stdout)["auc"]["value"]
    text = runner.invoke(app, [*base, "--rank-by", "points"])
    assert text.exit_code == 0 and "ranked by points" in text.stdout
    assert "ranked by score" in runner.invoke(app, base).stdout
    out = tmp_path / "report.html"
    report_args = ["report", "--input", str(labeled), "--label", "converted", "--config", str(config)]
    report = runner.invoke(app, [*report_args, "--as-of", AS_OF, "--rank-by", "points", "--output", str(out)])
    assert report.exit_code == 0, report.output
    assert "ranked by points" in out.read_text()
    bad = runner.invoke(app, [*base, "--rank-by", "grade"])
    assert bad.exit_code == 2 and "--rank-by: expected one of score, points, got 'grade'" in bad.output
