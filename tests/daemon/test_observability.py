"""What a platform engineer sees of ``leadsync run``: health, readiness, metrics, JSON logs with run ids, no
secret anywhere, ``leadsync status``, and a SIGTERM that checkpoints the page in flight within the grace."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from connectors.sandbox.hubspot import HubSpotSandboxServer
from sync import pipeline as pipeline_module
from sync.state import StateStore
from tests.daemon._harness import (
    DaemonProcess,
    crm_state,
    daemon_config,
    daemon_env,
    event_is,
    stop_all,
    wait_until,
)

Factory = Callable[..., HubSpotSandboxServer]
#: a token shaped like a HubSpot private-app token, so that a leak would be recognisable in any form
TOKEN = "pat-na1-7c4e1f0a-9d2b-4e6f-8a3c-5b1d9e7f2a64"

REQUIRED_METRICS = {
    "leadsync_runs",
    "leadsync_run_duration_seconds",
    "leadsync_leads_read",
    "leadsync_leads_scored",
    "leadsync_leads_written",
    "leadsync_write_failures",
    "leadsync_workflows_triggered",
    "leadsync_records_refused",
    "leadsync_api_calls",
    "leadsync_api_throttled",
    "leadsync_rate_limit_headroom_ratio",
    "leadsync_watermark_lag_seconds",
    "leadsync_lease_held",
    "leadsync_outbox_items",
    "leadsync_last_success_timestamp_seconds",
}


def _lag_is_set(body: str) -> bool:
    """Whether the scrape shows a watermark lag (NaN until the first pass's gauges are refreshed)."""
    return any(
        s.name == "leadsync_watermark_lag_seconds" and s.value == s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    )


def test_health_metrics_logs_status_and_no_secret_anywhere(hubspot_sandbox_factory: Factory, tmp_path: Path) -> None:
    server = hubspot_sandbox_factory(contacts=150, seed=21, token=TOKEN)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = daemon_config(tmp_path / "leadsync.yaml", server, state_url, every="1s")
    env = daemon_env(server)
    daemon = DaemonProcess(config, env, log_level=None)  # the daemon's default: info
    try:
        assert daemon.wait_for(event_is("sync.done"), timeout=60), daemon.text()[-3000:]
        assert daemon.get("/healthz")[0] == 200
        wait_until(lambda: daemon.get("/readyz")[0] == 200, 15, "readiness")
        ready = json.loads(daemon.get("/readyz")[1])
        assert ready["state_store"]["ok"] and ready["crm"]["ok"] and ready["lease"]["held"]

        # `sync.done` is logged inside the pass; its counters and the store gauges are set just after it,
        # so scrape until the last of them (the watermark lag) is there rather than racing the pass's end
        wait_until(lambda: _lag_is_set(daemon.get("/metrics")[1]), 15, "the pass's gauges")
        status, body = daemon.get("/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body)}
        assert families.keys() >= REQUIRED_METRICS, REQUIRED_METRICS - families.keys()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
        assert samples[("leadsync_leads_read_total", (("crm", "hubspot"),))] >= 150
        assert samples[("leadsync_leads_written_total", (("crm", "hubspot"),))] == 150
        assert samples[("leadsync_records_refused_total", (("crm", "hubspot"), ("reason", "no_id")))] == 0
        assert samples[("leadsync_runs_total", (("job", "sync"), ("status", "ok")))] >= 1
        assert samples[("leadsync_lease_held", (("lease", "sync:hubspot:contacts"),))] == 1
        assert 0 <= samples[("leadsync_rate_limit_headroom_ratio", (("crm", "hubspot"),))] <= 1
        assert samples[("leadsync_watermark_lag_seconds", (("stream", "hubspot:contacts"),))] >= 0
        assert any(name == "leadsync_api_calls_total" for name, _ in samples)

        # `leadsync status --json` while the daemon runs: lag and the lease holder
        out = subprocess.run(
            [sys.executable, "-m", "leadsync", "status", "--json", "--config", str(config)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        status_json = json.loads(out.stdout)
        assert status_json["lease"]["holder"] == daemon.replica
        assert status_json["watermark_lag_s"]["hubspot:contacts"] >= 0
        assert TOKEN not in out.stdout + out.stderr

        # the token stops working: failures are logged (without the token) and /readyz turns 503
        mark = len(daemon.events)
        server.sandbox.expire_token(TOKEN)
        assert daemon.wait_for(event_is("sync.failed"), timeout=20, start=mark)
        wait_until(lambda: daemon.get("/readyz")[0] == 503, 15, "readiness to fail")
        assert "credentials" in json.loads(daemon.get("/readyz")[1])["crm"]["detail"]
        assert daemon.get("/healthz")[0] == 200  # alive all the same: restarting would not help
        code = daemon.terminate(timeout=30)
    finally:
        stop_all([daemon])

    assert code == 0
    text = daemon.text()
    assert TOKEN not in text
    assert all(e["event"] != "<not json>" for e in daemon.events), "every line of the daemon is JSON"
    for event in daemon.events:
        if event["event"] in ("sync.start", "sync.done", "sync.failed"):
            assert isinstance(event.get("run_id"), int) and event.get("job") == "sync" and event.get("pass_id")
    assert daemon.find(event_is("daemon.stopped", exit_code=0))


def test_sigterm_checkpoints_the_batch_in_flight_and_exits_within_the_grace(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    batch = getattr(pipeline_module, "BATCH_SIZE", 100)  # records per commit point of a pass
    total = batch * 5 // 2
    server = hubspot_sandbox_factory(contacts=total, seed=4, token=TOKEN)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    grace = 10.0
    config = daemon_config(tmp_path / "leadsync.yaml", server, state_url, every="1s", shutdown_grace_s=grace)
    env = daemon_env(server)
    daemon = DaemonProcess(config, env)
    try:
        # the first pass has three batches to write; stop it right after the first one reached the CRM
        written = daemon.wait_for(event_is("sync.progress", progress="written"), timeout=90)
        assert written is not None, daemon.text()[-3000:]
        asked = time.monotonic()
        code = daemon.terminate(timeout=grace + 10)
        took = time.monotonic() - asked
    finally:
        stop_all([daemon])

    assert code == 0 and took < grace, (code, took)
    assert daemon.find(event_is("sync.stopped")), "the pass stopped at a checkpoint"
    store = StateStore(state_url)
    try:
        (run,) = store.last_runs(5)
        assert run.status == "stopped"
        written_ids = [i for i, row in crm_state(server).items() if row["leadsync_score"]]
        # the batch in flight was finished and committed: what reached the CRM is all recorded, and the
        # pass stopped before writing the next batch
        assert batch <= len(written_ids) < total and len(written_ids) % batch == 0
        assert len(store.get_written(written_ids)) == len(written_ids)
        assert store.get_watermark("hubspot:contacts") is None  # the pass did not finish: no watermark
    finally:
        store.close()

    # the next daemon finishes the work
    again = DaemonProcess(config, env, name="again")
    try:
        wait_until(lambda: all(row["leadsync_score"] for row in crm_state(server).values()), 90, "the rest")
        assert again.terminate(timeout=30) == 0
    finally:
        stop_all([again])
    print(f"\nSIGTERM mid-pass: exit 0 after {took:.2f}s (grace {grace:.0f}s), {len(written_ids)} leads checkpointed")
