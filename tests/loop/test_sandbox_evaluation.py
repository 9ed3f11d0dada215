"""End to end against the sandboxes over real HTTP: sync a portal, then ``leadsync evaluate --backfill``.

A fresh install has no score history before the sandbox's past conversions, so the champion is rescored as
of before each outcome from the cache (``--backfill``). The default rules must predict the portal's hidden
propensity (AUC well above 0.5) and beat a candidate without engagement rules significantly; activities after
the moment must not leak in (they would flatter the engagement rules).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from connectors.sandbox.hubspot import HubSpotSandboxServer
from leadsync.app import build_app
from leadsync.cli import app
from leadsync.config import parse_config

runner = CliRunner()


def write_config(tmp_path: Path, section: dict[str, Any]) -> Path:
    path = tmp_path / "leadsync.yaml"
    path.write_text(yaml.safe_dump(section))
    return path


def evaluate(config: Path, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["evaluate", "--config", str(config), "--json", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.slow
def test_hubspot_portal_backfilled_evaluation(
    hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer], tmp_path: Path
) -> None:
    portal = hubspot_sandbox_factory(contacts=3000, seed=21, now=None)
    section = {
        "crm": "hubspot",
        "hubspot": {"access_token": portal.token, "base_url": portal.url, "rate_limit_per_10s": 5000},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "sync": {"settle_s": 0},
    }
    config = write_config(tmp_path, section)
    built = build_app(parse_config(section))
    store = built.store()
    try:
        summary = built.pipeline(store).run_once()
    finally:
        store.close()
    assert summary.leads_read == 3000 and summary.outcomes > 30

    plain = evaluate(config)
    assert plain["score_source"] == "history" and plain["backfilled"] == 0
    assert plain["evaluated"] < plain["positives"] + 30 or plain["excluded_no_history"] > 0

    data = evaluate(config, "--backfill")
    assert data["backfilled"] > 0 and data["score_source"] in ("backfill", "mixed")
    assert data["positives"] >= 30, data
    assert data["auc"]["value"] > 0.6, data["auc"]
    assert data["recommendation"]["threshold"] is not None

    candidate = tmp_path / "no-engagement.yaml"
    candidate.write_text(yaml.safe_dump({"scoring": {"engagement": []}}))
    both = evaluate(config, "--backfill", "--rules", str(candidate))
    comparison = both["comparison"]
    assert both["auc"]["value"] > comparison_auc(both), comparison
    assert comparison["p_value"] < 0.05, comparison


def comparison_auc(data: dict[str, Any]) -> float:
    value: float = data["candidate"]["auc"]["value"]
    return value
