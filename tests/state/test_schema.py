"""Schema management: alembic migrations, backend setup."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from sync.state import StateStore, StateStoreError, metadata, normalize_url

#: the newest alembic revision (sync/migrations/versions/)
HEAD = "0008_companies"
TABLES = {
    "runs",
    "watermarks",
    "leads",
    "scores",
    "written",
    "failed_writes",
    "outbox",
    "leases",
    "score_history",
    "outcomes",
    "models",
    "companies",
    "lead_companies",
}


def test_constructor_does_not_create_tables(store_url: str) -> None:
    store = StateStore(store_url)
    try:
        assert set(inspect(store.engine).get_table_names()) == set()
        assert store.schema_revision() is None
    finally:
        store.close()


def test_migrate_creates_every_table_and_is_idempotent(store_url: str) -> None:
    store = StateStore(store_url)
    try:
        store.migrate()
        store.migrate()  # twice is fine
        assert set(inspect(store.engine).get_table_names()) == TABLES | {"alembic_version"}
        assert store.schema_revision() == store.head_revision() == HEAD
    finally:
        store.close()
    reopened = StateStore.open(store_url)  # a restart migrates again: a no-op
    try:
        assert reopened.schema_revision() == HEAD
    finally:
        reopened.close()


def test_migration_matches_the_table_definitions(store: StateStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_migrate_works_from_any_cwd(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = StateStore.open(store_url)
    try:
        assert store.schema_revision() == HEAD
    finally:
        store.close()


def test_concurrent_migrate_from_two_replicas(store_url: str) -> None:
    stores = [StateStore(store_url), StateStore(store_url)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def migrate(s: StateStore) -> None:
        try:
            barrier.wait()
            s.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert errors == []
        assert all(s.schema_revision() == HEAD for s in stores)
    finally:
        for s in stores:
            s.close()


def test_sqlite_uses_wal_and_a_busy_timeout(sqlite_url: str) -> None:
    store = StateStore.open(sqlite_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() >= 1000
    finally:
        store.close()


def test_sqlite_file_in_a_missing_directory(tmp_path: Path) -> None:
    store = StateStore.open(f"sqlite:///{tmp_path / 'new' / 'dir' / 'state.db'}")
    try:
        assert store.count_leads() == 0
    finally:
        store.close()


def test_url_normalisation() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(StateStoreError, match="unsupported database"):
        normalize_url("mysql://u:secret@h/db")
    with pytest.raises(StateStoreError, match="not a database URL"):
        normalize_url("not a url")


def test_unreachable_database_gives_one_clear_error() -> None:
    store = StateStore("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    try:
        with pytest.raises(StateStoreError, match="cannot migrate the state store") as info:
            store.migrate()
        assert "secret" not in str(info.value)
    finally:
        store.close()


def test_a_pass_can_end_partial(store: StateStore) -> None:
    """0007: a pass that refused some records is recorded as such, not squeezed into ok or failed."""
    run_id = store.start_run("hubspot:contacts")
    store.finish_run(run_id, "partial", {"refused": 1})
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM runs WHERE id = :id"), {"id": run_id}).scalar_one() == "partial"
