"""The CLI as a user runs it: real processes, real sandbox, exit codes and messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hubspot
import pytest

LEADSYNC = [sys.executable, "-m", "leadsync"]
SUMMARY_KEYS = {
    "leads_read",
    "leads_scored",
    "leads_written",
    "write_failures",
    "qualified",
    "workflows_triggered",
    "api_calls",
    "duration_s",
}
STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist"]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEADSYNC, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def sandbox_process() -> Iterator[tuple[str, str]]:
    """`leadsync sandbox hubspot` in the foreground of its own process, as the README tells users."""
    token = "pat-test-3f9a"
    proc = subprocess.Popen(
        [*LEADSYNC, "sandbox", "hubspot", "--port", "0", "--token", token, "--contacts", "3000", "--seed", "11"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = None
        for _ in range(10):
            line = proc.stdout.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if match:
                url = match.group(1)
                break
        assert url, "the sandbox did not print its URL"
        yield url, token
    finally:
        proc.terminate()
        proc.wait(10)


def test_sync_once_json_against_the_sandbox_process(sandbox_process: tuple[str, str], tmp_path: Path) -> None:
    url, token = sandbox_process
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        "crm: hubspot\n"
        "hubspot: {access_token: ${HUBSPOT_ACCESS_TOKEN}, base_url: " + url + ", rate_limit_per_10s: 5000}\n"
        f"state: {{url: sqlite:///{tmp_path / 'state.db'}}}\n"
    )
    result = run("sync", "--once", "--json", "--config", str(config), env={"HUBSPOT_ACCESS_TOKEN": token})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["leads_read"] == summary["leads_scored"] == 3000
    assert token not in result.stdout + result.stderr

    client = hubspot.Client.create(access_token=token, host=url, base_url=url)
    rows, after = {}, None
    while True:
        page = client.crm.contacts.basic_api.get_page(
            limit=100,
            after=after,
            properties=["email", "leadsync_score", "leadsync_grade", "leadsync_qualified_at", "lifecyclestage"],
        )
        rows.update({c.id: c.properties for c in page.results})
        if not page.paging or not page.paging.next:
            break
        after = page.paging.next.after
    assert len(rows) == 3000
    assert all(r["leadsync_score"] and r["leadsync_grade"] in {"hot", "warm", "cold"} for r in rows.values())
    qualified = [r for r in rows.values() if r.get("leadsync_qualified_at")]
    assert len(qualified) == summary["qualified"] > 0
    assert all(
        r["lifecyclestage"] == "other" or STAGES.index(r["lifecyclestage"]) >= STAGES.index("marketingqualifiedlead")
        for r in qualified
    )

    status = run("status", "--json", "--config", str(config), env={"HUBSPOT_ACCESS_TOKEN": token})
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["runs"][0]["status"] == "ok" and data["leads_cached"] == 3000


def test_init_writes_a_config_that_check_accepts(sandbox_process: tuple[str, str], tmp_path: Path) -> None:
    url, token = sandbox_process
    path = tmp_path / "leadsync.yaml"
    assert run("init", "--path", str(path)).returncode == 0
    text = path.read_text()
    assert "${HUBSPOT_ACCESS_TOKEN}" in text and text.count("#") > 10
    assert run("init", "--path", str(path)).returncode != 0  # never overwrites silently
    path.write_text(text.replace("# base_url: https://api.hubapi.com", f"base_url: {url}"))
    checked = run("check", "--config", str(path), env={"HUBSPOT_ACCESS_TOKEN": token}, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "reachable" in checked.stdout


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        ("crm: hubspot\nhubspot: {access_token: ${NOPE_TOKEN}}\n", {}, "hubspot.access_token"),
        ("crm: hubspot\nhubspot: {access_token: x}\nscoring: {grades: {hot: lots}}\n", {}, "scoring"),
        ("crm: hubspot\nhubspot: {access_token: x}\nmapping: {fields: {email: null}}\n", {}, "mapping.fields.email"),
    ],
)
def test_bad_config_is_one_clear_message(tmp_path: Path, config: str, env: dict[str, str], expected: str) -> None:
    path = tmp_path / "leadsync.yaml"
    path.write_text(config)
    result = run("sync", "--once", "--config", str(path), env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr and expected in result.stderr


def test_unreachable_crm_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "leadsync.yaml"
    path.write_text(
        "crm: hubspot\nhubspot: {access_token: x, base_url: 'http://127.0.0.1:9', max_retries: 0}\n"
        f"state: {{url: sqlite:///{tmp_path / 's.db'}}}\n"
    )
    result = run("sync", "--once", "--config", str(path))
    assert result.returncode == 3
    assert "Traceback" not in result.stderr and "unreachable" in result.stderr


def test_demo_json_runs_end_to_end_and_leaves_nothing_running() -> None:
    result = run("demo", "--json", "--contacts", "500")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data.keys() >= SUMMARY_KEYS
    first, second = data["passes"]
    assert first["leads_read"] == 500 and first["leads_written"] == 500
    assert second["leads_written"] < first["leads_written"]
    assert data["sandbox"]["requests"] >= data["api_calls"]
