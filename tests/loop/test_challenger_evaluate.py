"""``leadsync evaluate`` with a shadow challenger: its history as of the same moments as the champion's,
compared with DeLong on the same leads; with a split, each arm's conversion with a two-proportion z-test."""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import norm
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from leadsync.cli import app
from leadsync.config import OutcomesConfig
from leadsync.evaluate_store import evaluate_store
from scoring.evaluation import compare
from sync.state import HistoryRow, StateStore
from tests.loop.test_evaluate_store import DAY, MAPPING, NOW, RULES, h, seed_store

runner = CliRunner()


def shadow(lead_id: str, at: object, total: int) -> HistoryRow:
    row = h(lead_id, at, total)  # type: ignore[arg-type]
    return HistoryRow(row.lead_id, row.at, row.total, row.grade, row.qualified, "b", "challenger")


def seed_challenger(store: StateStore, truth: dict[str, tuple[bool, int]], skip: int = 0) -> dict[str, int]:
    """A weak challenger (the champion's score buried in noise), scored from the start, surging after outcomes.

    The first ``skip`` leads have no challenger history (it started after them)."""
    rng = random.Random(7)
    firsts: dict[str, object] = {}
    for page in store.iter_history(arm="champion"):
        for r in page:
            firsts.setdefault(r.lead_id, r.at)
    scores, rows = {}, []
    for k, (lid, (_converted, score)) in enumerate(sorted(truth.items())):
        if k < skip:
            continue
        scores[lid] = int(min(100, max(0, 0.2 * score + rng.uniform(0, 80))))
        rows.append(shadow(lid, firsts[lid], scores[lid]))
    outcomes = {o.lead_id: o.converted_at for page in store.iter_outcomes() for o in page}
    rows += [shadow(lid, at + 0.5 * DAY, 100) for lid, at in outcomes.items() if lid in scores]
    store.append_history(rows)
    return scores


def arm_of(lead_id: str, split: float) -> str:
    share = int(hashlib.sha256(lead_id.encode()).hexdigest()[:16], 16) / 2**64
    return "challenger" if share < split else "champion"


def test_no_challenger_history_no_comparison(store: StateStore) -> None:
    seed_store(store, 300)
    result = evaluate_store(store, MAPPING, RULES, OutcomesConfig(), "f1", now=NOW, n_boot=50)
    assert result.run is not None and result.challenger is None
    assert result.as_dict()["challenger"] is None


def test_challenger_is_judged_as_of_the_same_moments_and_compared_with_delong(store: StateStore) -> None:
    truth = seed_store(store, 600)
    challenger = seed_challenger(store, truth, skip=20)
    result = evaluate_store(store, MAPPING, RULES, OutcomesConfig(), "f1", now=NOW, n_boot=50)
    shadow_cmp = result.challenger
    assert shadow_cmp is not None and shadow_cmp.comparison is not None
    labeled = [i for i in result.labels.lead_ids if i in challenger]
    assert shadow_cmp.leads == len(labeled) and shadow_cmp.missing == len(result.labels.lead_ids) - len(labeled) > 0
    y = np.array([truth[i][0] for i in labeled])
    champ = np.array([truth[i][1] for i in labeled], dtype=float)
    chall = np.array([challenger[i] for i in labeled], dtype=float)  # never the post-outcome 100
    assert shadow_cmp.challenger_auc == pytest.approx(roc_auc_score(y, chall), abs=1e-12)
    assert shadow_cmp.champion_auc == pytest.approx(roc_auc_score(y, champ), abs=1e-12)
    expected = compare(champ, chall, y, names=("champion", "challenger"))
    assert shadow_cmp.comparison == expected
    assert expected.significant and expected.difference < 0  # the noisy challenger ranks converters worse
    data = result.as_dict()["challenger"]
    assert data["comparison"]["p_value"] == expected.p_value and data["split_test"] is None
    assert "significantly worse" in data["summary"][0]


def test_split_reports_each_arms_conversion_with_a_z_test(store: StateStore) -> None:
    truth = seed_store(store, 600)
    seed_challenger(store, truth)
    split = 0.4
    result = evaluate_store(store, MAPPING, RULES, OutcomesConfig(), "f1", now=NOW, n_boot=50, challenger_split=split)
    got = result.challenger
    assert got is not None
    cells = {"champion": [0, 0], "challenger": [0, 0]}
    for lead_id, converted in zip(result.labels.lead_ids, result.labels.outcomes, strict=True):
        cells[arm_of(lead_id, split)][0] += 1
        cells[arm_of(lead_id, split)][1] += int(converted)
    assert [(a.arm, a.leads, a.converted) for a in got.arms] == [
        ("champion", *cells["champion"]),
        ("challenger", *cells["challenger"]),
    ]
    (n1, x1), (n2, x2) = cells["champion"], cells["challenger"]
    p1, p2, pooled = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert got.z == pytest.approx(z, rel=1e-12)
    assert got.p_value == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)
    assert got.p_value is not None and got.p_value > 0.05  # the hash split of random leads: no real effect
    assert "not significant" in got.summary()[-1]


def test_cli_prints_the_challenger(tmp_path: Path) -> None:
    rules_b = tmp_path / "rules-b.yaml"
    rules_b.write_text("engagement: []\n")
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "crm": "hubspot",
                "hubspot": {"access_token": "pat-test", "base_url": "http://127.0.0.1:9"},
                "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
                "challenger": {"rules": "rules-b.yaml", "split": 0.5},
            }
        )
    )
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        seed_challenger(store, seed_store(store, 400))
    as_of = ["--as-of", NOW.isoformat()]
    result = runner.invoke(app, ["evaluate", "--config", str(config), "--json", *as_of])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["challenger"]
    assert data["split"] == 0.5 and data["comparison"]["method"] == "DeLong"
    assert data["split_test"]["method"] == "two-proportion z-test"
    assert sum(a["leads"] for a in data["arms"]) == json.loads(result.stdout)["evaluated"]
    text = runner.invoke(app, ["evaluate", "--config", str(config), *as_of])
    assert text.exit_code == 0, text.output
    assert "shadow challenger on" in text.output and "split 0.5: champion written for" in text.output
    page = tmp_path / "report.html"
    report = runner.invoke(app, ["report", "--config", str(config), "--output", str(page), *as_of])
    assert report.exit_code == 0, report.output
    body = page.read_text()
    assert "<h2>Shadow challenger</h2>" in body and "shadow challenger on" in body and "two-proportion z" in body
