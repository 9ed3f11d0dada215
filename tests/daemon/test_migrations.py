"""Upgrading a state store that a previous release filled: ``alembic upgrade head`` keeps every row.

The database is brought to :data:`PREVIOUS` (the schema the last release shipped), filled through the
store's own API the way that release's daemon would have filled it, then upgraded the way ``leadsync run``
and ``leadsync migrate`` do it. Every row of every table must come out with the values it went in with.
When a new revision is added, bump nothing here: the test upgrades from 0001 through all of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, inspect, select

import sync
from sync.state import CachedLead, StateStore, StoredScore, t_leases

PREVIOUS = "0001"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(sync.__file__).resolve().parent / "migrations"))
    config.set_main_option("path_separator", "os")
    return config


def upgrade_to(store: StateStore, revision: str) -> None:
    config = alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def fill(store: StateStore) -> None:
    """Rows in every table, written by the API (which writes no column newer than the release's schema)."""
    run = store.start_run("sync")
    store.finish_run(run, "ok", {"leads_read": 3, "rules_version": "abc"})
    store.start_run("sync")  # one left running, as a crash leaves it
    store.set_watermark("hubspot:contacts", T0)
    store.upsert_leads(
        [
            CachedLead(f"{i}", "contact", f"lead{i}@acme.com", {"jobtitle": "VP", "n": i}, [{"kind": "visit"}], T0)
            for i in range(3)
        ]
    )
    store.save_scores(
        [
            StoredScore(f"{i}", 70 + i, 40, 30, 0, "hot", True, T0, [{"rule": "vp", "points": 15}], "+15 VP", "abc", T0)
            for i in range(3)
        ]
    )
    store.record_written({"0": {"leadsync_score": "70"}, "1": {"leadsync_score": "71"}})
    store.record_failures([("2", "contact", {"leadsync_score": "72"}, "HubSpot 500", True)])
    store.enqueue_triggers([("0", "lead0@acme.com", T0), ("1", "lead1@acme.com", T0 + timedelta(seconds=1))])
    with store.engine.begin() as conn:  # one delivered, one pending (mark_triggered predates no column)
        conn.exec_driver_sql("UPDATE outbox SET status = 'done', attempts = 1 WHERE lead_id = '0'")
    with store.engine.begin() as conn:  # a held lease, in the columns every revision has (0006 adds the epoch)
        conn.execute(
            t_leases.insert().values(
                name="sync:hubspot:contacts", owner="replica-a", acquired_at=T0, expires_at=T0 + timedelta(days=9999)
            )
        )


def snapshot(store: StateStore) -> dict[str, list[dict[str, Any]]]:
    meta = MetaData()
    meta.reflect(store.engine)
    rows: dict[str, list[dict[str, Any]]] = {}
    with store.engine.connect() as conn:
        for name, table in meta.tables.items():
            if name == "alembic_version":
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            rows[name] = [dict(r._mapping) for r in conn.execute(select(table).order_by(*order))]
    return rows


@pytest.mark.parametrize("entry", ["migrate", "open"])
def test_upgrade_from_the_previous_release_keeps_every_row(store_url: str, entry: str) -> None:
    store = StateStore(store_url)
    try:
        upgrade_to(store, PREVIOUS)
        assert store.schema_revision() == PREVIOUS
        fill(store)
        before = snapshot(store)
        assert all(before[t] for t in before), {t: len(r) for t, r in before.items()}
    finally:
        store.close()

    # what `leadsync migrate` and `leadsync run` do
    upgraded = StateStore(store_url) if entry == "migrate" else StateStore.open(store_url)
    try:
        if entry == "migrate":
            upgraded.migrate()
        assert upgraded.schema_revision() == upgraded.head_revision()
        after = snapshot(upgraded)
        assert after.keys() >= before.keys()
        # tables added by later revisions (0003: score_history, outcomes) start empty
        assert all(not after[t] for t in after.keys() - before.keys()), sorted(after.keys() - before.keys())
        for table, rows in before.items():
            assert len(after[table]) == len(rows), table
            for old, new in zip(rows, after[table], strict=True):
                assert {k: new[k] for k in old} == old, table  # every old column, same value
        new_columns = {t: set(after[t][0]) - set(before[t][0]) for t in before}
        # the new columns start empty (an item never claimed was never sent), but for the lease's epoch,
        # which starts at 1: a takeover after the upgrade makes it 2, fencing out any holder from before
        assert new_columns["leases"] == {"epoch"} and [r["epoch"] for r in after["leases"]] == [1]
        for table, columns in new_columns.items():
            assert all(row[c] is None for row in after[table] for c in columns if table != "leases"), table

        # and the upgraded store works through its API
        assert [i.lead_id for i in upgraded.pending_triggers()] == ["1"]
        assert upgraded.get_scores(["0", "1", "2"]).keys() == {"0", "1", "2"}
        assert upgraded.get_watermark("hubspot:contacts") == T0
        assert upgraded.failed_writes()[0].lead_id == "2"
        pending = upgraded.pending_triggers()[0]
        assert pending.claimed_at is None and upgraded.claim_trigger(pending, "replica-b")
        assert upgraded.abandon_runs("sync") == 1
    finally:
        upgraded.close()


def test_downgrade_to_the_previous_release_and_back(store_url: str) -> None:
    """A rollback of the release keeps the data too (downgrade drops only the new columns)."""
    store = StateStore.open(store_url)
    try:
        fill(store)
        config = alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, PREVIOUS)
        assert store.schema_revision() == PREVIOUS
        assert "claimed_at" not in {c["name"] for c in inspect(store.engine).get_columns("outbox")}
        store.migrate()
        assert store.schema_revision() == store.head_revision()
        assert len(store.outbox_items()) == 2
    finally:
        store.close()


def test_leadsync_migrate_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from leadsync.cli import app

    config = tmp_path / "leadsync.yaml"
    config.write_text(
        f"crm: hubspot\nhubspot: {{access_token: t}}\nstate: {{url: 'sqlite:///{tmp_path / 'state.db'}'}}\n"
    )
    runner = CliRunner()
    first = runner.invoke(app, ["migrate", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert "migrated from empty to" in first.output
    again = runner.invoke(app, ["migrate", "--config", str(config)])
    assert again.exit_code == 0 and "up to date" in again.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("crm: hubspot\nhubspot: {access_token: t}\nstate: {url: 'mysql://x@y/z'}\n")
    failed = runner.invoke(app, ["migrate", "--config", str(bad)])
    assert failed.exit_code == 2 and "unsupported database" in failed.output
