"""Issue 19 on the state store: clear errors naming the store, owner-only files, abandoned runs, bounded values."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.state import MAX_VALUE_CHARS, CachedLead, StateStore, StateStoreError

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LEASE = "sync:hubspot:contacts"


class Clock:
    """A clock the test moves by hand (lease expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_store(store_url: str, clock: Clock) -> Iterator[StateStore]:
    store = StateStore(store_url, clock=clock)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- 5: an unreachable store is one line naming it, never its password ------------------------------


def test_unreachable_postgresql_raises_one_line_naming_host_and_database() -> None:
    store = StateStore("postgresql+psycopg://leadsync:s3cr3t-pw@127.0.0.1:1/leads_prod")
    try:
        for call in (store.ping, store.schema_revision, store.migrate, store.last_runs, store.count_leads):
            with pytest.raises(StateStoreError) as info:
                call()
            message = str(info.value)
            assert "127.0.0.1:1" in message and "'leads_prod'" in message, message
            assert "s3cr3t-pw" not in message and "\n" not in message
    finally:
        store.close()


def test_sqlite_store_that_cannot_be_created_raises_state_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(StateStoreError, match="not-a-folder"):
        StateStore(f"sqlite:///{blocker / 'state.db'}")


def test_sqlite_path_that_is_a_folder_raises_state_store_error_and_keeps_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "folder.db"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    store = StateStore(f"sqlite:///{folder}")
    try:
        with pytest.raises(StateStoreError, match=r"SQLite file .*folder\.db"):
            store.ping()
    finally:
        store.close()
    assert mode_of(folder) == 0o755  # not ours to chmod


# ---- 6: the SQLite files are owner-only -----------------------------------------------------------


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("loose_umask")
def test_sqlite_state_file_and_its_wal_and_shm_are_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "leadsync-state.db"
    with StateStore.open(f"sqlite:///{path}") as store:
        store.upsert_leads([CachedLead("1", "contact", "a@b.co", {"firstname": "A"}, [], T0)])
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        assert all(f.exists() for f in files)  # WAL mode: all three exist while a connection is open
        assert {f.name: mode_of(f) for f in files} == {f.name: 0o600 for f in files}


@pytest.mark.usefixtures("loose_umask")
def test_existing_state_files_readable_by_others_are_tightened_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old-state.db"
    with StateStore.open(f"sqlite:///{path}") as store:
        store.upsert_leads([CachedLead("1", "contact", "a@b.co", {}, [], T0)])
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes(b"")  # as a crashed writer would leave it
    for f in (path, wal):
        f.chmod(0o644)
    with StateStore.open(f"sqlite:///{path}") as store:
        assert store.count_leads() == 1
        assert mode_of(path) == 0o600 and mode_of(wal) == 0o600


# ---- 14: a killed run shows as abandoned once its lease expired ------------------------------------


def test_running_run_is_abandoned_once_its_lease_expired(timed_store: StateStore, clock: Clock) -> None:
    assert timed_store.acquire_lease(LEASE, "host-a:41", timedelta(seconds=60))
    done = timed_store.start_run("sync")
    timed_store.finish_run(done, "ok", {"leads_read": 3})
    killed = timed_store.start_run("sync")  # then SIGKILL: nothing finishes it, nobody releases the lease

    clock.now = T0 + timedelta(seconds=59)
    by_id = {r.id: r for r in timed_store.last_runs(lease=LEASE)}
    assert by_id[killed].status == "running"  # the lease may still be renewed: maybe alive
    assert [r.status for r in timed_store.last_runs()] == ["running", "ok"]  # without a lease: stored status

    clock.now = T0 + timedelta(seconds=61)
    by_id = {r.id: r for r in timed_store.last_runs(lease=LEASE)}
    assert by_id[killed].status == "abandoned" and LEASE in (by_id[killed].error or "")
    assert by_id[done].status == "ok" and by_id[done].error is None


def test_run_started_before_the_current_holder_took_the_lease_is_abandoned(
    timed_store: StateStore, clock: Clock
) -> None:
    assert timed_store.acquire_lease(LEASE, "host-a:41", timedelta(seconds=60))
    dead = timed_store.start_run("sync")
    clock.now = T0 + timedelta(seconds=90)
    assert timed_store.acquire_lease(LEASE, "host-b:7", timedelta(seconds=60))  # a standby took over
    clock.now = T0 + timedelta(seconds=91)
    alive = timed_store.start_run("sync")
    by_id = {r.id: r.status for r in timed_store.last_runs(lease=LEASE)}
    assert by_id == {dead: "abandoned", alive: "running"}
    assert timed_store.last_runs(lease="sync:salesforce:leads")[0].status == "abandoned"  # nobody holds it


# ---- 15: values are stored up to a bound, and the cuts are counted -----------------------------------


def test_huge_values_are_cut_to_the_bound_and_counted(store: StateStore) -> None:
    huge = "x" * (5 * 1024 * 1024)
    cut = store.upsert_leads(
        [
            CachedLead(
                "1",
                "contact",
                "a@b.co",
                {"notes": huge, "jobtitle": "VP " * 100, "firstname": "Ann", "employees": 40},
                [{"kind": "email", "subject": huge, "nested": {"body": [huge]}}],
                T0,
            ),
            CachedLead("2", "contact", "b@b.co", {"firstname": "Bob"}, [], T0),
        ],
        max_chars={"jobtitle": 128},
    )
    assert cut == 4 and store.values_truncated == 4
    got = store.get_leads(["1", "2"])
    props = got["1"].properties
    assert props["notes"] == "x" * MAX_VALUE_CHARS and MAX_VALUE_CHARS == 65_536
    assert props["jobtitle"] == ("VP " * 100)[:128]
    assert props["firstname"] == "Ann" and props["employees"] == 40
    activity = got["1"].activities[0]
    assert len(activity["subject"]) == MAX_VALUE_CHARS and len(activity["nested"]["body"][0]) == MAX_VALUE_CHARS
    assert got["2"].properties == {"firstname": "Bob"}
    assert store.upsert_leads([CachedLead("2", "contact", "b@b.co", {"firstname": "Bob"}, [], T0)]) == 0
    assert store.values_truncated == 4


def test_a_huge_value_does_not_grow_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore.open(f"sqlite:///{path}") as store:
        store.upsert_leads([CachedLead("1", "contact", "a@b.co", {"notes": "y" * (20 * 1024 * 1024)}, [], T0)])
    assert path.stat().st_size < 1024 * 1024
