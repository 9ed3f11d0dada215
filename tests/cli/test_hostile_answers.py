"""Issue 19, black-box: `leadsync sync --once` against a sandbox process told to corrupt the second page."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.cli.test_commands import LEADSYNC, run

TOKEN = "pat-test-hostile"
SECOND_PAGE = "GET /crm/v3/objects/contacts"

Start = Callable[..., str]


@pytest.fixture
def sandbox_with_faults() -> Iterator[Start]:
    """`leadsync sandbox hubspot --fault-at ...` in its own process; yields a starter returning its URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(*fault_args: str) -> str:
        proc = subprocess.Popen(
            [*LEADSYNC, "sandbox", "hubspot", "--port", "0", "--token", TOKEN, "--contacts", "300", *fault_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        for _ in range(10):
            match = re.search(r"(http://127\.0\.0\.1:\d+)", proc.stdout.readline())
            if match:
                return match.group(1)
        raise AssertionError("the sandbox did not print its URL")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        "crm: hubspot\n"
        f"hubspot: {{access_token: {TOKEN}, base_url: {url}, max_retries: 2}}\n"
        f"state: {{url: sqlite:///{tmp_path / 'state.db'}}}\n"
    )
    return config


def test_a_corrupt_second_page_every_time_exits_3_and_moves_no_watermark(
    sandbox_with_faults: Start, tmp_path: Path
) -> None:
    url = sandbox_with_faults("--fault-at", f"corrupt:2+:{SECOND_PAGE}")
    config = _config(tmp_path, url)
    result = run("sync", "--once", "--full", "--json", "--config", str(config))
    assert result.returncode == 3, result.stderr
    assert "GET /crm/v3/objects/contacts: answered 200 with malformed JSON" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    status = json.loads(run("status", "--json", "--config", str(config)).stdout)
    assert status["runs"][0]["status"] == "failed"
    assert list(status["watermarks"].values()) == [None]


def test_a_gateway_page_once_is_retried_and_the_pass_reads_everyone(sandbox_with_faults: Start, tmp_path: Path) -> None:
    url = sandbox_with_faults("--fault-at", f"html:2:{SECOND_PAGE}")
    result = run("sync", "--once", "--full", "--json", "--config", str(_config(tmp_path, url)))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["leads_read"] == 300
    assert requests.get(f"{url}/__sandbox/stats", timeout=10).json()["faults"] == 1
