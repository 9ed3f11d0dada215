"""``leadsync score`` on the columnar path gives what scoring row by row gives (issue 13): every cell, every
score column, every value read as missing with its line, every rejected record with its line, on hostile
files cut into small blocks so that clean blocks (pyarrow) and blocks read by the exact row reader alternate.
And CSV injection: cells a spreadsheet would run as formulas are neutralised, unless told not to."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadsync import csv_reader
from leadsync.cli import app
from leadsync.csv_dialect import CsvDialect
from leadsync.scorefile import csv_bytes, csv_records, neutralise, score_csv
from mappings import load_mapping
from scoring import compile_rules, default_rules

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HEADER = ["id", "email", "job_title", "employees", "annual_revenue", "opted_out", "page_views", "last_visit_at", "note"]
CELLS = {
    "email": ["a{i}@acme.com", "b{i}@gmail.com", " C{i}@Acme.COM ", "info@acme.com", "", "N/A", "not-an-email"],
    "job_title": ["VP Marketing", "CEO", "Student", "", "null", '"Director, Sales"', '"says ""hi"""', "=HYPERLINK(1)"],
    "employees": ["25-50", "1000+", "250", "", "lots", '"1,200"', " 42 ", "n/a"],
    "annual_revenue": ["1000000", "2.5e6", "-3", "abc", "", "1_000", " 7 ", "inf", "NULL"],
    "opted_out": ["true", "false", "yes", "maybe", "", "1", "0"],
    "page_views": ["0", "3", "12", "40", "x", "", "2.7", "-1"],
    "last_visit_at": [
        "2026-02-20T10:00:00Z",
        "2026-02-20 10:00",
        "2025-01-01",
        "2024-02-30",
        "2026-02-27T08:00:00+02:00",
        "1772000000000",
        "2026-02-28T10:00:00.123456",
        "",
        "yesterday",
    ],
    "note": ["plain", "+1 call me", "@mention", "-3", '"multi\nline"', "", "\tx"],
}


def _row(rng: random.Random, i: int, multiline: bool = True) -> str:
    cells = [str(i) if rng.random() < 0.8 else ""]
    for name in HEADER[1:]:
        choices = CELLS[name] if multiline else [c for c in CELLS[name] if "\n" not in c]
        cells.append(rng.choice(choices).replace("{i}", str(i)))
    return ",".join(cells)


def hostile_file(path: Path, seed: int, rows: int = 600, rate: float = 1.0) -> None:
    """Bad records at ``rate`` times the base rates (below 1: most blocks clean, read by pyarrow)."""
    rng = random.Random(seed)
    lines = [",".join(HEADER)]
    for i in range(rows):
        if rate < 1 and rng.random() > rate:
            lines.append(_row(rng, i, multiline=False))
            continue
        roll = rng.random()
        if roll < 0.01:
            lines.append("")  # a blank line
        elif roll < 0.02:
            lines.append(_row(rng, i) + ",extra")  # one cell too many
        elif roll < 0.03:
            lines.append(_row(rng, i).rsplit(",", 2)[0])  # cut short
        elif roll < 0.035:
            lines.append(_row(rng, i).replace(",", ',"', 1))  # a stray quote
        else:
            lines.append(_row(rng, i))
    path.write_text("\n".join(lines) + ("\n" if seed % 2 else ""), encoding="utf-8")


def reference(path: Path) -> tuple[list[list[str]], list[int], dict[str, list[int]]]:
    """Row by row: the exact reader, ``LeadMapping.to_lead`` and ``CompiledRules.score`` for each record."""
    rules, mapping, nulls = compile_rules(default_rules()), load_mapping("csv"), CsvDialect().nulls
    rows: list[list[str]] = []
    rejected: list[int] = []
    coerced: dict[str, list[int]] = {}
    with csv_records(path) as (header, records):
        for record in records:
            if record.broken is not None or len(record.cells) != len(header):
                rejected.append(record.line)
                continue
            row = dict(zip(header, record.cells, strict=True))
            values = {k: "" if v and v.strip() in nulls else v for k, v in row.items()}
            bad: list[str] = []
            lead = mapping.to_lead(
                row["id"] or f"line-{record.line}", values, lambda _i, c, _r, _p, bad=bad: bad.append(c)
            )
            for column in bad:
                coerced.setdefault(column, []).append(record.line)
            s = rules.score(lead, [], NOW)
            scored = [str(s.total), f"{s.points:g}", str(s.fit), str(s.engagement), str(s.penalties), s.grade]
            rows.append([*record.cells, *scored, "true" if s.qualified else "false", s.reasons])
    return rows, rejected, coerced


