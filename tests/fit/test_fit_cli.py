"""``leadsync rules fit`` end to end: fit on 70% of a realistic export, score the other 30% with
``leadsync score --config fitted.yaml``, and the guards, locked rules, --against and determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.ensemble import HistGradientBoostingClassifier
from typer.testing import CliRunner

from leadsync.cli import app
from scoring.evaluation import auc_score
from tests.fit import leads_data

runner = CliRunner()
INTAKE_DROP = leads_data.POST_SALE


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fit")
    header, rows = leads_data.generate(9000, seed=21)
    train, test = leads_data.split(rows)
    intake_header, intake_train = leads_data.without(header, train, INTAKE_DROP)
    _, intake_test = leads_data.without(header, test, INTAKE_DROP)
    return {
        "all": leads_data.write(folder / "all.csv", header, train),
        "train": leads_data.write(folder / "train.csv", intake_header, intake_train),
        "test": leads_data.write(folder / "test.csv", intake_header, intake_test),
        "folder": folder,
    }


def fit(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["rules", "fit", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def fitted(export: dict[str, Path]) -> Path:
    out = export["folder"] / "fitted.yaml"
    code, output = fit("--input", str(export["train"]), "--label", "Converted", "--output", str(out))
    assert code == 0, output
    return out


def _rules(path: Path) -> list[dict]:  # type: ignore[type-arg]
    scoring = yaml.safe_load(path.read_text())["scoring"]
    return [r for part in ("fit", "engagement", "penalties") for r in scoring.get(part, [])]


def test_the_fitted_file_scores_the_holdout_like_gradient_boosting(export: dict[str, Path], fitted: Path) -> None:
    scored = export["folder"] / "scored.csv"
    result = runner.invoke(
        app, ["score", "--config", str(fitted), "--input", str(export["test"]), "--output", str(scored)]
    )
    assert result.exit_code == 0, result.output
    with scored.open() as handle:
        rows = list(csv.DictReader(handle))
    scores = np.array([int(r["score"]) for r in rows])
    y = np.array([r["Converted"] == "1" for r in rows])
    fitted_auc = auc_score(scores, y)
    # the baseline: a gradient-boosted model on the same columns, the same 70/30 split
    header, train = _read(export["train"])
    _, test = _read(export["test"])
    drop = (*leads_data.IDS, "Notes", "Created")
    both = leads_data.features(header, train + test, drop)
    kinds = [f.kind == "categorical" for f in both]
    matrix = np.column_stack(
        [f.numbers if f.kind == "numeric" else np.where(f.codes < 0, np.nan, f.codes) for f in both]
    ).astype(float)
    model = HistGradientBoostingClassifier(categorical_features=kinds, random_state=0, learning_rate=0.05)
    model.fit(matrix[: len(train)], leads_data.outcomes(header, train))
    boosted = auc_score(model.predict_proba(matrix[len(train) :])[:, 1], leads_data.outcomes(header, test))
    assert fitted_auc >= boosted - 0.02, (fitted_auc, boosted)
    assert fitted_auc >= 0.87
    rules = _rules(fitted)
    assert 5 <= len(rules) <= 30
    for rule in rules:
        points = list((rule.get("points_by_value") or {}).values())
        points += [band["points"] for band in rule.get("points_by_range") or []]
        points += [rule["missing"]] + ([rule["default"]] if "default" in rule else [])
        assert all(isinstance(p, int) and p >= 0 for p in points), rule["name"]
        assert min(points) == 0
    # the highest possible total is at most 100: no lead is clamped, so no ranking is lost at the top
    maxima = [
        max([*(r.get("points_by_value") or {}).values(), *(b["points"] for b in r.get("points_by_range") or [])])
        for r in rules
    ]
    assert 97 <= sum(maxima) <= 100


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open() as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


def test_the_file_says_where_its_points_come_from(export: dict[str, Path], fitted: Path) -> None:
    text = fitted.read_text()
    import hashlib

    assert hashlib.sha256(export["train"].read_bytes()).hexdigest() in text
    assert "6,300 rows read" in text and "cross-validated AUC" in text and "points to double the odds" in text
    assert "--max-rules 30" in text
    assert "Prospect ID: an id" in text and "Notes: free text" in text and "Created: a date" in text
    assert "leads, " in text and "% converted" in text
    data = yaml.safe_load(text)
    assert data["scoring"]["base"] == "none"
    assert 0 < data["scoring"]["qualification"]["threshold"] < 100
    assert data["csv"]["fields"]["lead_origin"] == {"property": "Lead Origin", "type": "str"}


def test_two_fits_are_byte_identical(export: dict[str, Path], fitted: Path) -> None:
    again = export["folder"] / "again.yaml"
    code, output = fit("--input", str(export["train"]), "--label", "Converted", "--output", str(again))
    assert code == 0, output
    assert again.read_bytes() == fitted.read_bytes()


def test_a_post_sale_column_is_refused_by_name_unless_allowed(export: dict[str, Path]) -> None:
    code, output = fit("--input", str(export["all"]), "--label", "Converted")
    assert code == 2
    assert "'Tags'" in output and "--allow-leaky Tags" in output and "Lead Quality" not in output.split("AUC above")[0]
    out = export["folder"] / "leaky.yaml"
    code, output = fit(
        "--input", str(export["all"]), "--label", "Converted", "--allow-leaky", "Tags", "--max-rules", "5",
        "--output", str(out), "--json",
    )  # fmt: skip
    assert code == 0, output
    data = json.loads(output)
    assert data["leaky"].keys() == {"Tags"} and data["rules"] <= 5
    assert any(r["attribute"] == "tags" for r in _rules(out))


@pytest.mark.parametrize(
    ("rows", "positives", "message"),
    [(99, 40, "99 labeled rows; a fit needs at least 100"), (300, 19, "only 19 converted rows"), (300, 0, "all 300")],
)
def test_too_little_data_is_refused(tmp_path: Path, rows: int, positives: int, message: str) -> None:
    header, data = leads_data.generate(rows, seed=2)
    j = header.index("Converted")
    for i, row in enumerate(data):
        row[j] = "1" if i < positives else "0"
    path = leads_data.write(tmp_path / "few.csv", header, data)
    code, output = fit("--input", str(path), "--label", "Converted")
    assert code == 2 and message in output, output


def test_a_label_the_mapping_reads_is_refused(export: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "leadsync.yaml"
    config.write_text("csv:\n  fields:\n    lead_status: Converted\n")
    code, output = fit("--input", str(export["train"]), "--label", "Converted", "--config", str(config))
    assert code == 2 and "'lead_status'" in output, output
    code, output = fit("--input", str(export["train"]), "--label", "Convertd")
    assert code == 2 and "did you mean 'Converted'" in output


def test_locked_rules_keep_their_points_and_against_compares(export: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        "csv:\n  fields:\n    do_not_email: {property: Do Not Email}\n"
        "scoring:\n  base: none\n  penalties:\n"
        "    - {name: no_email, when: {do_not_email: 'yes'}, points: -15, locked: true}\n"
        "    - {name: dropped, when: {do_not_email: 'no'}, points: -1}\n"
    )
    current = tmp_path / "current.yaml"
    current.write_text(
        "scoring:\n  base: none\n  fit:\n    - {name: add_form, when: {lead_origin: Lead Add Form}, points: 50}\n"
    )
    out = tmp_path / "fitted.yaml"
    code, output = fit(
        "--input", str(export["train"]), "--label", "Converted", "--config", str(config), "--max-rules", "8",
        "--against", str(current), "--output", str(out), "--json",
    )  # fmt: skip
    assert code == 0, output
    data = json.loads(output)
    rules = {r["name"]: r for r in _rules(out)}
    assert rules["no_email"]["points"] == -15 and rules["no_email"]["locked"] is True
    assert "dropped" not in rules and "do_not_email" not in rules  # fitted around the locked penalty
    assert data["locked_rules"] == 1
    against = data["against"]
    assert against["current"]["auc"]["value"] < against["fitted"]["auc"]["value"]
    assert against["fitted"]["auc"]["ci_low"] < against["fitted"]["auc"]["value"] < against["fitted"]["auc"]["ci_high"]
    assert 0 < against["grade_changes"] <= against["leads"] == 6300
    scored = runner.invoke(app, ["score", "--config", str(out), "--input", str(export["test"])])
    assert scored.exit_code == 0, scored.output


def test_the_engine_gives_every_training_lead_the_fitted_total(export: dict[str, Path]) -> None:
    from datetime import UTC, datetime

    from leadsync.fit_cmd import FitSettings, _leads, run_fit
    from leadsync.fit_yaml import check_rendered

    result = run_fit(export["train"], FitSettings(label="Converted", max_rules=12))
    engine = check_rendered(result.text)
    totals = [
        s.total
        for s in engine.iter_scores(
            ((lead, [], None) for lead in _leads(result.data, result.mapping)), datetime.now(UTC)
        )
    ]
    assert totals == result.scorecard.scores.tolist()


def test_rules_fit_reads_the_config_init_wrote(export: dict[str, Path], fitted: Path, tmp_path: Path) -> None:
    """One config loader: the csv section's file keys (delimiter, null_values) are read as check/score read
    them, and a ;-delimited copy fits to the same tables."""
    starter = tmp_path / "starter.yaml"
    result = runner.invoke(
        app, ["init", "--from-csv", str(export["train"]), "--label", "Converted", "--path", str(starter)]
    )
    assert result.exit_code == 0, result.output
    assert "null_values" in starter.read_text() and "delimiter" in starter.read_text()
    out = tmp_path / "fitted.yaml"
    code, output = fit(
        "--config", str(starter), "--input", str(export["train"]), "--label", "Converted", "-o", str(out)
    )
    assert code == 0, output
    assert runner.invoke(app, ["check", "--input", str(export["train"]), "--config", str(out)]).exit_code == 0
    header, rows = _read(export["train"])
    semi = tmp_path / "semi.csv"
    with semi.open("w", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows([header, *rows])
    config = tmp_path / "semi.yaml"
    config.write_text('csv:\n  delimiter: ";"\n  null_values: [Select]\n')
    out2 = tmp_path / "semi-fitted.yaml"
    code, output = fit("--config", str(config), "--input", str(semi), "--label", "Converted", "-o", str(out2))
    assert code == 0, output
    assert _rules(out2) == _rules(fitted)  # the placeholder given by the config, or found: the same tables


def test_a_placeholder_is_read_as_missing_unless_the_config_says_which_tokens_are(
    export: dict[str, Path], fitted: Path, tmp_path: Path
) -> None:
    data = yaml.safe_load(fitted.read_text())
    assert data["csv"]["null_values"] == ["Select"]
    assert "a form's placeholder" in fitted.read_text()
    for rule in _rules(fitted):
        assert "select" not in {str(k).lower() for k in rule.get("points_by_value") or {}}, rule["name"]
    config = tmp_path / "keep.yaml"
    config.write_text("csv:\n  null_values: []\n")
    out = tmp_path / "kept.yaml"
    code, output = fit("--config", str(config), "--input", str(export["train"]), "--label", "Converted", "-o", str(out))
    assert code == 0, output
    assert yaml.safe_load(out.read_text())["csv"]["null_values"] == []
    assert any("Select" in (r.get("points_by_value") or {}) for r in _rules(out))


@pytest.mark.parametrize(
    "args",
    [
        ["--exclude", "Lead Source", "Specialization"],
        ["--exclude", "Lead Source", "--exclude", "Specialization"],
        ["--exclude", "Lead Source, Specialization"],
    ],
)
def test_exclude_takes_several_columns(export: dict[str, Path], args: list[str]) -> None:
    code, output = fit("--input", str(export["train"]), "--label", "Converted", "--max-rules", "3", "--json", *args)
    assert code == 0, output
    data = json.loads(output)
    assert data["options"]["exclude"] == ["Lead Source", "Specialization"]
    assert data["excluded"]["Lead Source"] == data["excluded"]["Specialization"] == "--exclude"


def test_names_after_two_list_options_are_refused_with_the_fix(export: dict[str, Path]) -> None:
    code, output = fit(
        "--input", str(export["train"]), "--label", "Converted", "--exclude", "Lead Source", "--allow-leaky",
        "Tags", "Specialization",
    )  # fmt: skip
    assert code == 2 and "--exclude 'A,B'" in output, output


def test_a_column_filled_only_after_the_sale_is_refused(export: dict[str, Path], tmp_path: Path) -> None:
    """Blank on most rows (nobody worked the lead yet), nearly the outcome where filled: on all rows it ranks
    like a strong intake column, on its filled rows it decides, and the guard names it."""
    header, rows = _read(export["train"])
    j = header.index("Converted")
    rng = np.random.default_rng(3)
    for row in rows:
        won = row[j] == "1"
        if rng.random() < 0.55:
            row.append("")
        else:
            row.append("Closed won" if won != (rng.random() < 0.01) else "Not interested")
    path = leads_data.write(tmp_path / "tagged.csv", [*header, "Sales Note"], rows)
    code, output = fit("--input", str(path), "--label", "Converted")
    assert code == 2 and "'Sales Note'" in output and "where it is filled" in output, output


def test_from_history_needs_a_crm_config(tmp_path: Path) -> None:
    config = tmp_path / "leadsync.yaml"
    config.write_text("scoring:\n  base: none\n")
    code, output = fit("--from-history", "--config", str(config))
    assert code == 2 and "crm" in output, output
