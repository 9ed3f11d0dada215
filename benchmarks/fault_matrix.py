"""Fault matrix: `leadsync run` daemons under four kinds of fault, on HubSpot and Salesforce, each scenario on a
PostgreSQL database of its own, each ending in a comparison of the CRM's final state with a fault-free run.

Run: .venv/bin/python benchmarks/fault_matrix.py [--quick] [--crm hubspot|salesforce|both] [--json FILE]

Scenarios (the full size; `--quick` shortens each, for `make soak`):

- faults: one daemon while the sandbox fails 20% of requests (500, 502, 503, slow answers, dropped
  connections) for 2 minutes as new records arrive; then the faults stop. Recovery: from the faults'
  end to a clean pass with nothing left to write or trigger.
- sigkill: SIGKILL x20 of the daemon holding the job, at random points of its passes (reading, scoring, the
  write in flight, the commit, between passes) and during outbox delivery: the CRM has recorded the
  trigger (HubSpot enrollment, Salesforce Flow interview) and the daemon dies before its answer. Three
  daemons run; each killed one is replaced. Recovery: from a kill to a live daemon holding the job.
- pg-restart: the PostgreSQL sessions of the scenario's database are cut with `pg_terminate_backend`
  mid-pass (the state store's pool and the job lock's session), which is what a restart of PostgreSQL
  looks like to the daemon, without restarting a server others share. Recovery: from a cut to the next
  pass that ends ok.
- replicas: three replicas, the leader SIGKILLed mid-pass twice (no replacement). Recovery: from a kill to a
  standby holding the job.

Each scenario's CRM is then compared, record by record, with a sandbox given the same records in the same
order and synced twice in-process without any fault (same pinned scoring clock): mismatches (a record's
written values differ), lost writes (a record the clean run wrote and this one did not, or a trigger the
clean run fired and this one did not), duplicate triggers (a record's workflow fired more than once).
Printed, never asserted: tests/soak/test_fault_matrix.py runs `--quick` and asserts the zeros.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from connectors.sandbox.hubspot import start_hubspot_sandbox  # noqa: E402
from connectors.sandbox.salesforce import start_salesforce_sandbox  # noqa: E402
from connectors.sandbox.synthetic import SyntheticPerson, generate_people  # noqa: E402
from sync.state import StateStore  # noqa: E402
from tests._pg import create_database, drop_database, terminate_backends  # noqa: E402
from tests.daemon._harness import (  # noqa: E402
    SCORE_PROP,
    SCORING_NOW,
    DaemonProcess,
    ForkServer,
    Sandbox,
    WriteLog,
    crm_state,
    daemon_config,
    daemon_env,
    event_is,
    holder_of,
    job_lease,
    on_trigger,
    passes,
    reference_run,
    seed,
    stop_all,
    triggers,
    wait_until,
)

CRMS = ("hubspot", "salesforce")
SCENARIOS = ("faults", "sigkill", "pg-restart", "replicas")
FAULT_RATE = 0.2
TOKEN = "pat-na1-fault-matrix-6a1d2c3b-4e5f-4a7b-8c9d-0e1f2a3b4c5d"

#: (anchor in the busy daemon's log, weight, largest extra delay in seconds before the SIGKILL); "delivery"
#: is the sandbox's own hook: the trigger is recorded and the daemon dies before it hears so
KILL_POINTS: list[tuple[str, int, float]] = [
    ("sync.start", 2, 0.05),  # reading the properties and the window
    ("read", 2, 0.03),  # a page read: activities being read, scoring
    ("scored", 2, 0.03),  # the batch write to the CRM in flight
    ("written", 3, 0.12),  # the page's commit, the watermark, the outbox claims
    ("delivery", 3, 0.0),  # the outbox delivering: the CRM has the trigger, the daemon never hears back
    ("sync.done", 1, 0.2),  # between passes, or at the start of the next one
]


@dataclass(frozen=True)
class Size:
    initial: int  # records before the daemons start
    wave: int  # records added before each fault
    soak_s: float  # the faults scenario's length
    kills: int  # the sigkill scenario's kills
    cuts: int  # the pg-restart scenario's cuts
    leader_kills: int = 2


FULL = Size(initial=300, wave=30, soak_s=120.0, kills=20, cuts=3)
QUICK = Size(initial=80, wave=20, soak_s=40.0, kills=5, cuts=2)


@dataclass
class Row:
    scenario: str
    crm: str
    faults: int = 0  # faults injected: sandbox faults, kills, or PostgreSQL sessions terminated
    fault_kind: str = ""
    kills: int = 0
    takeovers: int = 0
    passes: int = 0
    retries: int = 0
    records: int = 0
    mismatches: int = 0
    duplicate_triggers: int = 0
    lost_writes: int = 0
    repeated_writes: int = 0  # identical writes sent twice (the diff before write should prevent them)
    overlapping_passes: int = 0  # passes of two replicas at the same time
    recover_s: float | None = None  # the worst time to recover (see the scenario)
    duration_s: float = 0.0
    triggers: int = 0
    kill_points: dict[str, int] = field(default_factory=dict)  # sigkill: where the kills landed
    held_triggers: int = 0  # interrupted deliveries the CRM cannot confirm, held (failed) instead of resent
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def start_sandbox(crm: str, rng_seed: int, fault_rate: float = 0.0) -> Sandbox:
    if crm == "salesforce":
        return start_salesforce_sandbox(seed=rng_seed, fault_rate=fault_rate)
    return start_hubspot_sandbox(contacts=0, seed=rng_seed, now=SCORING_NOW, token=TOKEN, fault_rate=fault_rate)


class Scene:
    """One scenario on one CRM: its sandbox, database, daemons, and the records seeded in order."""

    def __init__(self, scenario: str, crm: str, size: Size, work: Path, rng_seed: int, fault_rate: float = 0.0):
        self.row = Row(scenario, crm)
        self.size = size
        self.work = work / f"{scenario}-{crm}"
        self.work.mkdir(parents=True, exist_ok=False)
        self.rng = random.Random(rng_seed)
        self.rng_seed = rng_seed
        self.people = generate_people(
            size.initial + size.wave * (size.kills + size.cuts + 8), seed=rng_seed, now=SCORING_NOW
        )
        self.seeded = 0
        self.batches: list[list[SyntheticPerson]] = []
        self.server = start_sandbox(crm, rng_seed, fault_rate)
        self.writes = WriteLog(self.server)
        self.database, self.url = create_database(f"fm_{scenario.replace('-', '_')}_{crm[:2]}")
        self.store = StateStore.open(self.url)
        self.lease = job_lease(self.server)
        self.daemons: list[DaemonProcess] = []
        self.forkserver: ForkServer | None = None
        self.started = time.monotonic()
        self.add(size.initial)

    def add(self, count: int) -> datetime:
        """Seed the next ``count`` people as freshly changed records; returns when."""
        batch = self.people[self.seeded : self.seeded + count]
        assert len(batch) == count, "not enough people generated for this scenario"
        self.seeded += count
        self.batches.append(batch)
        at = datetime.now(UTC)
        seed(self.server, batch)
        return at

    def spawn(self, *, every: str, lease_ttl_s: float, fork: bool = True, log_level: str = "debug") -> DaemonProcess:
        """A daemon; at ``debug`` its log has the pass's progress (``sync.progress``), the kill points' anchors."""
        if fork and self.forkserver is None:
            self.forkserver = ForkServer()
        name = f"d{len(self.daemons)}"
        config = daemon_config(
            self.work / f"{name}.yaml",
            self.server,
            self.url,
            every=every,
            lease_ttl_s=lease_ttl_s,
            shutdown_grace_s=30,
        )
        daemon = DaemonProcess(
            config,
            daemon_env(self.server),
            name=name,
            log_level=log_level,
            forkserver=self.forkserver if fork else None,
        )
        self.daemons.append(daemon)
        return daemon

    def live(self) -> list[DaemonProcess]:
        return [d for d in self.daemons if d.proc.poll() is None]

    def settled(self, since: datetime, clean_passes: int = 2) -> bool:
        """``clean_passes`` passes that started after ``since`` ended ok, nothing left to write or trigger."""
        runs = [r for r in self.store.last_runs(50, job="sync") if r.started_at > since and r.status == "ok"]
        if len(runs) < clean_passes:
            return False
        failures = self.store.failure_counts()
        return self.store.outbox_counts()["pending"] == 0 and failures["retriable"] == 0

    def settle(self, since: datetime, timeout: float = 180) -> None:
        wait_until(lambda: self.settled(since), timeout, f"two clean passes ({self.row.scenario}/{self.row.crm})")

    def finish(self) -> None:
        """SIGTERM every live daemon (each must exit 0), then count what their logs say."""
        for daemon in self.live():  # a daemon still importing has no SIGTERM handler yet
            if not daemon.wait_for(event_is("daemon.started"), timeout=60):
                self.row.notes.append(f"{daemon.name} never started")
        codes = {d.name: d.terminate(timeout=60) for d in self.live()}
        bad = {name: code for name, code in codes.items() if code != 0}
        if bad:
            self.row.notes.append(f"exit codes {bad}")
        self.row.passes = len(self.store.last_runs(1_000_000, job="sync"))
        self.row.retries = sum(d.count("retrying") for d in self.daemons)
        outbox, failures = self.store.outbox_counts(), self.store.failure_counts()
        self.row.held_triggers = outbox["failed"]
        if outbox["failed"]:
            self.row.notes.append(f"{outbox['failed']} interrupted deliveries held (failed), not sent twice")
        if outbox["pending"] or failures["retriable"] or failures["permanent"]:
            self.row.notes.append(f"left in the store: outbox {outbox}, failures {failures}")
        secret = self.server.token if self.row.crm == "hubspot" else self.server.client_secret  # type: ignore[union-attr]
        if any(secret in d.text() for d in self.daemons):
            self.row.notes.append("the CRM secret reached a log line")

    def judge(self) -> None:
        """Compare the CRM with a fault-free run over the same records."""
        reference = start_sandbox(self.row.crm, self.rng_seed)
        try:
            for batch in self.batches:
                seed(reference, batch)
            reference_run(reference, f"sqlite:///{self.work / 'reference.db'}")
            got, want = crm_state(self.server), crm_state(reference)
            fired, expected = triggers(self.server), triggers(reference)
        finally:
            reference.stop()
        prop = SCORE_PROP[self.row.crm]
        lost = {i for i, row in want.items() if row[prop] and not got.get(i, {}).get(prop)}
        differing = {i for i, row in want.items() if i not in lost and got.get(i) != row}
        differing |= set(got) - set(want)
        lost_triggers = set(expected) - set(fired)
        unexpected_triggers = set(fired) - set(expected)
        self.row.records = len(want)
        self.row.mismatches = len(differing) + len(unexpected_triggers)
        self.row.lost_writes = len(lost) + len(lost_triggers)
        self.row.duplicate_triggers = sum(n - 1 for n in fired.values() if n > 1)
        self.row.triggers = sum(fired.values())
        self.row.repeated_writes = sum(n - 1 for n in self.writes.repeated().values())
        if differing:
            example = sorted(differing)[0]
            self.row.notes.append(f"e.g. {example}: {got.get(example)} != {want.get(example)}")
        if not expected:
            self.row.notes.append("the clean run fired no trigger: the scenario did not test delivery")

    def close(self) -> None:
        stop_all(self.daemons)
        for daemon in self.daemons:  # kept with --keep
            (self.work / f"{daemon.name}.log").write_text(daemon.text(), encoding="utf-8")
        if self.forkserver is not None:
            self.forkserver.close()
        self.store.close()
        self.server.stop()
        drop_database(self.database)
        self.row.duration_s = time.monotonic() - self.started


def anchor(name: str) -> Callable[[dict[str, Any]], bool]:
    if name.startswith("sync."):
        return event_is(name)
    return event_is("sync.progress", progress=name)


def clean_pass_after(scene: Scene, since: datetime) -> bool:
    return scene.settled(since, clean_passes=1)


# ---- the scenarios -----------------------------------------------------------------------------------------


def scenario_faults(scene: Scene) -> None:
    size, faults = scene.size, scene.server.sandbox.faults
    # `python -m leadsync run`, the real exec path; at info, as deployed (this scenario needs no anchors)
    daemon = scene.spawn(every="2s", lease_ttl_s=5, fork=False, log_level="info")
    if not daemon.wait_for(event_is("daemon.started"), timeout=120):
        raise RuntimeError(daemon.text()[-3000:])
    waves = max(1, int(size.soak_s // 10))
    started, unhealthy, next_wave = time.monotonic(), 0, 0
    while time.monotonic() - started < size.soak_s:
        if next_wave < waves and time.monotonic() - started >= next_wave * size.soak_s / waves:
            scene.add(size.wave)
            next_wave += 1
        if daemon.get("/healthz")[0] != 200:
            unhealthy += 1
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited under faults:\n{daemon.text()[-3000:]}")
        time.sleep(1)
    faults.rate = 0.0
    off, stopped = datetime.now(UTC), time.monotonic()
    wait_until(lambda: clean_pass_after(scene, off), 180, "a clean pass after the faults")
    scene.row.recover_s = time.monotonic() - stopped
    scene.settle(off)
    scene.row.faults = int(scene.server.stats()["faults"])
    scene.row.fault_kind = f"{FAULT_RATE:.0%} of requests for {size.soak_s:g}s"
    if unhealthy:
        scene.row.notes.append(f"/healthz failed {unhealthy} times")


def scenario_sigkill(scene: Scene) -> None:
    target: dict[str, int | None] = {"pid": None}
    fired = threading.Event()

    def kill_on_delivery() -> None:  # runs in the sandbox's request thread, before it answers
        pid = target["pid"]
        if pid is not None:
            target["pid"] = None
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            fired.set()

    on_trigger(scene.server, kill_on_delivery)
    pool = [scene.spawn(every="0.3s", lease_ttl_s=5) for _ in range(3)]
    takeovers: list[float] = []
    points: dict[str, int] = {}
    for i in range(scene.size.kills):
        busy = holder_of(pool, scene.store, timeout=60, lease=scene.lease)
        # a standby must be up (a replacement takes seconds to import): the takeover is then the job lock's
        standbys = [d for d in pool if d is not busy]
        wait_until(lambda: any(d.find(event_is("daemon.started")) for d in standbys), 120, "a standby")  # noqa: B023
        mark = len(busy.events)
        scene.add(scene.size.wave)  # new work for the busy daemon's next pass
        weights = [w for _, w, _ in KILL_POINTS]
        point, _, max_delay = KILL_POINTS[4] if i == 0 else scene.rng.choices(KILL_POINTS, weights=weights)[0]
        if point == "delivery":
            fired.clear()
            target["pid"] = busy.proc.pid
            if not fired.wait(15):  # no qualification in this wave: kill it wherever it is
                target["pid"] = None
                point = "no delivery"
        else:
            busy.wait_for(anchor(point), timeout=5, start=mark)
            time.sleep(scene.rng.uniform(0, max_delay))
        busy.kill()
        killed = time.monotonic()
        points[point] = points.get(point, 0) + 1
        pool.remove(busy)
        pool.append(scene.spawn(every="0.3s", lease_ttl_s=5))
        holder_of(pool, scene.store, timeout=60, lease=scene.lease)
        takeovers.append(time.monotonic() - killed)
    last = scene.add(scene.size.wave)
    scene.settle(last)
    scene.row.kills = scene.row.faults = sum(points.values())
    scene.row.fault_kind = "SIGKILL"
    scene.row.takeovers = len(takeovers)
    scene.row.recover_s = max(takeovers)
    scene.row.notes.append("takeovers " + " ".join(f"{t:.1f}" for t in takeovers))
    scene.row.kill_points = points
    scene.row.notes.append("killed at " + ", ".join(f"{k} {n}" for k, n in sorted(points.items())))
    if not points.get("delivery"):
        scene.row.notes.append("no kill landed during an outbox delivery")


def scenario_pg_restart(scene: Scene) -> None:
    daemon = scene.spawn(every="0.5s", lease_ttl_s=5)
    if not daemon.wait_for(event_is("sync.done"), timeout=120):
        raise RuntimeError(daemon.text()[-3000:])
    recoveries: list[float] = []
    for _ in range(scene.size.cuts):
        scene.settle(datetime.now(UTC), timeout=120)
        mark = len(daemon.events)
        scene.add(scene.size.wave)
        if daemon.wait_for(anchor(scene.rng.choice(["read", "scored"])), timeout=10, start=mark) is None:
            scene.row.notes.append("a cut missed the pass")
        cut_at = datetime.now(UTC)
        scene.row.faults += terminate_backends(scene.database)
        cut = time.monotonic()
        wait_until(lambda at=cut_at: clean_pass_after(scene, at), 120, "a pass that ends ok after the cut")
        recoveries.append(time.monotonic() - cut)
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited when PostgreSQL went away:\n{daemon.text()[-3000:]}")
    last = scene.add(scene.size.wave)
    scene.settle(last)
    scene.row.fault_kind = f"sessions terminated in {scene.size.cuts} cuts"
    scene.row.notes.append("recoveries " + " ".join(f"{t:.1f}" for t in recoveries))
    scene.row.recover_s = max(recoveries)


def scenario_replicas(scene: Scene) -> None:
    began = datetime.now(UTC)
    replicas = [scene.spawn(every="0.5s", lease_ttl_s=30) for _ in range(3)]
    for daemon in replicas:
        if not daemon.wait_for(event_is("daemon.started"), timeout=120):
            raise RuntimeError(daemon.text()[-3000:])
    scene.settle(began, timeout=120)
    takeovers: list[float] = []
    killed_at: dict[str, float] = {}
    for _ in range(scene.size.leader_kills):
        live = scene.live()
        leader = holder_of(live, scene.store, timeout=60, lease=scene.lease)
        mark = len(leader.events)
        scene.add(scene.size.wave)
        leader.wait_for(anchor("scored"), timeout=10, start=mark)
        leader.kill()
        killed = killed_at[leader.name] = time.monotonic()
        holder_of([d for d in live if d is not leader], scene.store, timeout=60, lease=scene.lease)
        takeovers.append(time.monotonic() - killed)
    last = scene.add(scene.size.wave)
    scene.settle(last)
    spans = sorted((s, e, d.name) for d in replicas for s, e in passes(d, killed_at.get(d.name)))
    scene.row.overlapping_passes = sum(
        1 for (_, end_a, a), (start_b, _, b) in itertools.pairwise(spans) if a != b and start_b < end_a
    )
    scene.row.kills = scene.row.faults = len(takeovers)
    scene.row.fault_kind = "SIGKILL of the leader"
    scene.row.notes.append("takeovers " + " ".join(f"{t:.1f}" for t in takeovers))
    scene.row.takeovers = len(takeovers)
    scene.row.recover_s = max(takeovers)


RUNNERS: dict[str, Callable[[Scene], None]] = {
    "faults": scenario_faults,
    "sigkill": scenario_sigkill,
    "pg-restart": scenario_pg_restart,
    "replicas": scenario_replicas,
}


def run_one(scenario: str, crm: str, size: Size, work: Path, rng_seed: int) -> Row:
    scene = Scene(scenario, crm, size, work, rng_seed, fault_rate=FAULT_RATE if scenario == "faults" else 0.0)
    try:
        RUNNERS[scenario](scene)
        scene.finish()
        scene.judge()
    except Exception as exc:  # a scenario that cannot finish is a row with its error, not the end of the matrix
        scene.row.error = f"{type(exc).__name__}: {exc}"[:4000]
        traceback.print_exc()
    finally:
        scene.close()
    return scene.row


def run_matrix(
    crms: tuple[str, ...], size: Size, scenarios: tuple[str, ...] = SCENARIOS, keep: Path | None = None
) -> Iterator[Row]:
    with contextlib.ExitStack() as stack:
        work = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fault-matrix-")))
        for scenario in scenarios:
            for crm in crms:
                yield run_one(scenario, crm, size, work, rng_seed=1000 + SCENARIOS.index(scenario))


COLUMNS = (
    ("scenario", 10),
    ("CRM", 10),
    ("faults injected", 15),
    ("kills", 5),
    ("takeovers", 9),
    ("passes", 6),
    ("retries", 7),
    ("records compared", 16),
    ("mismatches", 10),
    ("duplicate triggers", 18),
    ("lost writes", 11),
    ("time to recover", 15),
)


def table(rows: list[Row]) -> str:
    def cells(row: Row) -> list[str]:
        if row.error:
            return [row.scenario, row.crm, "ERROR", *["-"] * (len(COLUMNS) - 3)]
        recover = f"{row.recover_s:.2f} s" if row.recover_s is not None else "-"
        return [
            row.scenario,
            row.crm,
            str(row.faults),
            str(row.kills),
            str(row.takeovers),
            str(row.passes),
            str(row.retries),
            str(row.records),
            str(row.mismatches),
            str(row.duplicate_triggers),
            str(row.lost_writes),
            recover,
        ]

    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short matrix (make soak)")
    parser.add_argument("--crm", choices=("hubspot", "salesforce", "both"), default="both")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append", help="only these (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the rows there, as JSON")
    parser.add_argument("--keep", type=Path, help="keep configs and daemon logs in this (new) directory")
    args = parser.parse_args()
    # the in-process reference runs log like a pass: only their warnings here, the table is the output
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    crms = CRMS if args.crm == "both" else (args.crm,)
    size = QUICK if args.quick else FULL
    rows: list[Row] = []
    for row in run_matrix(crms, size, tuple(args.scenario or SCENARIOS), keep=args.keep):
        rows.append(row)
        status = row.error or (
            f"{row.records} records, {row.mismatches} mismatches, {row.duplicate_triggers} duplicate triggers, "
            f"{row.lost_writes} lost; {row.duration_s:.0f}s; {'; '.join(row.notes)}"
        )
        print(f"  {row.scenario:10} {row.crm:10} {status}", flush=True)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2), encoding="utf-8")
    print(f"\nfault matrix ({'quick' if args.quick else 'full'}), PostgreSQL state store, a database per scenario")
    print(table(rows))
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