@pytest.mark.parametrize(("seed", "rate"), [(1, 1.0), (2, 1.0), (3, 0.05), (4, 0.05)])
def test_columnar_score_is_row_by_row_score(
    tmp_path: Path, seed: int, rate: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_reader, "BLOCK_BYTES", 2_000)  # many blocks: fast and exact ones alternate
    fast = csv_reader._fast_chunk
    taken: list[bool] = []
    monkeypatch.setattr(csv_reader, "_fast_chunk", lambda *a: taken.append(fast(*a) is not None) or fast(*a))
    source, output = tmp_path / "leads.csv", tmp_path / "scored.csv"
    hostile_file(source, seed, rate=rate)
    rules, mapping = compile_rules(default_rules()), load_mapping("csv")
    result = score_csv(source, rules, mapping, output, now=NOW, escape_formulas=False)
    rows, rejected, coerced = reference(source)
    with output.open(newline="", encoding="utf-8") as handle:
        written = list(csv.reader(handle))
    assert written[0][-8:] == ["score", "points", "fit", "engagement", "penalties", "grade", "qualified", "reasons"]
    assert written[1:] == rows
    assert [p.line for p in result.problems] == rejected
    assert result.rejected == len(rejected) and result.scored == len(rows)
    assert {c: e.count for c, e in result.coerced.items()} == {c: len(v) for c, v in coerced.items()}
    assert {c: e.lines for c, e in result.coerced.items()} == {c: v[:5] for c, v in coerced.items()}
    assert result.grades == {g: sum(r[-3] == g for r in rows) for g in ("hot", "warm", "cold")}
    assert coerced and (any(taken) if rate < 1 else rejected and not all(taken))  # both readers were used


def test_strict_rejects_the_rows_of_unreadable_values_in_line_order(tmp_path: Path) -> None:
    source, output = tmp_path / "leads.csv", tmp_path / "scored.csv"
    hostile_file(source, 5, rows=200)
    rules, mapping = compile_rules(default_rules()), load_mapping("csv")
    result = score_csv(source, rules, mapping, output, now=NOW, strict=True, rejects=tmp_path / "rejects.csv")
    _, rejected, coerced = reference(source)
    expected = sorted({*rejected, *(line for lines in coerced.values() for line in lines)})
    assert sorted({p.line for p in result.problems}) == expected
    assert result.rejected == len(expected) and not result.coerced
    with (tmp_path / "rejects.csv").open(newline="") as handle:
        assert [int(r["line"]) for r in csv.DictReader(handle)] == expected


def test_neutralise_follows_owasp_and_leaves_plain_numbers() -> None:
    for cell in ("=1+2", "+1 call me", "@SUM(A1)", "-2+3", "\tx", "\rx", '=HYPERLINK("http://x")', "-", "+"):
        assert neutralise(cell) == "'" + cell
    for cell in ("-3", "+1.5", "-1e3", "0", "plain", "", "a=b", " =x"):
        assert neutralise(cell) == cell


def test_csv_bytes_quotes_as_csv_writer_does() -> None:
    import pyarrow as pa

    cells = ["plain", "a,b", 'say "hi"', "two\nlines", "cr\r", "", "=1+2", "-3", "é"]
    columns = [pa.array(cells), pa.array(list(reversed(cells)))]
    for escape in (False, True):
        expected = io.StringIO()
        writer = csv.writer(expected)
        for row in zip(*(c.to_pylist() for c in columns), strict=True):
            writer.writerow([neutralise(x) for x in row] if escape else row)
        assert csv_bytes(columns, ",", escape=escape).decode() == expected.getvalue()


