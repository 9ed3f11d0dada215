"""``leadsync model train --input`` / list / show / activate, end to end through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from leadsync.cli import app
from tests.model.synthetic import INTAKE, POST_SALE, write_csv

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "leadsync.yaml"
    path.write_text(yaml.safe_dump({"state": {"url": f"sqlite:///{tmp_path / 'state.db'}"}}))
    return path


def test_train_list_show_activate(config: Path, tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    leaky = write_csv(tmp_path / "all.csv", rows[:1500], INTAKE + POST_SALE + ["converted"])
    refused = runner.invoke(
        app, ["model", "train", "--config", str(config), "--input", str(leaky), "--label", "converted"]
    )
    assert refused.exit_code == 2
    assert "'tags'" in refused.output and "--allow-leaky" in refused.output
    intake = write_csv(tmp_path / "intake.csv", rows[:1500], [*INTAKE, "converted"])
    args = ["model", "train", "--config", str(config), "--input", str(intake), "--label", "converted", "--json"]
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    card = json.loads(trained.stdout)
    assert card["active"] and card["source"] == "csv" and card["rows"] == 1500
    assert card["metrics"]["auc"] > 0.8 and 0 < card["metrics"]["brier"] < 0.2
    assert {"scikit-learn", "skops", "numpy"} <= set(card["versions"])
    assert card["file_bytes"] < 20 * 2**20
    listed = runner.invoke(app, ["model", "list", "--config", str(config), "--json"])
    assert json.loads(listed.stdout)["models"][0]["version"] == card["version"]
    shown = runner.invoke(app, ["model", "show", card["version"][:6], "--config", str(config)])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["metrics"]["auc"] == card["metrics"]["auc"]
    missing = runner.invoke(app, ["model", "activate", "ffff", "--config", str(config)])
    assert missing.exit_code == 2 and "no model version 'ffff'" in missing.output
    ok = runner.invoke(app, ["model", "activate", card["version"], "--config", str(config)])
    assert ok.exit_code == 0 and card["version"] in ok.output
    page = tmp_path / "report.html"
    args = ["report", "--config", str(config), "--input", str(intake), "--label", "converted", "--output", str(page)]
    reported = runner.invoke(app, args)
    assert reported.exit_code == 0, reported.output
    text = page.read_text()
    assert "<h2>Predictive model</h2>" in text and card["version"] in text
    for mark in ("mark-model-roc", "mark-calibration", "mark-model-lift", "mark-importance"):
        assert mark in text


def test_train_refuses_bad_input(config: Path, tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    few = write_csv(tmp_path / "few.csv", rows[:60], [*INTAKE, "converted"])
    result = runner.invoke(
        app, ["model", "train", "--config", str(config), "--input", str(few), "--label", "converted"]
    )
    assert result.exit_code == 2 and "only 60 labeled leads; training needs at least 100" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("lead_source,converted\ngoogle,maybe\n")
    result = runner.invoke(
        app, ["model", "train", "--config", str(config), "--input", str(bad), "--label", "converted"]
    )
    assert result.exit_code == 2 and "line 2: column 'converted'" in result.output
    result = runner.invoke(app, ["model", "train", "--config", str(config), "--input", str(bad)])
    assert result.exit_code == 2 and "--label" in result.output
    labeled_as_feature = tmp_path / "label.csv"
    labeled_as_feature.write_text("email,opted_out\na@b.com,1\n")
    args = ["model", "train", "--config", str(config), "--input", str(labeled_as_feature), "--label", "opted_out"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "is also the feature 'opted_out'" in result.output


def test_score_adds_the_model_columns_once_a_model_is_active(
    config: Path, tmp_path: Path, rows: list[dict[str, Any]]
) -> None:
    scored_path = tmp_path / "new.csv"
    write_csv(scored_path, rows[2000:2100], INTAKE)  # no email column: the model reads every column
    before = runner.invoke(app, ["score", "--config", str(config), "--input", str(scored_path)])
    assert before.exit_code == 0, before.output
    assert "likelihood" not in before.stdout.splitlines()[0]  # no model yet: no model columns
    intake = write_csv(tmp_path / "intake.csv", rows[:1500], [*INTAKE, "converted"])
    args = ["model", "train", "--config", str(config), "--input", str(intake), "--label", "converted", "--json"]
    version = json.loads(runner.invoke(app, args).stdout)["version"]
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", "--config", str(config), "--input", str(scored_path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    scored = list(csv.DictReader(out.open()))
    assert len(scored) == 100
    assert all(0 <= int(r["likelihood"]) <= 100 and r["model_version"] == version for r in scored)
    assert {r["priority"] for r in scored} <= {"very_high", "high", "medium", "low"}
    assert all(r["likelihood_reasons"].startswith(("+", "-")) for r in scored)


def test_a_csv_card_names_only_dropped_columns_the_file_has(
    config: Path, tmp_path: Path, rows: list[dict[str, Any]]
) -> None:
    intake = write_csv(tmp_path / "intake.csv", rows[:1500], [*INTAKE, "converted"])
    args = ["model", "train", "--config", str(config), "--input", str(intake), "--label", "converted", "--json"]
    card = json.loads(runner.invoke(app, args).stdout)
    # the id and the running number are columns of the file; activity counts and silent rules are not
    assert set(card["dropped"]) == {"prospect_id", "lead_number"}, card["dropped"]
    assert card["not_in_input"] > 50 and not any(name.endswith("_30d") for name in card["dropped"])


def test_null_values_are_missing_in_training_and_in_scoring(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    """``csv.null_values: [Select]`` makes the placeholder missing in every column, on both sides, and the
    file's own delimiter is read (a ;-delimited export trains as a comma one does)."""
    config = tmp_path / "leadsync.yaml"
    state = {"url": f"sqlite:///{tmp_path / 'state.db'}"}
    config.write_text(yaml.safe_dump({"state": state, "csv": {"null_values": ["Select"], "delimiter": ";"}}))
    intake = tmp_path / "intake.csv"
    with intake.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, [*INTAKE, "converted"], delimiter=";", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**r, "converted": "yes" if r["converted"] else "no"} for r in rows[:1500])
    args = ["model", "train", "--config", str(config), "--input", str(intake), "--label", "converted", "--json"]
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    specs = {f["name"]: f for f in json.loads(trained.stdout)["features"]}
    assert "select" not in specs["specialization"]["categories"] and "select" not in specs["city"]["categories"]
    new = tmp_path / "new.csv"
    with new.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, INTAKE, delimiter=";", extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{**rows[0], "specialization": "Select"}, {**rows[0], "specialization": ""}])
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", "--config", str(config), "--input", str(new), "--output", str(out)])
    assert result.exit_code == 0, result.output
    placeholder, blank = list(csv.DictReader(out.open(), delimiter=";"))
    assert placeholder["likelihood"] == blank["likelihood"]  # Select reads as the blank it stands for
