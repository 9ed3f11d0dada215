"""Rules authored against a real export (issue 17): `check --input`, what `score` requires, the dialect, null
tokens, bad values and rows, clashing columns, the output's mode. Black-box, through the CLI."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.cli._export import invoke, read, rows, write

CONFIG = """\
csv:
  null_values: [Select]
  fields:
    lead_origin: Lead Origin
    lead_source: Lead Source
    occupation: What is your current occupation
    visits_total: {property: TotalVisits, type: int}
    time_on_site_s: {property: Total Time Spent on Website, type: int}
scoring:
  base: none
  fit:
    - name: origin
      attribute: lead_origin
      points_by_value: {lead add form: 30, landing page submission: 5, api: 3}
      default: 0
    - name: occupation
      attribute: occupation
      points_by_value: {working professional: 20, unemployed: 2}
  engagement:
    - name: time_on_site
      attribute: time_on_site_s
      points_by_range:
        [{below: 100, points: 0}, {from: 100, below: 500, points: 5}, {from: 500, below: 1000, points: 15},
         {from: 1000, points: 25}]
    - {name: visits, points: 2, counter: visits_total, cap: 20}
  penalties:
    - name: no_occupation
      points: -4
      when: {occupation: {missing: true}}
"""


def expected_points(row: dict[str, str]) -> float:
    """What CONFIG's rules give a row, computed here from the rules' text, not by the engine."""
    origin = {"lead add form": 30, "landing page submission": 5, "api": 3}.get(row["Lead Origin"].strip().lower(), 0)
    occupation = row["What is your current occupation"].strip()
    missing = occupation in ("", "Select")
    job = 0 if missing else {"working professional": 20, "unemployed": 2}.get(occupation.lower(), 0)
    seconds = int(row["Total Time Spent on Website"])
    band = 0 if seconds < 100 else 5 if seconds < 500 else 15 if seconds < 1000 else 25
    visits = row["TotalVisits"].strip()
    counted = min(20, 2 * int(visits)) if visits.isdigit() else 0
    return origin + job + band + counted - (4 if missing else 0)


@pytest.fixture(autouse=True)
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSYNC_CONFIG", raising=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "leadsync.yaml"
    path.write_text(CONFIG)
    return path


def test_every_row_gets_exactly_the_points_its_rules_say(tmp_path: Path, config: Path) -> None:
    data = rows()
    data[0] |= {"Lead Origin": "Lead Import", "What is your current occupation": "Select"}
    data[0] |= {"Total Time Spent on Website": "20", "TotalVisits": "NA"}  # -4 points in all: score 0
    source, output = write(tmp_path / "export.csv", data), tmp_path / "scored.csv"
    code, text = invoke("score", "--input", str(source), "--output", str(output), "--config", str(config))
    assert code == 0, text
    scored = read(output)
    assert len(scored) == len(data)
    for row in scored:
        points = expected_points(row)
        assert float(row["points"]) == points, row
        assert int(row["score"]) == max(0, min(100, round(points))), row
    assert any(float(r["points"]) < 0 for r in scored)  # the raw total keeps what the 0..100 score clamps
    reasons = {r["Lead Origin"]: r["reasons"] for r in scored}
    assert "+30 Lead origin = Lead Add Form" in reasons["Lead Add Form"]  # the reasons name the matched value


def test_a_mistyped_attribute_is_named_with_the_right_one_and_score_refuses(tmp_path: Path, config: Path) -> None:
    config.write_text(CONFIG.replace("      attribute: lead_origin\n", "      attribute: lead_orgin\n"))
    source, output = write(tmp_path / "export.csv", rows()), tmp_path / "scored.csv"
    code, text = invoke("check", "--input", str(source), "--config", str(config))
    assert code == 1, text
    assert "rule 'origin'" in text and "unknown attribute 'lead_orgin'" in text and "did you mean 'lead_origin'" in text
    code, text = invoke("score", "--input", str(source), "--output", str(output), "--config", str(config))
    assert code == 2 and "lead_orgin" in text and "nothing scored" in text, text
    assert not output.exists()


def test_a_column_the_config_maps_must_be_in_the_header(tmp_path: Path, config: Path) -> None:
    config.write_text(CONFIG.replace("Lead Source\n", "Lead Sources\n"))
    source = write(tmp_path / "export.csv", rows(20))
    code, text = invoke("check", "--input", str(source), "--config", str(config))
    assert code == 1 and "csv.fields.lead_source: column 'Lead Sources' is not in the header" in text, text
    assert "'Lead Source'" in text  # the closest column


def test_a_value_never_seen_is_a_warning_with_the_closest_values(tmp_path: Path, config: Path) -> None:
    config.write_text(CONFIG.replace("{lead add form: 30,", "{lead add from: 30,"))
    source = write(tmp_path / "export.csv", rows())
    code, text = invoke("check", "--input", str(source), "--config", str(config))
    assert code == 0, text
    assert "value 'lead add from' of lead_origin never occurs in column 'Lead Origin'" in text
    assert "closest: 'Lead Add Form'" in text


def test_check_lists_rules_that_cannot_fire_and_decay_without_dates_once(tmp_path: Path) -> None:
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        "csv: {fields: {visits_total: {property: TotalVisits, type: int}}}\n"
        "scoring:\n  decay: {half_life_days: 30}\n"
        "  engagement: [{name: visits, points: 2, counter: visits_total}]\n"
    )
    source = write(tmp_path / "export.csv", rows(30))
    code, text = invoke("check", "--input", str(source), "--config", str(config))
    assert code == 0, text
    assert "cannot fire on this file" in text and "free_email" in text  # the default penalties need `email`
    assert text.count("have no date to age from") == 1 and "visits" in text


def test_no_column_is_mandatory(tmp_path: Path) -> None:
    source, output = write(tmp_path / "export.csv", rows(30)), tmp_path / "scored.csv"  # no `email` column
    code, text = invoke("score", "--input", str(source), "--output", str(output))
    assert code == 0, text
    assert len(read(output)) == 30


def test_the_same_file_semicolon_delimited_scores_the_same(tmp_path: Path, config: Path) -> None:
    data = rows()
    comma, semi = write(tmp_path / "comma.csv", data), write(tmp_path / "semi.csv", data, delimiter=";")
    for source in (comma, semi):
        code, text = invoke("score", "--input", str(source), "--output", str(source) + ".out", "--config", str(config))
        assert code == 0, text
    first, second = read(Path(f"{comma}.out")), read(Path(f"{semi}.out"), delimiter=";")
    assert [r["score"] for r in first] == [r["score"] for r in second]
    assert [r["Prospect ID"] for r in second] == [r["Prospect ID"] for r in data]


def test_tab_and_pipe_are_detected_and_a_forced_wrong_delimiter_names_the_right_one(tmp_path: Path) -> None:
    data = rows(20)
    for delimiter in ("\t", "|"):
        source = write(tmp_path / "export.txt", data, delimiter=delimiter)
        code, text = invoke("check", "--input", str(source))
        assert code == 0 and "11 columns" in text, text
    source = write(tmp_path / "semi.csv", data, delimiter=";")
    code, text = invoke("score", "--input", str(source), "--delimiter", ",")
    assert code == 2 and "looks delimited by ';'" in text and "--delimiter ';'" in text, text
    assert invoke("score", "--input", str(source), "--delimiter", "x")[0] == 2


def test_encodings_a_bom_and_a_clear_message_for_latin_text(tmp_path: Path) -> None:
    data = rows(10)
    data[4]["City"] = "Zürich"
    source = write(tmp_path / "latin.csv", data, encoding="cp1252")
    code, text = invoke("score", "--input", str(source), "--output", str(tmp_path / "out.csv"))
    assert code == 2 and "line 6: not valid utf-8 text" in text and "--encoding cp1252" in text, text
    assert not (tmp_path / "out.csv").exists()
    code, text = invoke("score", "--input", str(source), "--output", str(tmp_path / "out.csv"), "--encoding", "cp1252")
    assert code == 0, text
    assert read(tmp_path / "out.csv")[4]["City"] == "Zürich"
    bom = write(tmp_path / "bom.csv", data, encoding="utf-8-sig")
    code, text = invoke("score", "--input", str(bom), "--output", str(tmp_path / "bom-out.csv"))
    assert code == 0 and next(iter(read(tmp_path / "bom-out.csv")[0])) == "Prospect ID", text
    assert invoke("score", "--input", str(bom), "--encoding", "klingon")[0] == 2


def test_null_tokens_are_missing_everywhere(tmp_path: Path, config: Path) -> None:
    data = rows(3)
    for row, token in zip(data, ("Select", "NA", "n/a"), strict=True):
        row["What is your current occupation"] = token
    source, output = write(tmp_path / "export.csv", data), tmp_path / "scored.csv"
    code, text = invoke("score", "--input", str(source), "--output", str(output), "--config", str(config))
    assert code == 0, text
    scored = read(output)
    assert all("no occupation" in r["reasons"] for r in scored), [r["reasons"] for r in scored]
    assert [r["What is your current occupation"] for r in scored] == ["Select", "NA", "n/a"]  # kept as given
    config.write_text(CONFIG.replace("null_values: [Select]", "null_values: []\n  default_null_values: false"))
    code, text = invoke("score", "--input", str(source), "--output", str(output), "--config", str(config))
    assert code == 0, text
    assert not any("no occupation" in r["reasons"] for r in read(output))


def test_a_text_value_in_a_number_column_drops_no_row(tmp_path: Path, config: Path) -> None:
    data = rows(50)
    data[3]["TotalVisits"] = "lots"
    data[7]["TotalVisits"] = "3.5e"
    source, output = write(tmp_path / "export.csv", data), tmp_path / "scored.csv"
    code, text = invoke("score", "--input", str(source), "--output", str(output), "--config", str(config))
    assert code == 0, text
    assert "scored 50 of 50 rows read, 0 rejected" in text
    assert "column 'TotalVisits': 2 not a whole number for visits_total (lines 5, 9;" in text
    scored = read(output)
    assert "visits" not in scored[3]["reasons"] and float(scored[3]["points"]) == expected_points(scored[3])
    code, text = invoke("score", "--input", str(source), "--output", str(output), "--config", str(config), "--strict")
    assert code == 1 and "line 5: column 'TotalVisits'" in text and len(read(output)) == 48, text


def test_a_row_with_an_extra_field_is_rejected_and_the_rest_scored(tmp_path: Path) -> None:
    source, output, rejects = tmp_path / "export.csv", tmp_path / "scored.csv", tmp_path / "rejects.csv"
    write(source, rows(40))
    lines = source.read_text().splitlines(keepends=True)
    lines[10] = lines[10].rstrip("\n") + ",surplus\n"  # file line 11
    lines[20] = lines[20].replace(",", ',"', 1)  # file line 21: a quote that never closes
    source.write_text("".join(lines))
    code, text = invoke("score", "--input", str(source), "--output", str(output), "--rejects", str(rejects))
    assert code == 1, text
    assert "line 11: 12 cells, the header has 11" in text and "line 21: broken record" in text
    assert "scored 38 of 40 rows read, 2 rejected" in text
    assert len(read(output)) == 38
    rejected = read(rejects)
    assert [r["line"] for r in rejected] == ["11", "21"]
    assert rejected[0]["record"] == lines[10].rstrip("\n") and "12 cells" in rejected[0]["reason"]


def test_an_input_column_named_like_an_output_column_is_never_overwritten_in_silence(tmp_path: Path) -> None:
    data = [row | {"score": "A+", "grade": "gold"} for row in rows(10)]
    source, output = write(tmp_path / "export.csv", data), tmp_path / "scored.csv"
    code, text = invoke("score", "--input", str(source), "--output", str(output))
    assert code == 2 and "'score', 'grade'" in text and "--output-prefix" in text, text
    assert not output.exists()
    code, text = invoke("score", "--input", str(source), "--output", str(output), "--output-prefix", "leadsync_")
    assert code == 0, text
    scored = read(output)
    assert scored[0]["score"] == "A+" and scored[0]["grade"] == "gold" and scored[0]["leadsync_score"].isdigit()
    code, text = invoke("score", "--input", str(source), "--output", str(output), "--replace-columns")
    assert code == 0, text
    assert read(output)[0]["score"].isdigit() and list(read(output)[0]).count("score") == 1


def test_the_output_and_rejects_follow_the_umask(tmp_path: Path) -> None:
    source = write(tmp_path / "export.csv", rows(10))
    previous = os.umask(0o022)
    try:
        code, text = invoke(
            "score", "--input", str(source), "--output", "scored.csv", "--rejects", str(tmp_path / "rejects.csv")
        )
    finally:
        os.umask(previous)
    assert code == 0, text
    assert stat.S_IMODE((tmp_path / "scored.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "rejects.csv").stat().st_mode) == 0o644


def test_a_table_on_an_absent_column_cannot_fire_unless_it_gives_missing_points(tmp_path: Path) -> None:
    config = tmp_path / "leadsync.yaml"
    rule = "{name: industry_table, attribute: industry, points_by_value: {software: 10}"
    source = write(tmp_path / "export.csv", rows(30))  # no `industry` column
    for extra, listed in (("}", True), (", missing: 3}", False)):
        config.write_text(f"scoring:\n  base: none\n  fit: [{rule}{extra}]\n")
        code, text = invoke("check", "--input", str(source), "--config", str(config))
        assert code == 0, text
        assert ("industry_table: no column 'industry'" in text) is listed, text