def test_score_neutralises_formulas_unless_told_not_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSYNC_CONFIG", raising=False)
    source = tmp_path / "leads.csv"
    source.write_text('email,job_title,note\na@gmail.com,=HYPERLINK("http://evil"),-3\nb@acme.com,VP Marketing,@cmd\n')
    runner = CliRunner()
    result = runner.invoke(app, ["score", "--input", str(source), "--output", str(tmp_path / "safe.csv")])
    assert result.exit_code == 0, result.output
    with (tmp_path / "safe.csv").open(newline="") as handle:
        safe = list(csv.DictReader(handle))
    assert safe[0]["job_title"] == '\'=HYPERLINK("http://evil")' and safe[0]["note"] == "-3"
    assert safe[1]["note"] == "'@cmd" and safe[0]["penalties"].startswith("-")  # numbers stay numbers
    assert safe[0]["reasons"].startswith("'-")  # "-10 free email": a spreadsheet would run it
    result = runner.invoke(
        app, ["score", "--input", str(source), "--output", str(tmp_path / "raw.csv"), "--no-escape-formulas"]
    )
    assert result.exit_code == 0, result.output
    with (tmp_path / "raw.csv").open(newline="") as handle:
        raw = list(csv.DictReader(handle))
    assert raw[0]["job_title"] == '=HYPERLINK("http://evil")' and raw[1]["note"] == "@cmd"


def test_rule_points_from_the_columns_are_those_of_the_score_hits() -> None:
    from leadsync.evaluate_cmd import RuleSetScores
    from scoring import Lead

    rules = compile_rules(default_rules())
    rng = random.Random(9)
    leads = [
        Lead(
            f"l{i}",
            email=rng.choice(["a@acme.com", "b@gmail.com", "info@acme.com", None]),
            job_title=rng.choice(["VP Marketing", "CEO", "Student", None]),
            employees=rng.choice([5, 250, 3000, None]),
            attributes={"page_views": rng.choice([0, 5, 80, None]), "email_opens": rng.choice([0, 3, 40])},
        )
        for i in range(300)
    ]
    scored = RuleSetScores("champion", rules)
    scored.add(leads[:150], NOW)
    scored.add(leads[150:], NOW)
    expected: dict[str, list[float]] = {}
    for k, lead in enumerate(leads):
        for hit in rules.score(lead, [], NOW).hits:
            column = expected.setdefault(hit.rule, [])
            column.extend([0.0] * (k - len(column)))
            column.append(hit.points)
    assert set(scored.points) == set(expected)
    for name, values in expected.items():
        assert scored.points[name] == [*values, *[0.0] * (len(leads) - len(values))], name
    assert scored.scores == [rules.score(lead, [], NOW).total for lead in leads]


def test_evaluate_input_reads_as_score_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ;-delimited export with null tokens and a malformed row: evaluate reads it as score does (issue 17)."""
    import json

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSYNC_CONFIG", raising=False)
    rng = random.Random(4)
    lines = ["email;job_title;employees;page_views;converted"]
    for i in range(400):
        hot = rng.random() < 0.5
        title = "VP Marketing" if hot else rng.choice(["Student", "N/A"])
        lines.append(
            f"u{i}@{'acme.com' if hot else 'gmail.com'};{title};{rng.choice(['250', 'N/A', 'n/a'])};"
            f"{rng.randint(0, 50)};{int(hot if rng.random() < 0.8 else not hot)}"
        )
    lines[10] += ";extra"  # line 11: one cell too many
    source = tmp_path / "labeled.csv"
    source.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["evaluate", "--input", str(source), "--label", "converted", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{") :])
    assert data["rows"] == 400 and data["rows_rejected"] == 1 and data["labeled"] == 399
    assert "line 11: 6 cells, the header has 5" in result.output
