"""Two minutes of ``leadsync run`` against a CRM that fails one request in five (500, 502, 503, slow answers,
dropped connections): nothing is lost, nothing fires twice, and the daemon stays healthy throughout.

Marked slow: ``make soak`` runs it, ``make test`` does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.synthetic import generate_people
from sync.state import StateStore
from tests.daemon._harness import (
    SCORING_NOW,
    DaemonProcess,
    WriteLog,
    crm_state,
    daemon_config,
    daemon_env,
    enrollments,
    event_is,
    reference_run,
    seed,
    stop_all,
)

Factory = Callable[..., HubSpotSandboxServer]
SOAK_S = 120.0
FAULT_RATE = 0.2


@pytest.mark.slow
def test_two_minutes_at_20_percent_faults(hubspot_sandbox_factory: Factory, tmp_path: Path) -> None:
    waves = 12
    people = generate_people(300 + 40 * waves, seed=31, now=SCORING_NOW)
    server = hubspot_sandbox_factory(contacts=0, seed=31, fault_rate=FAULT_RATE)
    writes = WriteLog(server)
    seed(server, people[:300])
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = daemon_config(tmp_path / "leadsync.yaml", server, state_url, every="2s", shutdown_grace_s=30)
    daemon = DaemonProcess(config, daemon_env(server), log_level="info")
    unhealthy: list[tuple[float, int]] = []
    try:
        assert daemon.wait_for(event_is("daemon.started"), timeout=60), daemon.text()[-3000:]
        started = time.monotonic()
        next_wave = 0
        while time.monotonic() - started < SOAK_S:
            elapsed = time.monotonic() - started
            if next_wave < waves and elapsed >= next_wave * SOAK_S / waves:
                seed(server, people[300 + 40 * next_wave : 300 + 40 * (next_wave + 1)])
                next_wave += 1
            status, _ = daemon.get("/healthz")
            if status != 200:
                unhealthy.append((elapsed, status))
            assert daemon.proc.poll() is None, daemon.text()[-3000:]
            time.sleep(2)

        # the faults go on; give the retries time to land everything
        store = StateStore(state_url)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = all(row["leadsync_score"] for row in crm_state(server).values())
                if done and store.outbox_counts()["pending"] == 0 and store.failure_counts()["retriable"] == 0:
                    break
                time.sleep(1)
            outbox, failures = store.outbox_counts(), store.failure_counts()
        finally:
            store.close()
        assert daemon.get("/healthz")[0] == 200
        stats = server.stats()
        code = daemon.terminate(timeout=60)
    finally:
        stop_all([daemon])

    assert unhealthy == []
    assert code == 0
    assert stats["faults"] >= 40, stats  # the soak did meet faults (about one request in five)
    assert outbox["pending"] == 0 and failures["retriable"] == 0, (outbox, failures)

    reference = hubspot_sandbox_factory(contacts=0, seed=31)
    seed(reference, people[:300])
    for i in range(waves):
        seed(reference, people[300 + 40 * i : 300 + 40 * (i + 1)])
    reference_run(reference, f"sqlite:///{tmp_path / 'reference.db'}")
    got, want = crm_state(server), crm_state(reference)
    differing = {i for i in want if got.get(i) != want[i]}
    assert not differing, f"{len(differing)} contacts differ from a run without faults"
    enrolled = enrollments(server)
    assert set(enrolled) == set(enrollments(reference)) and max(enrolled.values()) == 1
    assert writes.repeated() == {}
    assert server.token not in daemon.text()
    print(f"\nsoak: {stats['requests']} requests, {stats['faults']} faults injected, healthy throughout")
