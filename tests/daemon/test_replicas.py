"""Three ``leadsync run`` replicas on one PostgreSQL: one works at a time, none writes or enrolls twice, and
a standby takes over within the lease time when the working one is killed."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.synthetic import generate_people
from sync.lease import lease_name
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
    everyone_scored,
    passes,
    seed,
    stop_all,
    wait_until,
)

Factory = Callable[..., HubSpotSandboxServer]
LEASE = lease_name("hubspot:contacts")
#: long: the job lock, not the lease's expiry, must free a dead holder's job
LEASE_TTL_S = 30.0
REPLICAS = 3


@pytest.mark.postgres
def test_three_replicas_share_one_job_and_a_standby_takes_over(
    hubspot_sandbox_factory: Factory, pg_url: str, tmp_path: Path
) -> None:
    people = generate_people(360, seed=5, now=SCORING_NOW)
    server = hubspot_sandbox_factory(contacts=0, seed=5)
    writes = WriteLog(server)
    seed(server, people[:200])
    env = daemon_env(server)
    daemons: list[DaemonProcess] = []
    store = StateStore.open(pg_url)
    try:
        for i in range(REPLICAS):
            config = daemon_config(tmp_path / f"r{i}.yaml", server, pg_url, every="0.5s", lease_ttl_s=LEASE_TTL_S)
            daemons.append(DaemonProcess(config, env, name=f"r{i}", log_level="info"))
        for daemon in daemons:
            assert daemon.wait_for(event_is("daemon.started"), timeout=120), daemon.text()[-3000:]
        wait_until(lambda: everyone_scored(server), 60, "the first pass")

        holder_id = store.lease_holder(LEASE)
        assert holder_id is not None
        holder = next(d for d in daemons if d.replica == holder_id[0])
        others = [d for d in daemons if d is not holder]
        seed(server, people[200:280])
        wait_until(lambda: everyone_scored(server), 30, "the second wave")

        # kill the holder in the middle of a pass over a new wave
        mark = len(holder.events)
        seed(server, people[280:])
        holder.wait_for(event_is("sync.progress", progress="scored"), timeout=10, start=mark)
        marks = [len(d.events) for d in others]
        holder.kill()
        killed = time.monotonic()
        successor = None
        deadline = killed + LEASE_TTL_S + 10
        while successor is None and time.monotonic() < deadline:
            for daemon, start in zip(others, marks, strict=True):
                if daemon.find(event_is("lease.acquired"), start) is not None:
                    successor = daemon
            time.sleep(0.02)
        assert successor is not None, "no standby took the lease over"
        found = successor.find(event_is("lease.acquired"), marks[others.index(successor)])
        assert found is not None
        takeover_s = found[1]["_t"] - killed
        wait_until(lambda: everyone_scored(server), 30, "the wave after the takeover")
        wait_until(lambda: store.outbox_counts()["pending"] == 0, 30, "the outbox to drain")
        time.sleep(1.5)  # a few more ticks: nobody may write anything again
        codes = [d.terminate() for d in others]
    finally:
        stop_all(daemons)
        store.close()

    assert codes == [0, 0]
    # within seconds, not the lease's 30 s: the holder's job lock died with it, and a standby polls every
    # second (the rest is slack for a loaded test machine)
    assert takeover_s <= 5.0, takeover_s
    print(f"\nreplicas: takeover {takeover_s:.2f}s after SIGKILL of the holder (lease ttl {LEASE_TTL_S}s)")

    state = crm_state(server)
    assert all(row["leadsync_score"] for row in state.values())
    enrolled = enrollments(server)
    qualified = {i for i, row in state.items() if row["leadsync_qualified_at"]}
    assert enrolled and max(enrolled.values()) == 1, {k: n for k, n in enrolled.items() if n > 1}
    assert set(enrolled) <= qualified
    assert writes.repeated() == {}, "the same write was sent twice"

    # passes of different replicas never overlapped (the killed one's last pass ends at its death)
    spans = sorted((start, end, d.name) for d in daemons for start, end in passes(d, killed if d is holder else None))
    for (_, end_a, a), (start_b, _, b) in itertools.pairwise(spans):
        assert a == b or start_b >= end_a, f"{a} and {b} ran passes at the same time"
    assert sum(1 for d in daemons if passes(d)) >= 2  # the successor did work
    assert all(server.token not in d.text() for d in daemons)
