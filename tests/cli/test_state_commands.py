"""`check` and `status` on the state store: check connects to it; status shows a killed run as abandoned."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.cli import app
from sync.lease import lease_name
from sync.state import StateStore

runner = CliRunner()


def write_config(tmp_path: Path, server: HubSpotSandboxServer, state_url: str) -> Path:
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        f"crm: hubspot\nhubspot: {{access_token: {server.token}, base_url: '{server.url}'}}\n"
        f"state: {{url: '{state_url}'}}\n"
    )
    return config


def test_check_fails_naming_an_unreachable_state_store(hubspot_sandbox: HubSpotSandboxServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, hubspot_sandbox, "postgresql+psycopg://leadsync:pw-s3cr3t@127.0.0.1:1/leads_prod")
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2, result.output
    unwrapped = "".join(result.output.split())  # rich wraps long lines
    assert "127.0.0.1:1" in unwrapped and "leads_prod" in unwrapped
    assert "pw-s3cr3t" not in result.output and "Traceback" not in result.output


def test_check_names_a_reachable_state_store(hubspot_sandbox: HubSpotSandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    result = runner.invoke(
        app, ["check", "--config", str(write_config(tmp_path, hubspot_sandbox, f"sqlite:///{path}"))]
    )
    assert result.exit_code == 0, result.output
    unwrapped = "".join(result.output.split())  # rich wraps long lines
    assert "".join(f"state store SQLite file {path} reachable".split()) in unwrapped


def test_status_shows_a_killed_run_as_abandoned_once_its_lease_expired(
    hubspot_sandbox: HubSpotSandboxServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = write_config(tmp_path, hubspot_sandbox, url)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with StateStore.open(url) as fresh:
        fresh.migrate()
    killed = StateStore(url, clock=lambda: an_hour_ago)  # a `sync --once` an hour ago, SIGKILLed mid-pass
    try:
        assert killed.acquire_lease(lease_name("hubspot:contacts"), "host-a:41", timedelta(seconds=60))
        killed.start_run("sync")
    finally:
        killed.close()
    result = runner.invoke(app, ["status", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)["runs"][0]
    assert run["status"] == "abandoned" and "killed or crashed" in run["error"]


def test_the_next_sync_once_records_a_killed_run_as_failed(
    hubspot_sandbox: HubSpotSandboxServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = write_config(tmp_path, hubspot_sandbox, url)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with StateStore.open(url) as fresh:
        fresh.migrate()
    killed = StateStore(url, clock=lambda: an_hour_ago)
    try:
        killed_run = killed.start_run("sync")
    finally:
        killed.close()
    result = runner.invoke(app, ["sync", "--once", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    with StateStore.open(url) as store:
        runs = {run.id: run for run in store.last_runs(5)}
    assert runs[killed_run].status == "failed" and "interrupted" in (runs[killed_run].error or "")
