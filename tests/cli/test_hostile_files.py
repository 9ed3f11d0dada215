"""Issue 14 item 3: hostile CSV input is reported per line, the rest is scored (black-box, through the CLI).

A NUL byte, a line over ``csv.max_line_chars`` (skipped unread: a 100 MB line costs no memory) and a line in
another encoding among good ones each reject their own line, with the line number and why; a BOM is simply
accepted. The hostile YAML side (alias bombs, deep nesting, oversized files) is in ``tests/test_config.py``
and ``test_config_errors.py``; its CLI message is checked here for each command that loads a file.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadsync.cli import app
from leadsync.config import CSV_MAX_LINE_CHARS, MAX_BYTES, MAX_NODES
from leadsync.csv_dialect import CsvDialect
from leadsync.csv_reader import csv_chunks
from tests.test_config import alias_bomb

runner = CliRunner()
HEADER = b"email,jobtitle,company\n"


def _good(i: int) -> bytes:
    return f"person{i}@acme{i}.com,VP Sales,Acme {i}\n".encode()


@pytest.fixture(autouse=True)
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSYNC_CONFIG", raising=False)


def _score(tmp_path: Path, data: bytes, *extra: str) -> tuple[int, str, list[dict[str, str]], list[dict[str, str]]]:
    """(exit code, output, scored rows, rejected rows) of `leadsync score` on ``data``."""
    source, output, rejects = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "rejects.csv"
    source.write_bytes(data)
    result = runner.invoke(
        app, ["score", "--input", str(source), "--output", str(output), "--rejects", str(rejects), *extra]
    )
    scored = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8")))) if output.exists() else []
    rejected = list(csv.DictReader(io.StringIO(rejects.read_text(encoding="utf-8")))) if rejects.exists() else []
    return result.exit_code, result.output, scored, rejected


def _config(tmp_path: Path, max_line_chars: int) -> str:
    path = tmp_path / "leadsync.yaml"
    path.write_text(f"csv:\n  max_line_chars: {max_line_chars}\n")
    return str(path)


def test_a_nul_byte_rejects_its_line_and_the_rest_is_scored(tmp_path: Path) -> None:
    data = HEADER + _good(1) + b"x@acme.com,VP\x00 Sales,Acme\n" + _good(3)
    code, text, scored, rejected = _score(tmp_path, data)
    assert code == 1, text
    assert [r["email"] for r in scored] == ["person1@acme1.com", "person3@acme3.com"]
    [reject] = rejected
    assert reject["line"] == "3" and "a NUL byte at column 14" in reject["reason"]
    assert "line 3" in text and "Traceback" not in text


def test_a_nul_byte_in_the_header_fails_the_file_in_one_line(tmp_path: Path) -> None:
    code, text, scored, _ = _score(tmp_path, b"em\x00ail,jobtitle\n" + _good(1))
    assert code == 2 and "line 1: the header row is broken: a NUL byte at column 3" in text
    assert len(text.strip().splitlines()) == 1 and not scored


def test_a_line_over_the_configured_limit_is_skipped_unread_and_reported(tmp_path: Path) -> None:
    long_line = b"y@acme.com," + b"x" * 10_000 + b",Acme\n"
    data = HEADER + _good(1) + long_line + _good(3) + long_line.replace(b"\n", b"\r\n") + _good(5)
    code, text, scored, rejected = _score(tmp_path, data, "--config", _config(tmp_path, 4096))
    assert code == 1, text
    assert [r["email"] for r in scored] == ["person1@acme1.com", "person3@acme3.com", "person5@acme5.com"]
    assert [r["line"] for r in rejected] == ["3", "5"]
    assert all("over the 4,096 a line may have (csv.max_line_chars)" in r["reason"] for r in rejected)
    assert all(len(r["record"]) < 100 for r in rejected)  # the line itself is never held, nor copied


def test_the_default_line_limit_rejects_a_line_one_character_over_it_and_scores_one_at_it(tmp_path: Path) -> None:
    prefix, suffix = b"y@acme.com,", b",Acme"
    at_limit = prefix + b"v" * (CSV_MAX_LINE_CHARS - len(prefix) - len(suffix)) + suffix  # a 1 MiB title
    data = HEADER + at_limit + b"\n" + at_limit + b"w\n" + _good(3)
    code, text, scored, rejected = _score(tmp_path, data)
    assert code == 1, text
    assert [r["email"] for r in scored] == ["y@acme.com", "person3@acme3.com"]  # over csv's own 128 KiB field
    [reject] = rejected
    assert reject["line"] == "3" and f"{CSV_MAX_LINE_CHARS + 2:,} characters long" in reject["reason"]


def test_the_columnar_reader_routes_an_overlong_line_past_its_blocks(tmp_path: Path) -> None:
    # blocks of 4 KiB: the good rows are read by pyarrow, the long line never grows a block past the limit
    source = tmp_path / "in.csv"
    body = b"".join(_good(i) for i in range(200))
    source.write_bytes(HEADER + body + b"z@acme.com," + b"x" * 50_000 + b",Acme\n" + body)
    dialect = CsvDialect(max_line_chars=2048)
    with csv_chunks(source, dialect, 20, block_bytes=4096) as (header, chunks):
        read = list(chunks)
    assert header == ["email", "jobtitle", "company"]
    assert sum(c.n for c in read) == 400
    [(record, [problem])] = [r for c in read for r in c.rejects]
    assert record.line == 202 and "50,017 characters long" in problem.problem  # its line end included
    assert any(not c.rejects and c._raw is None for c in read)  # clean blocks still took the fast path


def test_a_line_in_another_encoding_among_utf8_lines_is_rejected_alone(tmp_path: Path) -> None:
    data = (
        HEADER
        + "a@acme.com,Geschäftsführer,Müller AG\n".encode()
        + "b@acme.com,Geschäftsführer,Ömer\n".encode("cp1252")
    )
    data += "c@acme.com,Directeur général,Société\n".encode()
    code, text, scored, rejected = _score(tmp_path, data)
    assert code == 1, text
    assert [r["jobtitle"] for r in scored] == ["Geschäftsführer", "Directeur général"]
    [reject] = rejected
    assert reject["line"] == "3" and "not valid utf-8 text (byte 0xe4 at column 17)" in reject["reason"]
    assert "\ufffd" in reject["record"]  # where the undecodable bytes were


def test_a_file_in_another_encoding_from_its_first_non_ascii_line_still_fails_whole(tmp_path: Path) -> None:
    data = HEADER + _good(1) + "b@acme.com,Geschäftsführer,Ömer\n".encode("cp1252")
    code, text, _, _ = _score(tmp_path, data)
    assert code == 2 and "line 3: not valid utf-8 text; pass --encoding cp1252" in text


def test_a_bom_is_accepted(tmp_path: Path) -> None:
    code, text, scored, rejected = _score(tmp_path, codecs.BOM_UTF8 + HEADER + _good(1) + _good(2))
    assert code == 0, text
    assert [r["email"] for r in scored] == ["person1@acme1.com", "person2@acme2.com"] and not rejected
    assert next(iter(scored[0])) == "email"  # not "\ufeffemail"


def test_check_input_checks_the_sound_rows_around_hostile_lines(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(HEADER + _good(1) + b"x@acme.com,VP\x00,Acme\n" + b"y@acme.com," + b"x" * 5000 + b",A\n")
    result = runner.invoke(app, ["check", "--input", str(source), "--config", _config(tmp_path, 2048)])
    # the sound row is checked; the hostile ones are left to `score`, which rejects them line by line
    assert result.exit_code == 0, result.output
    assert "all 1 rows checked" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (alias_bomb(9), f"expands to more than {MAX_NODES:,} values"),
        ("crm: hubspot\nscoring:\n  x: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than"),
        ("crm: hubspot\nx: '" + "a" * (3 * MAX_BYTES) + "'\n", "a config or rules file may be at most 1024 KB"),
    ],
    ids=["alias-bomb", "deep-nesting", "3-MB-file"],
)
@pytest.mark.parametrize("command", ["score", "preview"])
def test_a_hostile_yaml_file_is_one_line_and_exit_2(tmp_path: Path, content: str, message: str, command: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(content)
    source = tmp_path / "in.csv"
    source.write_bytes(HEADER + _good(1))
    config = tmp_path / "leadsync.yaml"
    config.write_text(f"crm: hubspot\nhubspot: {{access_token: x}}\nstate: {{url: 'sqlite:///{tmp_path / 's.db'}'}}\n")
    args = (
        ["score", "--input", str(source), "--config", str(path)]
        if command == "score"
        else ["preview", "--rules", str(path), "--config", str(config)]
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and str(path) in "".join(result.output.split())
    assert "Traceback" not in result.output
