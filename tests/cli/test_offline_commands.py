"""explain, preview and score: answers from the cache or a CSV, without calling the CRM."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.app import build_app
from leadsync.cli import app
from leadsync.config import load_config

runner = CliRunner()


@pytest.fixture
def synced(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path
) -> tuple[Path, HubSpotSandboxServer]:
    server = hubspot_sandbox_factory(contacts=300, seed=13, now=None)
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        f"crm: hubspot\nhubspot: {{access_token: {server.token}, base_url: '{server.url}', rate_limit_per_10s: 5000}}\n"
        f"state: {{url: 'sqlite:///{tmp_path / 'state.db'}'}}\nsync: {{settle_s: 0}}\n"
    )
    application = build_app(load_config(config))
    store = application.store()
    try:
        application.pipeline(store).run_once()
    finally:
        store.close()
    return config, server


def test_explain_by_email_matches_what_was_written(synced: tuple[Path, HubSpotSandboxServer]) -> None:
    config, server = synced
    contact_id = server.portal.contact_ids()[7]
    row = server.portal.contact(contact_id) or {}
    before = server.stats()["requests"]
    result = runner.invoke(app, ["explain", row["email"].upper(), "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert server.stats()["requests"] == before  # no CRM call
    assert data["id"] == contact_id and str(data["score"]) == row["leadsync_score"]
    assert data["reasons"] == row["leadsync_reasons"]
    points = sum(h["points"] for h in data["hits"])
    assert max(0, min(100, round(points))) == data["score"]
    assert data["points"] == pytest.approx(points)  # the raw total, unclamped
    assert all(h["label"] for h in data["hits"])
    text = runner.invoke(app, ["explain", contact_id, "--config", str(config)])
    assert text.exit_code == 0 and "rule hits" in text.stdout
    assert f"= {data['points']:g} points" in text.stdout


def test_explain_unknown_lead_is_a_clear_error(synced: tuple[Path, HubSpotSandboxServer]) -> None:
    config, _ = synced
    result = runner.invoke(app, ["explain", "nobody@nowhere.example", "--config", str(config)])
    assert result.exit_code == 1 and "no lead 'nobody@nowhere.example'" in result.output


def test_preview_counts_mql_crossings_before_anything_is_written(
    synced: tuple[Path, HubSpotSandboxServer], tmp_path: Path
) -> None:
    config, server = synced
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text("scoring:\n  qualification: {threshold: 80, release: 75}\n  grades: {hot: 85, warm: 50}\n")
    before = server.stats()["requests"]
    result = runner.invoke(app, ["preview", "--rules", str(stricter), "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    impact = json.loads(result.stdout)
    assert server.stats()["requests"] == before
    qualified_now = sum(
        1 for i in server.portal.contact_ids() if (server.portal.contact(i) or {}).get("leadsync_qualified_at")
    )
    assert impact["leads"] == 300
    assert impact["newly_qualified"] == 0 and 0 < impact["newly_unqualified"] <= qualified_now
    assert impact["score_changes"] == 0  # thresholds move, scores do not
    assert impact["grade_changes"] > 0 and len(impact["examples"]["unqualify"]) <= 5
    bare = tmp_path / "bare.yaml"
    bare.write_text("qualification: {threshold: 80, release: 75}\n")
    same = runner.invoke(app, ["preview", "--rules", str(bare), "--config", str(config), "--json"])
    assert json.loads(same.stdout)["newly_unqualified"] == impact["newly_unqualified"]
    text = runner.invoke(app, ["preview", "--rules", str(stricter), "--config", str(config)])
    assert "would stop being MQL" in text.stdout


def test_preview_rejects_bad_rules_naming_the_file(synced: tuple[Path, HubSpotSandboxServer], tmp_path: Path) -> None:
    config, _ = synced
    bad = tmp_path / "bad.yaml"
    bad.write_text("scoring:\n  grades: {hot: lots}\n")
    result = runner.invoke(app, ["preview", "--rules", str(bad), "--config", str(config)])
    assert result.exit_code == 2 and str(bad) in result.output and "grades" in result.output


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_score_csv_streams_rows_and_reports_bad_lines(tmp_path: Path) -> None:
    base = {"job_title": "VP Marketing", "employees": "250", "page_views": "30", "visits": "6", "last_visit_at": ""}
    rows = [
        base | {"email": "ana@acme-robotics.com", "crm_note": "keep me"},
        base | {"email": "ana@gmail.com", "crm_note": "free mail"},
        base | {"email": "bo@acme-robotics.com", "employees": "a few", "crm_note": "bad"},
        base | {"email": "cy@acme-robotics.com", "visits": "3.5e", "crm_note": "bad too"},
    ]
    source, output = tmp_path / "leads.csv", tmp_path / "scored.csv"
    write_csv(source, rows)
    result = runner.invoke(app, ["score", "--input", str(source), "--output", str(output)])
    assert result.exit_code == 0, result.output  # a bad value costs the value, not the lead (issue 17)
    assert "column 'employees': 1 not" in result.output and "(lines 4;" in result.output
    assert "column 'visits': 1 not" in result.output and "(lines 5;" in result.output
    scored = list(csv.DictReader(output.open()))
    assert [r["email"] for r in scored] == [r["email"] for r in rows]
    strict = runner.invoke(app, ["score", "--input", str(source), "--output", str(output), "--strict"])
    assert strict.exit_code == 1 and "line 4: column 'employees'" in strict.output, strict.output
    scored = list(csv.DictReader(output.open()))
    assert [r["email"] for r in scored] == ["ana@acme-robotics.com", "ana@gmail.com"]
    assert scored[0]["crm_note"] == "keep me"  # input columns are kept
    assert int(scored[1]["score"]) < int(scored[0]["score"])
    assert {"score", "fit", "engagement", "grade", "qualified", "reasons"} <= scored[0].keys()


def test_score_csv_with_config_mapping_and_no_partial_output(tmp_path: Path) -> None:
    config = tmp_path / "leadsync.yaml"
    config.write_text("csv:\n  fields:\n    email: E-mail\n    job_title: Title\n")
    source, output = tmp_path / "leads.csv", tmp_path / "scored.csv"
    write_csv(source, [{"E-mail": "dee@acme-robotics.com", "Title": "Chief Executive Officer"}])
    ok = runner.invoke(app, ["score", "--input", str(source), "--output", str(output), "--config", str(config)])
    assert ok.exit_code == 0, ok.output
    assert int(next(csv.DictReader(output.open()))["fit"]) > 0
    other = tmp_path / "other.csv"
    write_csv(other, [{"E-mail": "x@y.com"}])  # the config maps job_title to Title, which this file lacks
    missing = runner.invoke(
        app, ["score", "--input", str(other), "--output", str(tmp_path / "none.csv"), "--config", str(config)]
    )
    assert missing.exit_code == 2 and "csv.fields.job_title: column 'Title' is not in the header" in missing.output
    assert not (tmp_path / "none.csv").exists() and not list(tmp_path.glob(".none.csv.*"))


def test_sync_once_refuses_to_write_beside_a_daemon_holding_the_lease(
    synced: tuple[Path, HubSpotSandboxServer],
) -> None:
    from datetime import timedelta

    from sync.joblock import job_lock
    from sync.lease import lease_name

    config, server = synced
    application = build_app(load_config(config))
    store = application.store()
    try:
        stream = application.pipeline(store).stream
        # a live daemon: it holds the job lock (which dies with it) and the lease row (which names it)
        daemon_lock = job_lock(store.connect_url, lease_name(stream))
        assert daemon_lock is not None and daemon_lock.try_acquire()
        assert store.acquire_lease(lease_name(stream), "daemon-on-host-a:42", timedelta(minutes=5), take_over=True)
        writes_before = server.stats()["by_endpoint"].get("POST /crm/v3/objects/contacts/batch/update", 0)
        result = runner.invoke(app, ["sync", "--once", "--full", "--config", str(config)])
        assert result.exit_code == 1 and "daemon-on-host-a:42" in result.output
        assert server.stats()["by_endpoint"].get("POST /crm/v3/objects/contacts/batch/update", 0) == writes_before
        dry = runner.invoke(app, ["sync", "--once", "--dry-run", "--json", "--config", str(config)])
        assert dry.exit_code == 0, dry.output  # a dry run writes nothing, so it needs no lease
        store.release_lease(lease_name(stream), "daemon-on-host-a:42")
        daemon_lock.release()
        ok = runner.invoke(app, ["sync", "--once", "--json", "--config", str(config)])
        assert ok.exit_code == 0, ok.output
        assert store.lease_holder(lease_name(stream)) is None  # released after the pass
    finally:
        store.close()
