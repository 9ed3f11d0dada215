"""``leadsync evaluate`` from the state store: labels from outcomes and windows, the score as of before the
outcome (never after), pending and excluded leads counted, the same metrics as scikit-learn."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from leadsync.cli import app
from leadsync.config import OutcomesConfig
from leadsync.evaluate_store import backfill_scores, evaluate_store, label_from_store
from mappings import load_mapping
from scoring import compile_rules, load_rules
from sync.scoring_step import activities_from_dicts
from sync.state import CachedLead, HistoryRow, StateStore, StoredOutcome

NOW = datetime(2025, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)
runner = CliRunner()


def lead(lead_id: str, created: datetime) -> CachedLead:
    return CachedLead(lead_id, "contact", f"{lead_id}@x.io", {"createdate": created.isoformat()}, [], None)


def h(lead_id: str, at: datetime, total: int) -> HistoryRow:
    return HistoryRow(lead_id, at, total, "hot" if total >= 70 else "warm" if total >= 40 else "cold", total >= 60, "v")


MAPPING = load_mapping("hubspot", None)
RULES = compile_rules(load_rules(None))


def test_labels_windows_and_the_score_before_the_outcome(store: StateStore) -> None:
    old = NOW - 200 * DAY
    store.upsert_leads(
        [
            lead("pos", old),  # converted on day 30: judged on its score as of day 29
            lead("late", old),  # converted on day 120, after its 90-day window: a negative
            lead("neg", old),  # never converted, window closed: a negative judged as of day 89
            lead("young", NOW - 10 * DAY),  # window still open: pending
            lead("nohist", old),  # converted, but first scored after its outcome: excluded
            lead("before", old),  # converted before it was created (bad data): excluded
            CachedLead("nodate", "contact", None, {}, [], None),
        ]
    )
    store.append_history(
        [
            h("pos", old + 5 * DAY, 20),
            h("pos", old + 29 * DAY, 35),
            h("pos", old + 30 * DAY, 95),  # the surge after the sale: must not be used
            h("late", old + 1 * DAY, 50),
            h("neg", old + 1 * DAY, 10),
            h("neg", old + 88 * DAY, 12),
            h("neg", old + 89.5 * DAY, 99),  # after its judging moment
            h("young", NOW - 5 * DAY, 80),
            h("nohist", old + 40 * DAY, 70),
            h("nodate", old, 5),
        ]
    )
    store.upsert_outcomes(
        [
            StoredOutcome("pos", old + 30 * DAY, "lifecycle:customer", {}),
            StoredOutcome("late", old + 120 * DAY, "lifecycle:customer", {}),
            StoredOutcome("nohist", old + 20 * DAY, "lifecycle:customer", {}),
            StoredOutcome("before", old - DAY, "lifecycle:customer", {}),
        ]
    )
    labels = label_from_store(store, MAPPING, OutcomesConfig(), now=NOW)
    got = dict(zip(labels.lead_ids, zip(labels.outcomes, labels.scores, strict=True), strict=True))
    assert got == {"pos": (True, 35), "late": (False, 50), "neg": (False, 12)}
    assert labels.pending == 1 and labels.no_history == 1 and labels.no_anchor == 1
    assert labels.converted_before_anchor == 1 and labels.leads == 7

    # from the first score instead: "nohist"'s window opens on day 40, after its outcome
    first = label_from_store(store, MAPPING, OutcomesConfig(window_from="first_scored"), now=NOW)
    assert "nohist" not in first.lead_ids and first.converted_before_anchor >= 1


def test_outcomes_older_than_the_history_are_left_out_and_said_so(store: StateStore) -> None:
    store.upsert_leads([lead("a", NOW - 100 * DAY)])
    store.append_history([h("a", NOW - DAY, 50)])  # first synced yesterday
    store.upsert_outcomes([StoredOutcome("a", NOW - 50 * DAY, "lifecycle:customer", {})])
    result = evaluate_store(store, MAPPING, RULES, OutcomesConfig(), "f1", now=NOW)
    assert result.run is None and result.labels.no_history == 1
    assert "first scored after the moment" in (result.message() or "")


def test_no_outcomes_yet_says_when_the_first_window_closes(store: StateStore) -> None:
    store.upsert_leads([lead("a", NOW - 30 * DAY), lead("b", NOW - 10 * DAY)])
    store.append_history([h("a", NOW - 29 * DAY, 30), h("b", NOW - 9 * DAY, 30)])
    result = evaluate_store(store, MAPPING, RULES, OutcomesConfig(), "f1", now=NOW)
    assert result.run is None
    data = result.as_dict()
    assert data["positives"] == 0 and data["pending"] == 2
    assert data["first_window_closes_at"] == (NOW + 60 * DAY).isoformat()
    assert "in 60 days" in (result.message() or "")


def seed_store(store: StateStore, n: int, seed: int = 1, *, history: bool = True) -> dict[str, tuple[bool, int]]:
    """Leads whose pre-outcome score predicts conversion (with noise); each converter surges after it."""
    rng = random.Random(seed)
    leads, rows, outcomes, truth = [], [], [], {}
    for i in range(n):
        lid = f"L{i:05d}"
        created = NOW - rng.uniform(100, 400) * DAY
        quality = rng.random()
        score = int(min(100, max(0, quality * 80 + rng.gauss(0, 15))))
        leads.append(lead(lid, created))
        rows.append(h(lid, created + DAY, score))
        converted = rng.random() < quality**2 * 0.6
        if converted:
            at = created + rng.uniform(5, 85) * DAY
            outcomes.append(StoredOutcome(lid, at, "lifecycle:customer", {}))
            rows.append(h(lid, at + 0.5 * DAY, 100))  # after the outcome: never evaluated
        truth[lid] = (converted, score)
    store.upsert_leads(leads)
    if history:
        store.append_history(rows)
    store.upsert_outcomes(outcomes)
    return truth


def test_auc_matches_sklearn_on_the_pre_outcome_scores(store: StateStore) -> None:
    truth = seed_store(store, 600)
    result = evaluate_store(store, MAPPING, RULES, OutcomesConfig(), "f1", now=NOW, n_boot=200)
    assert result.run is not None
    y = np.array([truth[i][0] for i in result.labels.lead_ids])
    s = np.array([truth[i][1] for i in result.labels.lead_ids])
    assert result.labels.scores == list(s)
    assert result.run.champion.auc.value == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert result.run.champion.auc.value > 0.7
    data = result.as_dict()
    assert data["positives"] == int(y.sum()) and data["recommendation"]["threshold"] is not None


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "leadsync.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "crm": "hubspot",
                "hubspot": {"access_token": "pat-test", "base_url": "http://127.0.0.1:9"},
                "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
            }
        )
    )
    return path


def test_cli_without_input_reads_the_store(config_file: Path, tmp_path: Path) -> None:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.upsert_leads([lead("a", datetime.now(UTC) - 30 * DAY)])
        store.append_history([h("a", datetime.now(UTC) - 29 * DAY, 30)])
    result = runner.invoke(app, ["evaluate", "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["positives"] == 0 and data["first_window_closes_at"] and data["pending"] == 1
    text = runner.invoke(app, ["evaluate", "--config", str(config_file)])
    assert text.exit_code == 0 and "no outcomes yet" in text.output
    report = runner.invoke(app, ["report", "--config", str(config_file), "--output", str(tmp_path / "r.html")])
    assert report.exit_code == 1 and "no report written" in report.output
    assert not (tmp_path / "r.html").exists()


def test_cli_store_evaluation_and_report(config_file: Path, tmp_path: Path) -> None:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        seed_store(store, 400)
    as_of = ["--as-of", NOW.isoformat()]
    result = runner.invoke(app, ["evaluate", "--config", str(config_file), "--json", *as_of])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"] == "state" and data["positives"] >= 30 and data["auc"]["value"] > 0.7
    out = tmp_path / "report.html"
    report = runner.invoke(app, ["report", "--config", str(config_file), "--output", str(out), *as_of])
    assert report.exit_code == 0, report.output
    assert "<svg" in out.read_text()


def test_backfill_rescores_leads_without_history_as_of_before_their_outcome(store: StateStore) -> None:
    old = NOW - 200 * DAY
    converted = old + 30 * DAY
    before = {"kind": "page_view", "timestamp": (old + 10 * DAY).isoformat(), "attributes": {"url": "/pricing"}}
    surge = [{"kind": "meeting", "timestamp": (converted + k * DAY).isoformat(), "attributes": {}} for k in range(1, 6)]
    props = {"createdate": old.isoformat(), "lifecyclestage": "customer"}
    store.upsert_leads(
        [
            CachedLead("pos", "contact", "pos@x.io", props, [before, *surge], None),
            CachedLead("hist", "contact", "hist@x.io", {"createdate": old.isoformat()}, [], None),
        ]
    )
    store.append_history([h("hist", old + DAY, 42)])
    store.upsert_outcomes([StoredOutcome("pos", converted, "lifecycle:customer", {})])

    plain = label_from_store(store, MAPPING, OutcomesConfig(), now=NOW)
    assert plain.lead_ids == ["hist"] and plain.no_history == 1 and plain.score_source == "history"

    labels = label_from_store(store, MAPPING, OutcomesConfig(), now=NOW, backfill=True)
    backfill_scores(store, MAPPING, RULES, labels)
    assert sorted(labels.lead_ids) == ["hist", "pos"] and labels.no_history == 0
    assert labels.score_source == "mixed" and labels.counts()["backfilled"] == 1
    got = dict(zip(labels.lead_ids, labels.scores, strict=True))
    assert got["hist"] == 42  # the history's score stays
    moment = converted - DAY
    lead_before = MAPPING.to_lead("pos", {"createdate": old.isoformat()}, object_type="contact")
    expected = RULES.score(lead_before, activities_from_dicts("pos", [before]), moment).total
    leaky = RULES.score(lead_before, activities_from_dicts("pos", [before, *surge]), moment + 10 * DAY).total
    assert got["pos"] == expected and expected < leaky  # the meetings after the sale do not count


def test_backfill_is_said_in_the_output(config_file: Path, tmp_path: Path) -> None:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        seed_store(store, 400, history=False)  # a fresh install: outcomes, no history before them
    as_of = ["--as-of", NOW.isoformat()]
    plain = json.loads(runner.invoke(app, ["evaluate", "--config", str(config_file), "--json", *as_of]).stdout)
    assert plain["evaluated"] == 0 and plain["score_source"] == "history" and plain["backfilled"] == 0
    data = json.loads(
        runner.invoke(app, ["evaluate", "--config", str(config_file), "--json", "--backfill", *as_of]).stdout
    )
    assert data["backfilled"] == data["evaluated"] > 0 and data["score_source"] == "backfill"
    text = runner.invoke(app, ["evaluate", "--config", str(config_file), "--backfill", *as_of])
    assert text.exit_code == 0 and "backfilled" in text.output and "score source: backfill" in text.output
    out = tmp_path / "r.html"
    report = runner.invoke(app, ["report", "--config", str(config_file), "--backfill", "-o", str(out), *as_of])
    assert report.exit_code == 0 and "backfilled" in report.output and out.exists()
    bad = runner.invoke(app, ["evaluate", "--input", str(tmp_path / "x.csv"), "--label", "y", "--backfill"])
    assert bad.exit_code == 2 and "--backfill applies to the state store" in bad.output
