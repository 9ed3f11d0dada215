"""The sync pipeline's state store: SQLite (file, the default) or PostgreSQL, schema managed by alembic.

What lives here: run history, per-stream watermarks, the local lead cache (so a rules change can rescore
every lead without reading the CRM), the last score and the last properties written to the CRM per lead
(diff before write), each lead's score history and outcome (the learning loop), the leads' primary companies
(company fields), per-record write failures,
the workflow-trigger outbox (exactly one item per qualification) and job leases (several replicas on one
PostgreSQL store do not double-process).

Rules every method follows:

- ``StateStore(url)`` never creates tables; call :meth:`StateStore.migrate` (``alembic upgrade head``)
  or use :meth:`StateStore.open`, which migrates and returns the store.
- Every public method is one transaction: a multi-row write lands whole or not at all.
  :meth:`StateStore.commit_pass` puts a whole pass's commit point in one transaction.
- Datetimes going in must be timezone-aware (a naive one raises ``ValueError``: its meaning is ambiguous);
  datetimes coming out are always aware UTC, on both backends.
- JSON columns hold what ``json`` can encode; ``datetime``/``date`` values nested inside them are stored
  as ISO-8601 strings and come back as strings.

Each table family is a mixin in its own module (leads, scores, outbox, runs, failures) on one
:class:`~sync.state.engine.Database`; :class:`StateStore` puts them together with the schema's migrations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Self

from sqlalchemy import Connection, inspect, select, text

from sync.state.companies import Companies
from sync.state.engine import DEFAULT_STATE_URL
from sync.state.failures import FailedWrites
from sync.state.history import ScoreHistory
from sync.state.leads import LeadCache
from sync.state.models import Models
from sync.state.outbox import Outbox
from sync.state.outcomes import Outcomes
from sync.state.records import CachedLead, HistoryRow, StoredOutcome, StoredScore
from sync.state.runs import RunsLeasesWatermarks
from sync.state.scores import Scores

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS_DIR: Final = Path(__file__).resolve().parent.parent / "migrations"  # sync/migrations
# pg_advisory_xact_lock key serialising concurrent `migrate()` calls of several replicas ("leadsync").
_PG_MIGRATE_LOCK: Final = 0x6C65616473796E63
#: the newest revision in sync/migrations/versions/ (a test checks it against alembic's own head). Opening a
#: store at this revision reads ``alembic_version`` and nothing more: alembic (most of a second to import) is
#: imported only when there is a migration to run, so that ``leadsync explain`` starts fast.
HEAD_REVISION: Final = "0008_companies"
#: alembic's version table (its default name; sync/migrations/env.py does not change it)
_VERSION_TABLE: Final = "alembic_version"


class StateStore(
    LeadCache, Scores, ScoreHistory, Outcomes, Outbox, FailedWrites, RunsLeasesWatermarks, Models, Companies
):
    """The pipeline's persistent state. Thread-safe (one engine, a connection per call)."""

    @classmethod
    def open(cls, url: str = DEFAULT_STATE_URL) -> Self:
        """A store with its schema migrated to the latest revision (alembic runs only when it is behind)."""
        store = cls(url)
        try:
            if store._stored_revisions() != [HEAD_REVISION]:
                store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    @staticmethod
    def _alembic_config() -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS_DIR).replace("%", "%%"))
        config.set_main_option("path_separator", "os")
        return config

    def migrate(self) -> None:
        """``alembic upgrade head`` on this store; idempotent, safe to call from several replicas at once."""
        from alembic import command

        config = self._alembic_config()
        with self._migrate_lock, self._begin(write=True, doing="migrate") as conn:
            if self._dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATE_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def schema_revision(self) -> str | None:
        """The alembic revision the database is at (None: never migrated)."""
        with self._begin(write=False) as conn:
            revisions = self._read_revisions(conn)
            if len(revisions) > 1:  # several heads (never in leadsync's linear history): alembic's own error
                from alembic.runtime.migration import MigrationContext

                return MigrationContext.configure(conn).get_current_revision()
        return revisions[0] if revisions else None

    def head_revision(self) -> str | None:
        """The revision :meth:`migrate` upgrades to."""
        return HEAD_REVISION

    def _stored_revisions(self) -> list[str]:
        with self._begin(write=False) as conn:
            return self._read_revisions(conn)

    @staticmethod
    def _read_revisions(conn: Connection) -> list[str]:
        """The rows of alembic's version table, read directly (as alembic reads them; none: no table yet)."""
        if not inspect(conn).has_table(_VERSION_TABLE):
            return []
        return [str(r) for r in conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars()]

    def commit_pass(
        self,
        *,
        scores: Sequence[StoredScore],
        written: Mapping[str, Mapping[str, str]],
        triggers: Sequence[tuple[str, str | None, datetime]],
        watermark: tuple[str, datetime] | None,
        history: Sequence[HistoryRow] = (),
        outcomes: Sequence[StoredOutcome] = (),
        leads: Sequence[CachedLead] = (),
    ) -> int:
        """Cache the leads as read, save their scores (and history rows), merge written properties, enqueue
        triggers, store outcomes and move the watermark: all or nothing, so a crash never leaves a lead
        cached as read but unscored (the next pass would take it as unchanged and skip it). Returns how many
        leads got their first outcome."""
        with self._begin() as conn:
            self._upsert_leads(conn, leads)
            self._save_scores(conn, scores)
            self._append_history(conn, history)
            new_outcomes = self._upsert_outcomes(conn, outcomes)
            self._record_written(conn, written)
            self._enqueue_triggers(conn, triggers)
            if watermark is not None:
                self._set_watermark(conn, watermark[0], watermark[1])
        return new_outcomes

    def ping(self) -> None:
        """One round trip to the database (readiness checks, `leadsync check`). :raises StateStoreError:"""
        with self._begin(write=False, doing="reach") as conn:
            conn.execute(select(1))
