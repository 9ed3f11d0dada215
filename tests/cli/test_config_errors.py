"""Issue 19, config and secrets, black-box through the CLI: one line and exit 2 for bad input and host
failures, no secret in any output, one loader and one strictness for every command."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from connectors.errors import ConnectorError
from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.cli import app, clean_errors
from leadsync.logs import register_secret
from sync.state import StateStoreError

runner = CliRunner()


def leads_csv(tmp_path: Path) -> Path:
    path = tmp_path / "leads.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "job_title", "page_views"])
        writer.writerow(["ana@acme-robotics.com", "VP Marketing", "30"])
    return path


def write(tmp_path: Path, text: str, name: str = "leadsync.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_token_with_a_trailing_newline_works_and_never_appears(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = hubspot_sandbox_factory(contacts=5, token="pat-na1-k8s-5d1e")
    config = write(
        tmp_path,
        f"crm: hubspot\nhubspot: {{access_token: ${{LS_CLI_TOKEN}}, base_url: '{server.url}', max_retries: 0}}\n"
        f"state: {{url: 'sqlite:///{tmp_path / 's.db'}'}}\n",
    )
    monkeypatch.setenv("LS_CLI_TOKEN", "pat-na1-k8s-5d1e\n")  # a Kubernetes secret file ends with a newline
    ok = runner.invoke(app, ["check", "--config", str(config)])
    assert ok.exit_code in (0, 1), ok.output  # reachable (1: only mapping problems)
    assert "reachable" in ok.output and "pat-na1-k8s-5d1e" not in ok.output
    monkeypatch.setenv("LS_CLI_TOKEN", "pat-na1-wrong-9c2b\n")
    wrong = runner.invoke(app, ["check", "--config", str(config)])
    assert wrong.exit_code == 3 and "pat-na1-wrong-9c2b" not in wrong.output and "Traceback" not in wrong.output


def test_interpolated_secret_in_a_rule_reaches_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-leak-e41f")
    config = write(
        tmp_path,
        "scoring:\n  fit:\n    - {name: d, label: 'debug ${HUBSPOT_ACCESS_TOKEN}', points: 5, when: {job_title: vp}}\n",
    )
    output = tmp_path / "scored.csv"
    result = runner.invoke(
        app, ["score", "--input", str(leads_csv(tmp_path)), "--output", str(output), "--config", str(config)]
    )
    assert (
        result.exit_code == 2 and "scoring.fit[0].label" in result.output and "${HUBSPOT_ACCESS_TOKEN}" in result.output
    )
    assert "pat-na1-leak-e41f" not in result.output and not output.exists()


def test_misspelled_top_level_key_fails_score_like_check(tmp_path: Path) -> None:
    config = write(tmp_path, "scroing:\n  grades: {hot: 95}\n")
    result = runner.invoke(app, ["score", "--input", str(leads_csv(tmp_path)), "--config", str(config)])
    assert result.exit_code == 2 and "scroing: unknown key (did you mean 'scoring'?" in result.output


def test_duplicate_key_fails_score_and_preview_naming_both_lines(tmp_path: Path) -> None:
    dup = write(tmp_path, "scoring:\n  grades: {hot: 95}\nscoring:\n  grades: {hot: 10}\n", "dup.yaml")
    result = runner.invoke(app, ["score", "--input", str(leads_csv(tmp_path)), "--config", str(dup)])
    assert (
        result.exit_code == 2
        and "line 3" in result.output
        and "duplicate key 'scoring' (also at line 1)" in result.output
    )
    config = write(tmp_path, "crm: hubspot\nhubspot: {access_token: x, base_url: 'http://127.0.0.1:9'}\n")
    bare = write(tmp_path, "grades: {hot: 95}\ngrades: {hot: 10}\n", "bare.yaml")
    for rules in (dup, bare):
        preview = runner.invoke(app, ["preview", "--rules", str(rules), "--config", str(config)])
        assert preview.exit_code == 2 and str(rules) in preview.output and "duplicate key" in preview.output


def test_ten_thousand_levels_of_nesting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write(tmp_path, "scoring:\n  fit: " + "[" * 10_000 + "]" * 10_000 + "\n")
    for args in (["score", "--input", str(leads_csv(tmp_path))], ["check"]):
        result = runner.invoke(app, [*args, "--config", str(config)])
        assert result.exit_code == 2, result.output
        assert "line 2" in result.output and "nested deeper than 100 levels" in result.output
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_adjacent_references_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_DIR", str(tmp_path))
    monkeypatch.setenv("LS_DB", "/state.db")
    config = write(tmp_path, "crm: hubspot\nhubspot: {access_token: x}\nstate: {url: 'sqlite:///${LS_DIR}${LS_DB}'}\n")
    result = runner.invoke(app, ["status", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "state.db").exists()


def test_os_and_state_store_failures_are_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder" / "scored.csv"
    result = runner.invoke(app, ["score", "--input", str(leads_csv(tmp_path)), "--output", str(missing)])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert str(missing.parent) in result.output and not isinstance(result.exception, OSError)
    config = write(tmp_path, "crm: hubspot\nhubspot: {access_token: x}\nstate: {url: 'mysql://u:pw@h/db'}\n")
    status = runner.invoke(app, ["status", "--config", str(config)])
    assert status.exit_code == 2 and "unsupported database 'mysql'" in status.output


def test_misspelled_counter_fails_score_with_a_hint(tmp_path: Path) -> None:
    config = write(tmp_path, "scoring:\n  engagement:\n    - {name: views, points: 1, counter: page_veiws}\n")
    result = runner.invoke(app, ["score", "--input", str(leads_csv(tmp_path)), "--config", str(config)])
    assert (
        result.exit_code == 2 and "counter: unknown counter 'page_veiws' (did you mean 'page_views'?)" in result.output
    )


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (ConnectorError("HubSpot call failed: Invalid header value b'Bearer tok-scrub-77a1\\n'"), 3),
        (StateStoreError("cannot reach postgresql://leadsync:tok-scrub-77a1@db/leadsync"), 2),
        (PermissionError(13, "Permission denied", "/srv/tok-scrub-77a1.csv"), 2),
        (RecursionError("maximum recursion depth exceeded"), 2),
    ],
)
def test_every_cli_message_is_one_scrubbed_line(
    capsys: pytest.CaptureFixture[str], raised: Exception, code: int
) -> None:
    register_secret("tok-scrub-77a1\n")
    with pytest.raises(typer.Exit) as info, clean_errors():
        raise raised
    message = capsys.readouterr().err
    assert info.value.exit_code == code and message.startswith("error: ") and message.count("\n") == 1
    assert "tok-scrub-77a1" not in message
    if isinstance(raised, OSError):
        assert "/srv/[redacted].csv: Permission denied" in message
