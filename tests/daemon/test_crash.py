"""SIGKILL ``leadsync run`` at random points of its syncs: the work still ends done, and done exactly once.

New contacts arrive in waves between kills, so every daemon that gets killed was busy with real work
(reading, scoring, writing, committing, enrolling). The killed daemon's successor is a fresh process that
was started ahead (it imports while the other one works, which keeps the test short) and takes the job
lease over once the dead one's lease expires. A reference run on an identical sandbox, uninterrupted and
with the same pinned scoring clock, must leave the CRM in exactly the same state.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.synthetic import generate_people
from sync.lease import lease_name
from sync.state import StateStore
from tests.daemon._harness import (
    SCORING_NOW,
    DaemonProcess,
    ForkServer,
    WriteLog,
    crm_state,
    daemon_config,
    daemon_env,
    enrollments,
    event_is,
    holder_of,
    reference_run,
    seed,
    stop_all,
    wait_until,
)

Factory = Callable[..., HubSpotSandboxServer]
LEASE = lease_name("hubspot:contacts")
#: short, so that a standby takes over quickly after each kill (the holder renews every ttl/5)
LEASE_TTL_S = 1.0
#: daemons running at once: the busy one and standbys already started (a fresh process takes seconds to import)
POOL = 3
TOKEN = "pat-na1-crash-test-0f3c9e2a-5b7d-4c1e-9a8f-2d6b4e8c1a7f"

#: (anchor event in the busy daemon's log, weight, largest extra delay in seconds before the SIGKILL)
KILL_POINTS: list[tuple[str, int, float]] = [
    ("sync.start", 2, 0.05),  # while reading the properties and the window
    ("read", 2, 0.03),  # page read: activities being read, scoring
    ("scored", 2, 0.03),  # the batch write to the CRM in flight
    ("written", 4, 0.12),  # the page's commit, the watermark, the outbox claims and enrollments
    ("sync.done", 1, 0.2),  # between passes, or at the start of the next one
]


def anchor(name: str) -> Callable[[dict[str, Any]], bool]:
    if name.startswith("sync."):
        return event_is(name)
    return event_is("sync.progress", progress=name)


def run_crash_scenario(
    factory: Factory, tmp_path: Path, *, kills: int, initial: int, wave: int, rng_seed: int, fork: bool = True
) -> dict[str, Any]:
    """The scenario; returns figures for the assertions and the report."""
    rng = random.Random(rng_seed)
    people = generate_people(initial + wave * (kills + 1), seed=rng_seed, now=SCORING_NOW)
    waves = [people[initial + i * wave : initial + (i + 1) * wave] for i in range(kills + 1)]

    crashed = factory(contacts=0, seed=rng_seed, token=TOKEN)
    writes = WriteLog(crashed)
    seed(crashed, people[:initial])
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = daemon_config(tmp_path / "leadsync.yaml", crashed, state_url, every="0.3s", lease_ttl_s=LEASE_TTL_S)
    env = daemon_env(crashed)
    daemons: list[DaemonProcess] = []
    forkserver = ForkServer() if fork else None

    def spawn() -> DaemonProcess:
        daemon = DaemonProcess(config, env, name=f"d{len(daemons)}", forkserver=forkserver)
        daemons.append(daemon)
        return daemon

    store = StateStore.open(state_url)  # migrating here too is safe: migrations serialise
    killed_at: Counter[str] = Counter()
    takeovers: list[float] = []
    anchor_waits: list[float] = []
    started = time.monotonic()
    try:
        pool = [spawn() for _ in range(POOL)]
        for i in range(kills):
            busy = holder_of(pool, store, timeout=60, lease=LEASE)
            mark = len(busy.events)
            seeded = time.monotonic()
            seed(crashed, waves[i])  # new work for the busy daemon's next pass
            point, _, max_delay = rng.choices(KILL_POINTS, weights=[w for _, w, _ in KILL_POINTS])[0]
            busy.wait_for(anchor(point), timeout=5, start=mark)
            time.sleep(rng.uniform(0, max_delay))
            busy.kill()
            killed = time.monotonic()
            anchor_waits.append(killed - seeded)
            killed_at[point] += 1
            pool.remove(busy)
            pool.append(spawn())
            holder_of(pool, store, timeout=60, lease=LEASE)
            takeovers.append(time.monotonic() - killed)

        seed(crashed, waves[kills])
        last_wave = datetime.now(UTC)
        final = holder_of(pool, store, timeout=60, lease=LEASE)

        def settled() -> bool:
            runs = [r for r in store.last_runs(50, job="sync") if r.started_at > last_wave and r.status == "ok"]
            return len(runs) >= 2 and store.outbox_counts()["pending"] == 0

        wait_until(settled, 60, "two clean passes after the last wave")
        for daemon in pool:  # a daemon still importing has no SIGTERM handler yet
            assert daemon.wait_for(event_is("daemon.started"), timeout=60), daemon.text()[-2000:]
        stopping = time.monotonic()
        codes = {d.name: d.terminate(timeout=30) for d in [*[d for d in pool if d is not final], final]}
        stop_s = time.monotonic() - stopping
        outbox = store.outbox_counts()
        failures = store.failure_counts()
        abandoned = [r for r in store.last_runs(500, job="sync") if r.status == "running"]
    finally:
        stop_all(daemons)
        if forkserver is not None:
            forkserver.close()
        store.close()
    duration = time.monotonic() - started

    reference = factory(contacts=0, seed=rng_seed, token=TOKEN)
    seed(reference, people[:initial])
    for w in waves:
        seed(reference, w)
    reference_run(reference, f"sqlite:///{tmp_path / 'reference.db'}")

    return {
        "crashed": crashed,
        "reference": reference,
        "writes": writes,
        "daemons": daemons,
        "kills": sum(killed_at.values()),
        "killed_at": killed_at,
        "takeovers": takeovers,
        "anchor_waits": anchor_waits,
        "codes": codes,
        "stop_s": stop_s,
        "outbox": outbox,
        "failures": failures,
        "still_running": abandoned,
        "duration_s": duration,
    }


def check_outcome(result: dict[str, Any]) -> None:
    crashed: HubSpotSandboxServer = result["crashed"]
    reference: HubSpotSandboxServer = result["reference"]
    daemons: list[DaemonProcess] = result["daemons"]

    # every daemon still alive at the end stopped cleanly on SIGTERM
    assert all(code == 0 for code in result["codes"].values()), result["codes"]
    assert result["outbox"]["pending"] == 0 and result["failures"] == {"retriable": 0, "permanent": 0}
    assert result["still_running"] == [], "a run left 'running' by a killed daemon was not closed"

    # the CRM holds exactly what an uninterrupted run produces, for every contact
    got, want = crm_state(crashed), crm_state(reference)
    assert got.keys() == want.keys()
    assert all(row["leadsync_score"] != "" for row in want.values())
    differing = {i: (got[i], want[i]) for i in want if got[i] != want[i]}
    assert not differing, (
        f"{len(differing)} contacts differ from the reference run, e.g. {next(iter(differing.items()))}"
    )

    # every qualified contact enrolled, none twice; and no identical write sent twice
    enrolled, expected = enrollments(crashed), enrollments(reference)
    assert expected and set(enrolled) == set(expected)
    assert max(enrolled.values()) == 1, {k: n for k, n in enrolled.items() if n > 1}
    qualified = {i for i, row in want.items() if row["leadsync_qualified_at"]}
    assert set(expected) <= qualified
    assert result["writes"].repeated() == {}

    # the token never reached a log line
    assert all(crashed.token not in d.text() for d in daemons)


def test_sigkill_at_random_points_loses_no_write_and_fires_no_workflow_twice(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    result = run_crash_scenario(hubspot_sandbox_factory, tmp_path, kills=20, initial=60, wave=15, rng_seed=20251124)
    assert result["kills"] >= 20
    check_outcome(result)
    print(
        f"\ncrash test: {result['kills']} kills {dict(result['killed_at'])} in {result['duration_s']:.1f}s; "
        f"takeover after kill: max {max(result['takeovers']):.2f}s, "
        f"mean {sum(result['takeovers']) / len(result['takeovers']):.2f}s; "
        f"wave to kill: mean {sum(result['anchor_waits']) / len(result['anchor_waits']):.2f}s; "
        f"interrupted enrollments found already delivered: "
        f"{sum(d.count('trigger.already_delivered') for d in result['daemons'])}; "
        f"SIGTERM of the survivors took {result['stop_s']:.2f}s"
    )


@pytest.mark.slow
def test_sigkill_sixty_times_on_a_bigger_portal(hubspot_sandbox_factory: Factory, tmp_path: Path) -> None:
    # real `python -m leadsync run` processes here (no fork server): the exec path under many kills too
    result = run_crash_scenario(
        hubspot_sandbox_factory, tmp_path, kills=60, initial=600, wave=40, rng_seed=77, fork=False
    )
    assert result["kills"] >= 60
    check_outcome(result)
