"""The daemon's ``evaluate`` job: gauges, a run record, and warnings (never a failure) when the model drifts."""

from __future__ import annotations

from pathlib import Path

from leadsync.app import build_app
from leadsync.config import parse_config
from leadsync.runner import build_daemon, evaluate_job_spec, job_specs
from sync.daemon import evaluation_warnings
from sync.state import StateStore
from tests.loop.test_evaluate_store import seed_store


def config(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "crm": "hubspot",
        "hubspot": {"access_token": "pat-test", "base_url": "http://127.0.0.1:9"},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        **extra,
    }


def test_evaluate_job_is_scheduled_every_15_days_and_waits_one_interval(tmp_path: Path) -> None:
    spec = evaluate_job_spec(parse_config(config(tmp_path)))
    assert spec is not None and spec.every_s == 15 * 86400 and not spec.starts_at_once
    assert evaluate_job_spec(parse_config(config(tmp_path, outcomes={"enabled": False}))) is None
    assert evaluate_job_spec(parse_config(config(tmp_path, schedule={"evaluate": None}))) is None
    hourly = evaluate_job_spec(parse_config(config(tmp_path, schedule={"evaluate": {"every": "1h"}})))
    assert hourly is not None and hourly.every_s == 3600
    assert "evaluate" not in {s.name for s in job_specs(parse_config(config(tmp_path)))}


def test_evaluation_sets_gauges_records_a_run_and_warns_in_readyz(tmp_path: Path) -> None:
    app = build_app(parse_config(config(tmp_path)))
    store = StateStore.open(app.config.state.url)
    try:
        seed_store(store, 400)
        daemon = build_daemon(app, store, port=0)
        assert "evaluate" in {job.id for job in daemon._scheduler.get_jobs()}
        daemon._run_evaluation()
        registry = daemon.metrics.registry
        auc = registry.get_sample_value("leadsync_eval_auc")
        assert auc is not None and auc > 0.7
        assert registry.get_sample_value("leadsync_eval_positives") >= 30
        assert registry.get_sample_value("leadsync_eval_recommended_threshold") is not None
        runs = store.last_runs(5, job="evaluate")
        assert runs[0].status == "ok" and runs[0].summary["auc"] == auc
        _, detail = daemon._readiness()
        assert detail["evaluation"]["state"] == "ok" and detail["evaluation"]["auc"] == auc
    finally:
        store.close()


def test_warnings_for_an_auc_drop_and_a_moved_threshold() -> None:
    now = {"auc": {"value": 0.70}, "recommendation": {"threshold": 75}, "configured_threshold": 60}
    warnings = evaluation_warnings(now, {"auc": 0.80}, 0.05, None)
    assert len(warnings) == 2 and "0.800 to 0.700" in warnings[0] and "75" in warnings[1]
    steady = {"auc": {"value": 0.78}, "recommendation": {"threshold": 65}, "configured_threshold": 60}
    assert evaluation_warnings(steady, {"auc": 0.80}, 0.05, None) == []
    assert evaluation_warnings(steady, None, 0.05, None) == []
