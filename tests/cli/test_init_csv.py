"""`leadsync init --from-csv` (issue 17): a starter config from an export's columns and values that passes
`check --input` on the same file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cli._export import ORIGINS, invoke, rows, write


@pytest.fixture(autouse=True)
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSYNC_CONFIG", raising=False)


def rules_by_name(config: Path) -> dict[str, dict[str, object]]:
    scoring = yaml.safe_load(config.read_text())["scoring"]
    return {rule["name"]: rule for part in ("fit", "engagement", "penalties") for rule in scoring.get(part) or []}


def test_init_from_csv_writes_tables_and_bands_that_pass_check(tmp_path: Path) -> None:
    data = rows(300)
    source, config = write(tmp_path / "export.csv", data, delimiter=";"), tmp_path / "starter.yaml"
    code, text = invoke("init", "--from-csv", str(source), "--path", str(config))
    assert code == 0, text
    written = yaml.safe_load(config.read_text())
    fields = written["csv"]["fields"]
    # the delimiter is detected on every read, not pinned: the same export saved with `,` works as it is
    assert "delimiter" not in written["csv"] and '# delimiter: ";"' in config.read_text()
    assert fields["lead_origin"] == {"property": "Lead Origin", "type": "str"}
    assert fields["total_time_spent_on_website"] == {"property": "Total Time Spent on Website", "type": "int"}
    assert fields["page_views_per_visit"]["type"] == "float"
    rules = rules_by_name(config)
    origin = rules["lead_origin"]
    assert origin["attribute"] == "lead_origin" and set(origin["points_by_value"]) == set(ORIGINS)  # type: ignore[arg-type]
    assert set(rules["lead_origin"]["points_by_value"].values()) == {0}  # type: ignore[union-attr]
    count = sum(r["Lead Origin"] == "API" for r in data)
    assert f'"API": 0   # {count} leads' in config.read_text()
    sources = rules["lead_source"]["points_by_value"]  # Google and google match as one value
    assert len(sources) == 5 and "google" in {k.lower() for k in sources}  # type: ignore[union-attr]
    # an id (a different value on every row) is neither mapped nor given a table, as `rules fit` leaves it out
    assert "prospect_id" not in rules and "prospect_id" not in fields
    assert '# prospect_id: {property: "Prospect ID", type: str}  # an id' in config.read_text()
    bands = rules["total_time_spent_on_website"]["points_by_range"]
    assert len(bands) == 4 and "from" not in bands[0] and "below" not in bands[-1]  # type: ignore[index, operator, arg-type]
    code, text = invoke("check", "--input", str(source), "--config", str(config))
    assert code == 0 and "ok:" in text, text
    comma = write(tmp_path / "export-comma.csv", data, delimiter=",")
    code, text = invoke("check", "--input", str(comma), "--config", str(config))
    assert code == 0 and "delimiter ','" in text, text
    code, text = invoke("score", "--input", str(source), "--config", str(config), "--output", "scored.csv")
    assert code == 0, text


def test_init_from_csv_with_a_label_gives_conversion_rates_and_leaves_the_label_out(tmp_path: Path) -> None:
    data = rows(300)
    source, config = write(tmp_path / "export.csv", data), tmp_path / "starter.yaml"
    code, text = invoke("init", "--from-csv", str(source), "--label", "Converted", "--path", str(config))
    assert code == 0, text
    api = [r for r in data if r["Lead Origin"] == "API"]
    rate = sum(r["Converted"] == "1" for r in api) / len(api)
    assert f'"API": 0   # {len(api)} leads, {rate:.1%} converted' in config.read_text()
    assert (
        "converted" not in rules_by_name(config)
        and "converted" not in yaml.safe_load(config.read_text())["csv"]["fields"]
    )
    assert invoke("check", "--input", str(source), "--config", str(config))[0] == 0
    code, text = invoke("init", "--from-csv", str(source), "--path", str(config))
    assert code == 2 and "already exists" in text
    assert invoke("init", "--from-csv", str(source), "--label", "Nope", "--path", "other.yaml")[0] == 2
    assert not Path("other.yaml").exists()


def test_init_from_csv_reads_a_frequent_placeholder_as_missing(tmp_path: Path) -> None:
    """A form's "nothing chosen" (``Select``) frequent in two columns goes to csv.null_values with where it was
    found, and no table lists it; a word shared by columns that is a real answer (``No``) does not."""
    data = rows(300)
    for i, row in enumerate(data):
        row["Specialization"] = "Select" if i % 4 == 0 else ("Finance" if i % 3 else "Marketing")
        row["City"] = "Select" if i % 5 == 0 else ("Mumbai" if i % 2 else "Pune")
        row["Search"] = "No" if i % 7 else "Yes"
        row["Magazine"] = "No" if i % 9 else "Yes"
    source, config = write(tmp_path / "export.csv", data), tmp_path / "starter.yaml"
    code, text = invoke("init", "--from-csv", str(source), "--path", str(config))
    assert code == 0, text
    written = yaml.safe_load(config.read_text())
    assert written["csv"]["null_values"] == ["Select"]
    note = next(line for line in config.read_text().splitlines() if '"Select": a placeholder' in line)
    assert "Specialization" in note and "City" in note and "Search" not in note
    rules = rules_by_name(config)
    assert set(rules["specialization"]["points_by_value"]) == {"Finance", "Marketing"}  # type: ignore[arg-type]
    assert set(rules["search"]["points_by_value"]) == {"No", "Yes"}  # type: ignore[arg-type]
    code, text = invoke("check", "--input", str(source), "--config", str(config))
    assert code == 0 and "0 warnings" in text, text


def test_init_from_csv_leaves_an_unnamed_trailing_column_out(tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    lines = ["Lead Origin,Converted,"] + [f"{'API' if i % 2 else 'Form'},{i % 2}," for i in range(40)]
    source.write_text("\n".join(lines) + "\n")
    config = tmp_path / "starter.yaml"
    code, text = invoke("init", "--from-csv", str(source), "--path", str(config))
    assert code == 0, text
    code, text = invoke("check", "--input", str(source), "--config", str(config))
    assert code == 0, text
