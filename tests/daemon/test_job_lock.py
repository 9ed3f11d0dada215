"""The job lock under the lease: a dead holder frees the job at once, a cut-off holder is fenced out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from sync.joblock import PgAdvisoryLock, job_lock
from sync.lease import LeaseKeeper, LeaseLost
from sync.state import FencedOut, StateStore
from tests._pg import pg_admin_url

NAME = "sync:hubspot:contacts"
TTL_S = 60.0  # far longer than any takeover below: a takeover that waited for expiry would fail the test


def keeper(store: StateStore, owner: str) -> LeaseKeeper:
    return LeaseKeeper(store, NAME, owner, TTL_S, lock=job_lock(store.connect_url, NAME))


@pytest.fixture
def stores(store_url: str) -> Iterator[tuple[StateStore, StateStore]]:
    """Two replicas' stores on one database."""
    a, b = StateStore.open(store_url), StateStore(store_url)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_the_lock_holder_keeps_the_job_and_a_standby_waits(stores: tuple[StateStore, StateStore]) -> None:
    a, b = keeper(stores[0], "a"), keeper(stores[1], "b")
    try:
        a.tick()
        b.tick()
        assert a.held() and not b.held()
        a.check()
        with pytest.raises(LeaseLost):
            b.check()
        a.tick()  # a renewal keeps the epoch
        assert a.epoch == stores[0].lease_epoch(NAME) == 1
    finally:
        a.stop()
        b.stop()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from sync.joblock import job_lock
    from sync.lease import LeaseKeeper
    from sync.state import StateStore
    store = StateStore(sys.argv[1])
    keeper = LeaseKeeper(store, sys.argv[2], "doomed", 60.0, lock=job_lock(store.connect_url, sys.argv[2]))
    keeper.start()
    assert keeper.held()
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_a_standby_takes_over_within_seconds_of_the_holder_s_sigkill(
    stores: tuple[StateStore, StateStore], store_url: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store_url, NAME], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    standby = keeper(stores[1], "standby")
    try:
        assert proc.stdout is not None
        assert "held" in iter(lambda: proc.stdout.readline().strip(), ""), "the holder never took the lease"  # type: ignore[union-attr]
        standby.tick()
        assert not standby.held()  # the holder is alive: its lock keeps the job
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        standby.start()  # polls every second
        while not standby.held() and time.monotonic() - killed < TTL_S / 3:
            time.sleep(0.05)
        waited = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
        standby.stop()
    assert waited < TTL_S / 3, f"took {waited:.1f}s: the lease's expiry, not the lock, freed the job"
    assert stores[0].lease_epoch(NAME) == 2  # the takeover bumped the fencing token
    holder = stores[0].lease_holder(NAME)
    assert holder is None  # released by stop() after the takeover


@pytest.mark.postgres
def test_a_holder_whose_lock_connection_is_killed_stops_and_its_late_commit_is_refused(pg_url: str) -> None:
    a_store, b_store = StateStore.open(pg_url), StateStore(pg_url)
    a, b = keeper(a_store, "a"), keeper(b_store, "b")
    try:
        a.tick()
        assert a.held() and isinstance(a._job_lock, PgAdvisoryLock) and a._job_lock.backend_pid
        a_store.set_watermark("hubspot:contacts", datetime(2026, 1, 1, tzinfo=UTC))  # fenced, and still ours

        # the database cuts the holder's lock session (an operator, a failover of the connection)
        admin = create_engine(pg_admin_url(), poolclass=NullPool)
        with admin.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": a._job_lock.backend_pid}).scalar()
        admin.dispose()

        b.tick()  # at once, though a's lease row has most of its 60 s left
        assert b.held() and b.epoch == 2
        with pytest.raises(LeaseLost):
            a.check()  # before its next write, the holder proves its lock: it cannot
        with pytest.raises(FencedOut, match="taken over"):
            a_store.set_watermark("hubspot:contacts", datetime(2026, 2, 1, tzinfo=UTC))  # a late commit
        assert b_store.get_watermark("hubspot:contacts") == datetime(2026, 1, 1, tzinfo=UTC)
        b_store.set_watermark("hubspot:contacts", datetime(2026, 3, 1, tzinfo=UTC))  # the new holder writes
    finally:
        a.stop()
        b.stop()
        a_store.close()
        b_store.close()


def test_a_zombie_s_commit_is_refused_on_sqlite_too(tmp_path: object, stores: tuple[StateStore, StateStore]) -> None:
    a_store, b_store = stores
    a, b = keeper(a_store, "a"), keeper(b_store, "b")
    try:
        a.tick()
        assert a._job_lock is not None
        a._job_lock.release()  # the lock is gone without the holder noticing yet (as after a stall)
        b.tick()
        assert b.held() and b.epoch == 2
        with pytest.raises(FencedOut):
            a_store.set_watermark("hubspot:contacts", datetime(2026, 2, 1, tzinfo=UTC))
        with pytest.raises(LeaseLost):
            a.check()
    finally:
        a.stop()
        b.stop()
