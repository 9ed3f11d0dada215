"""`leadsync score` on hostile files and output targets: stray quotes, repeated headers, symlinks, FIFOs,
devices, missing folders, a full disk and SIGTERM (issue 19)."""

from __future__ import annotations

import csv
import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadsync.cli import app

runner = CliRunner()
HEADER = "email,job_title,employees,page_views,visits,last_visit_at\n"


@pytest.fixture(autouse=True)
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default rules and mapping: no ./leadsync.yaml, no $LEADSYNC_CONFIG."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSYNC_CONFIG", raising=False)


def leads(count: int) -> list[str]:
    return [f"u{i}@acme-robotics.com,VP Marketing,250,30,6,\n" for i in range(count)]


def score(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["score", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def emails(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return [row["email"] for row in csv.DictReader(handle)]


def test_a_stray_quote_costs_its_own_row_only(tmp_path: Path) -> None:
    lines = leads(1000)
    lines[9] = lines[9].replace(",VP", ',"VP')  # file line 11: a quote that never closes
    source, output = tmp_path / "leads.csv", tmp_path / "scored.csv"
    source.write_text(HEADER + "".join(lines))
    code, text = score("--input", str(source), "--output", str(output))
    assert code == 1, text
    assert "line 11: broken record" in text and "reading on at line 12" in text
    assert "scored 999 of 1000 rows" in text
    assert emails(output) == [f"u{i}@acme-robotics.com" for i in range(1000) if i != 9]


def test_an_unterminated_quote_at_the_end_does_not_fold_the_next_lead_in(tmp_path: Path) -> None:
    source, output = tmp_path / "leads.csv", tmp_path / "scored.csv"
    source.write_text('email,job_title,employees\na@x.com,"Engineer,10\nb@y.com,CEO,500\n')
    code, text = score("--input", str(source), "--output", str(output))
    assert code == 1 and "line 2: broken record: a quoted field opened here runs past the end of the file" in text
    with output.open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["email"] == "b@y.com" and row["job_title"] == "CEO"


def test_a_stray_quote_closed_by_a_later_quote_is_a_broken_record(tmp_path: Path) -> None:
    source, output = tmp_path / "leads.csv", tmp_path / "scored.csv"
    source.write_text(
        "email,job_title,employees,company\n"
        'a@x.com,"Engineer,10,Acme\n'  # stray quote
        "b@x.com,Engineer,20,Acme\n"
        'c@x.com,CEO,30,"Acme, Inc"\n'  # the stray quote closes here, two lines on
        "d@x.com,Engineer,40,Acme\n"
    )
    code, text = score("--input", str(source), "--output", str(output))
    assert code == 1 and "line 2: broken record: a record spanning lines 2-4" in text
    assert emails(output) == ["b@x.com", "c@x.com", "d@x.com"]


def test_max_record_lines_bounds_a_legitimate_multi_line_field(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text('email,job_title,note\na@x.com,CEO,"one\ntwo\nthree"\nb@x.com,CEO,short\n')
    ok, text = score("--input", str(source), "--output", str(tmp_path / "ok.csv"))
    assert ok == 0, text
    assert emails(tmp_path / "ok.csv") == ["a@x.com", "b@x.com"]
    code, text = score("--input", str(source), "--output", str(tmp_path / "cut.csv"), "--max-record-lines", "2")
    assert code == 1 and "line 2: broken record: a quoted field opened here is still open after 2 lines" in text
    assert "b@x.com" in emails(tmp_path / "cut.csv")
    assert score("--input", str(source), "--max-record-lines", "0")[0] == 2


def test_a_repeated_header_name_is_refused_not_overwritten(tmp_path: Path) -> None:
    source, output = tmp_path / "leads.csv", tmp_path / "scored.csv"
    source.write_text("email,job_title,email\na@x.com,CEO,b@y.com\n")
    code, text = score("--input", str(source), "--output", str(output))
    assert code == 2 and "column 'email' appears twice in the header (columns 1 and 3)" in text
    assert not output.exists() and not list(tmp_path.glob(".scored.csv.*"))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "leads.csv"
    path.write_text(HEADER + "".join(leads(50)))
    return path


def test_a_symlinked_output_stays_a_symlink_with_the_csv_at_its_target(tmp_path: Path, source: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "scored.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "links" / "scored.csv"
    link.symlink_to("../real/scored.csv")
    code, text = score("--input", str(source), "--output", str(link))
    assert code == 0, text
    assert link.is_symlink() and os.readlink(link) == "../real/scored.csv"
    assert len(emails(target)) == 50
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # a replaced file keeps its mode
    assert os.listdir(tmp_path / "links") == ["scored.csv"] and os.listdir(tmp_path / "real") == ["scored.csv"]


def test_a_new_output_file_gets_the_umask_mode_not_0600(tmp_path: Path, source: Path) -> None:
    previous = os.umask(0o022)
    try:
        code, text = score("--input", str(source), "--output", str(tmp_path / "scored.csv"))
    finally:
        os.umask(previous)
    assert code == 0, text
    assert stat.S_IMODE((tmp_path / "scored.csv").stat().st_mode) == 0o644


def test_a_fifo_receives_the_csv_as_a_stream(tmp_path: Path, source: Path) -> None:
    fifo = tmp_path / "scored.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    code, text = score("--input", str(source), "--output", str(fifo))
    reader.join(timeout=30)
    assert code == 0, text
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    rows = list(csv.DictReader(io.StringIO(received[0])))
    assert len(rows) == 50 and rows[0]["grade"]
    assert sorted(os.listdir(tmp_path)) == ["leads.csv", "scored.fifo"]


def test_a_device_is_written_as_a_stream_never_replaced(tmp_path: Path, source: Path) -> None:
    null = tmp_path / "null.csv"
    null.symlink_to("/dev/null")
    code, text = score("--input", str(source), "--output", str(null))
    assert code == 0, text
    assert null.is_symlink() and stat.S_ISCHR(Path("/dev/null").stat().st_mode)
    full = tmp_path / "full.csv"
    full.symlink_to("/dev/full")
    code, text = score("--input", str(source), "--output", str(full))
    assert code == 2 and "full.csv: cannot write the scored CSV: No space left on device" in text
    assert full.is_symlink() and stat.S_ISCHR(Path("/dev/full").stat().st_mode)
    assert sorted(os.listdir(tmp_path)) == ["full.csv", "leads.csv", "null.csv"]


def test_dash_is_stdout_and_a_directory_is_refused(tmp_path: Path, source: Path) -> None:
    result = runner.invoke(app, ["score", "--input", str(source), "--output", "-"])
    assert result.exit_code == 0, result.output
    assert "u49@acme-robotics.com" in result.stdout and not (tmp_path / "-").exists()
    (tmp_path / "out").mkdir()
    code, text = score("--input", str(source), "--output", str(tmp_path / "out"))
    assert code == 2 and "it is a directory" in text
    assert os.listdir(tmp_path / "out") == []


def test_an_output_folder_that_is_missing_or_a_file_is_one_line_and_exit_2(tmp_path: Path, source: Path) -> None:
    code, text = score("--input", str(source), "--output", str(tmp_path / "missing" / "scored.csv"))
    assert code == 2 and f"{tmp_path / 'missing'} does not exist" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1
    code, text = score("--input", str(source), "--output", str(source / "scored.csv"))
    assert code == 2 and "cannot write the scored CSV: Not a directory" in text


@pytest.fixture
def big_source(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "".join(leads(100_000)))
    yield path


def test_sigterm_removes_the_temporary_output_file(tmp_path: Path, big_source: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LEADSYNC_CONFIG"}
    process = subprocess.Popen(
        [sys.executable, "-m", "leadsync", "score", "--input", str(big_source), "--output", str(folder / "s.csv")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not os.listdir(folder) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process.poll() is None, "score finished before it could be stopped; use a larger input"
        assert os.listdir(folder), "no temporary file appeared"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in stderr
    assert "Traceback" not in stderr
    assert os.listdir(folder) == []


def test_dev_stdout_is_a_stream_whatever_stdout_is(tmp_path: Path, source: Path) -> None:
    # through a link of our own: code that replaces its output path then replaces this link, never /dev/stdout
    stdout = tmp_path / "stdout.csv"
    stdout.symlink_to("/dev/stdout")
    command = [sys.executable, "-m", "leadsync", "score", "--input", str(source), "--output", str(stdout)]
    env = {k: v for k, v in os.environ.items() if k != "LEADSYNC_CONFIG"}
    piped = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert len(list(csv.DictReader(io.StringIO(piped.stdout)))) == 50
    appended = tmp_path / "all.csv"
    appended.write_text("kept\n")
    with appended.open("a") as handle:  # a shell's `>> all.csv`: the file must be appended to, not replaced
        done = subprocess.run(command, cwd=tmp_path, env=env, stdout=handle, stderr=subprocess.PIPE, timeout=120)
    assert done.returncode == 0, done.stderr
    text = appended.read_text()
    assert text.startswith("kept\nemail,") and "u49@acme-robotics.com" in text
    assert stdout.is_symlink() and os.readlink(stdout) == "/dev/stdout"
