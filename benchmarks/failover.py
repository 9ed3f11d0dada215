"""Failover figure: seconds from the SIGKILL of the daemon holding the job to the first CRM write by its standby.

Run: .venv/bin/python benchmarks/failover.py [--ttl 30] [--rounds 2]

Two `leadsync run` replicas share one state store (SQLite file, then PostgreSQL) against the HubSpot sandbox,
with `lease_ttl_s` 30: once with the job lock (`run.job_lock: true`, the default: a PostgreSQL advisory lock
or a file lock beside the SQLite file) and once without it (the lease row alone, which must expire first).
After the first pass, new contacts arrive, the holder is SIGKILLed, and the clock runs until the sandbox sees
the standby's first batch write. Printed, never asserted: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from connectors.sandbox.hubspot import start_hubspot_sandbox  # noqa: E402
from connectors.sandbox.synthetic import generate_people  # noqa: E402
from sync.lease import lease_name  # noqa: E402
from sync.state import StateStore  # noqa: E402
from tests._pg import create_schema, drop_schema  # noqa: E402
from tests.daemon._harness import (  # noqa: E402
    SCORING_NOW,
    DaemonProcess,
    daemon_config,
    daemon_env,
    event_is,
    seed,
    stop_all,
)

WRITES = "POST /crm/v3/objects/contacts/batch/update"
LEASE = lease_name("hubspot:contacts")


def wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def one_failover(state_url: str, job_lock: bool, ttl: float, work: Path, round_no: int) -> float | None:
    people = generate_people(400, seed=round_no, now=SCORING_NOW)
    server = start_hubspot_sandbox(contacts=0, seed=round_no)
    seed(server, people[:200])
    env = daemon_env(server)
    daemons = []
    store = StateStore.open(state_url)
    try:
        for i in range(2):
            config = daemon_config(
                work / f"r{round_no}{i}{job_lock}.yaml",
                server,
                state_url,
                every="0.5s",
                lease_ttl_s=ttl,
                extra={"run": {"host": "127.0.0.1", "port": 0, "lease_ttl_s": ttl, "job_lock": job_lock}},
            )
            daemons.append(DaemonProcess(config, env, name=f"r{i}", log_level="info"))
        for daemon in daemons:
            if not daemon.wait_for(event_is("daemon.started"), timeout=120):
                raise RuntimeError(daemon.text()[-2000:])
        if not wait(lambda: store.lease_holder(LEASE) is not None and _writes(server) > 0, 120):
            raise RuntimeError("no first pass")
        holder_id = store.lease_holder(LEASE)
        assert holder_id is not None
        holder = next(d for d in daemons if d.replica == holder_id[0])
        wait(lambda: holder.count("sync.done") > 0, 60)
        time.sleep(1.0)  # let the pass end; the holder sits between passes, lease renewed
        before = _writes(server)
        seed(server, people[200:])  # work for whoever holds the job
        holder.kill()
        killed = time.monotonic()
        if not wait(lambda: _writes(server) > before, ttl * 3):
            return None
        return time.monotonic() - killed
    finally:
        stop_all(daemons)
        store.close()
        server.stop()


def _writes(server) -> int:  # type: ignore[no-untyped-def]
    return int(server.stats()["by_endpoint"].get(WRITES, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttl", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for backend in ("sqlite", "postgresql"):
            for job_lock in (True, False):
                times: list[float | None] = []
                for r in range(args.rounds if job_lock else 1):  # without the lock a round costs a whole TTL
                    if backend == "sqlite":
                        url, schema = f"sqlite:///{work / f's{r}{job_lock}.db'}", None
                    else:
                        schema, url = create_schema()
                    try:
                        times.append(one_failover(url, job_lock, args.ttl, work, r))
                    finally:
                        if schema:
                            drop_schema(schema)
                done = [t for t in times if t is not None]
                rows.append((backend, job_lock, done, len(times) - len(done)))
                print(f"  {backend:10} job_lock={job_lock!s:5} {[round(t, 2) for t in done]}", flush=True)
    print(f"\nfailover: SIGKILL of the holder -> first CRM write by the standby (lease_ttl_s {args.ttl:g})")
    print(f"{'store':12} {'job lock':9} {'median s':>9} {'max s':>7} {'rounds':>7} {'no takeover':>12}")
    for backend, job_lock, done, missing in rows:
        median = f"{statistics.median(done):9.2f}" if done else f"{'-':>9}"
        worst = f"{max(done):7.2f}" if done else f"{'-':>7}"
        print(f"{backend:12} {'on' if job_lock else 'off':9} {median} {worst} {len(done):7} {missing:12}")


if __name__ == "__main__":
    main()
