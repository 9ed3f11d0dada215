"""The sync pipeline's state store: SQLite (file, the default) or PostgreSQL, schema managed by alembic.

What lives here: run history, per-stream watermarks, the local lead cache (so a rules change can rescore
every lead without reading the CRM), the last score and the last properties written to the CRM per lead
(diff before write), per-record write failures, the workflow-trigger outbox (exactly one item per
qualification) and job leases (several replicas on one PostgreSQL store do not double-process).

Rules every method follows:

- ``StateStore(url)`` never creates tables; call :meth:`StateStore.migrate` (``alembic upgrade head``)
  or use :meth:`StateStore.open`, which migrates and returns the store.
- Every public method is one transaction: a multi-row write lands whole or not at all.
  :meth:`StateStore.commit_pass` puts a whole pass's commit point in one transaction.
- Datetimes going in must be timezone-aware (a naive one raises ``ValueError``: its meaning is ambiguous);
  datetimes coming out are always aware UTC, on both backends.
- JSON columns hold what ``json`` can encode; ``datetime``/``date`` values nested inside them are stored
  as ISO-8601 strings and come back as strings.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    cast,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

__all__ = [
    "DEFAULT_STATE_URL",
    "MAX_VALUE_CHARS",
    "OUTBOX_STATUSES",
    "RUN_STATUSES",
    "CachedLead",
    "FailedWrite",
    "OutboxItem",
    "RunRecord",
    "StateStore",
    "StateStoreError",
    "StoredScore",
    "metadata",
]

DEFAULT_STATE_URL: Final = "sqlite:///leadsync-state.db"
IN_CHUNK: Final = 500  # ids per IN (...) list
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
RUN_STATUSES: Final = ("running", "ok", "failed", "stopped")
OUTBOX_STATUSES: Final = ("pending", "done", "failed")
_MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
#: longest string value kept in the lead cache unless the caller gives the CRM's own limit for the property
#: (HubSpot text properties hold at most 65,536 characters); longer values are cut and counted
MAX_VALUE_CHARS: Final = 65_536
#: the SQLite file (and its -wal/-shm/-journal files) holds every lead's email and attributes: owner only
SQLITE_FILE_MODE: Final = 0o600
ABANDONED: Final = "abandoned"  # what `last_runs(lease=...)` reports for a run whose process is gone
# pg_advisory_xact_lock key serialising concurrent `migrate()` calls of several replicas ("leadsync").
_PG_MIGRATE_LOCK: Final = 0x6C65616473796E63

T = TypeVar("T")
log = structlog.get_logger("leadsync.state")


class StateStoreError(Exception):
    """The state store cannot be used (unreachable database, unsupported URL, ...); the message says why."""


# --------------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True, slots=True)
class CachedLead:
    id: str
    object_type: str
    email: str | None
    properties: dict[str, Any]  # raw CRM properties
    activities: list[dict[str, Any]]  # raw activity dicts
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredScore:
    lead_id: str
    total: int
    fit: int
    engagement: int
    penalties: int
    grade: str
    qualified: bool
    qualified_at: datetime | None
    hits: list[dict[str, Any]]
    reasons: str
    rules_version: str
    scored_at: datetime


@dataclass(frozen=True, slots=True)
class FailedWrite:
    lead_id: str
    object_type: str
    properties: dict[str, str]
    message: str
    retriable: bool
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    lead_id: str
    email: str | None
    qualified_at: datetime
    status: str  # pending | done | failed
    attempts: int
    last_error: str | None
    created_at: datetime
    done_at: datetime | None
    #: set when a delivery attempt started: the CRM may have received it even if no outcome was recorded
    claimed_at: datetime | None = None
    claimed_by: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    status: str  # running | ok | failed | stopped
    summary: dict[str, Any]
    error: str | None


# --------------------------------------------------------------------------------------------------------
# schema (the alembic revisions in sync/migrations/versions/ create exactly this; a test compares them)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC: ``timestamptz`` on PostgreSQL, UTC text on SQLite.

    Naive datetimes are refused (``ValueError``); results are always aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite's DATETIME is text without an offset: store UTC wall time, re-attach UTC on the way out
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

t_runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("status", String(16), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("error", Text, nullable=True),
    CheckConstraint("status IN ('running', 'ok', 'failed', 'stopped')", name="status"),
    Index(None, "job", "started_at"),
)

t_watermarks = Table(
    "watermarks",
    metadata,
    Column("stream", String(200), primary_key=True),
    Column("value", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

t_leads = Table(
    "leads",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("object_type", String(64), nullable=False),
    Column("email", Text, nullable=True),
    Column("email_lower", Text, nullable=True),  # Python str.lower(): unicode-correct on both backends
    Column("properties", JSON, nullable=False),
    Column("activities", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("cached_at", UTCDateTime, nullable=False),
    Index(None, "email_lower"),
)

t_scores = Table(
    "scores",
    metadata,
    Column("lead_id", String(255), primary_key=True),
    Column("total", Integer, nullable=False),
    Column("fit", Integer, nullable=False),
    Column("engagement", Integer, nullable=False),
    Column("penalties", Integer, nullable=False),
    Column("grade", String(32), nullable=False),
    Column("qualified", Boolean, nullable=False),
    Column("qualified_at", UTCDateTime, nullable=True),
    Column("hits", JSON, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("rules_version", String(255), nullable=False),
    Column("scored_at", UTCDateTime, nullable=False),
)

t_written = Table(
    "written",
    metadata,
    Column("lead_id", String(255), primary_key=True),
    Column("properties", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

t_failed_writes = Table(
    "failed_writes",
    metadata,
    Column("lead_id", String(255), primary_key=True),
    Column("object_type", String(64), nullable=False),
    Column("properties", JSON, nullable=False),
    Column("message", Text, nullable=False),
    Column("retriable", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_failed_at", UTCDateTime, nullable=False),
    Column("last_failed_at", UTCDateTime, nullable=False),
)

t_outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", String(255), nullable=False),
    Column("email", Text, nullable=True),
    Column("qualified_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime, nullable=True),
    Column("claimed_at", UTCDateTime, nullable=True),  # revision 0002
    Column("claimed_by", String(255), nullable=True),
    UniqueConstraint("lead_id", "qualified_at"),
    CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
    Index(None, "status", "id"),
)

t_leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)


# --------------------------------------------------------------------------------------------------------
# helpers


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_dumps(value: object) -> str:
    # ensure_ascii (the default) escapes NUL, which PostgreSQL text cannot hold
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: naive datetime {value.isoformat()} refused: pass a timezone-aware datetime")
    return value.astimezone(UTC)


def _enable_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode = WAL``, retried: the switch does not wait on SQLite's busy handler.

    (Several processes opening a brand-new database file at once would otherwise fail with
    "database is locked".) The mode is persistent, so this is a read once the file is in WAL mode.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def describe_store(url: URL) -> str:
    """Where the store is, for messages: the SQLite file, or PostgreSQL host, port, database and user (no password)."""
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or url.query.get("mode") == "memory":
            return "in-memory SQLite database"
        return f"SQLite file {database}"
    host = url.host or "the local socket"
    port = f":{url.port}" if url.port else ""
    user = f" as user {url.username}" if url.username else ""
    return f"PostgreSQL database {url.database or '(default)'!r} on {host}{port}{user}"


def _reason(exc: BaseException, url: URL) -> str:
    """The driver's own message on one line, with the URL's password (should a driver echo it) masked."""
    orig = getattr(exc, "orig", None) or exc
    reason = " ".join(str(orig).split()) or type(orig).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason


def _secure_sqlite_file(path: Path) -> None:
    """Create the state file owner-only (0600) before SQLite does; tighten an existing one others can read.

    SQLite gives the ``-wal``, ``-shm`` and ``-journal`` files it creates the database file's mode, so
    creating the database 0600 covers them; existing ones with group/other bits are tightened too, with a
    warning (a file we do not own cannot be tightened: that is a warning, not an error).
    """
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE))
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))):
        try:
            info = candidate.stat()
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode) or not mode & 0o077:
            continue  # a folder or device given as the path is SQLite's to refuse, not ours to chmod
        try:
            os.chmod(candidate, mode & 0o700)
        except OSError as exc:
            log.warning("state.file_readable_by_others", path=str(candidate), mode=oct(mode), error=exc.strerror)
        else:
            log.warning("state.file_mode_tightened", path=str(candidate), mode=oct(mode), now=oct(mode & 0o700))


def _bounded(value: Any, limit: int) -> tuple[Any, int]:
    """``value`` with every string in it cut to ``limit`` characters, and how many were cut."""
    if isinstance(value, str):
        return (value[:limit], 1) if len(value) > limit else (value, 0)
    if isinstance(value, dict):
        cut = 0
        items = {}
        for key, item in value.items():
            items[key], n = _bounded(item, limit)
            cut += n
        return items, cut
    if isinstance(value, list):
        cut = 0
        elements = []
        for item in value:
            bounded, n = _bounded(item, limit)
            elements.append(bounded)
            cut += n
        return elements, cut
    return value, 0


def normalize_url(url: str | URL) -> URL:
    """Parse a state URL; ``postgresql://`` / ``postgres://`` mean psycopg 3 (the driver leadsync ships)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError, but be generous: the message matters
        raise StateStoreError(f"state url {str(url)!r} is not a database URL ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend == "postgres" or parsed.drivername in ("postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StateStoreError(
            f"state url {parsed.render_as_string(hide_password=True)!r}: unsupported database "
            f"{backend!r}; use sqlite:///path/to/file.db or postgresql+psycopg://user@host/db"
        )
    return parsed


# --------------------------------------------------------------------------------------------------------
# the store


class StateStore:
    """The pipeline's persistent state. Thread-safe (one engine, a connection per call)."""

    def __init__(self, url: str = DEFAULT_STATE_URL, *, clock: Callable[[], datetime] | None = None) -> None:
        self._url = normalize_url(url)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._migrate_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        #: string values cut to their bound by :meth:`upsert_leads` since this store was opened
        self.values_truncated = 0
        try:
            self._engine = self._create_engine(self._url)
        except OSError as exc:
            raise StateStoreError(
                f"cannot create the state store {self.where}: {exc.strerror or exc} ({exc.filename or ''})"
            ) from exc
        self._dialect = self._engine.dialect.name

    @classmethod
    def open(cls, url: str = DEFAULT_STATE_URL) -> StateStore:
        """A store with its schema migrated to the latest revision."""
        store = cls(url)
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    # ---- plumbing ----------------------------------------------------------------------------------

    @staticmethod
    def _create_engine(url: URL) -> Engine:
        json_kw: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": json.loads}
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
            if not in_memory and not url.query.get("uri"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                _secure_sqlite_file(Path(database))
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **json_kw)

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
                # SQLAlchemy emits BEGIN itself (see _sqlite_begin): the sqlite3 module's implicit
                # transaction handling would run SELECTs outside the transaction and skip BEGIN before DDL.
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                    _enable_wal(cursor)
                    cursor.execute("PRAGMA foreign_keys = ON")
                finally:
                    cursor.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Connection) -> None:
                # Writers take the write lock up front (BEGIN IMMEDIATE): with busy_timeout they queue
                # instead of failing with SQLITE_BUSY when a read transaction would need upgrading.
                immediate = conn.get_execution_options().get("leadsync_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

            return engine
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10}, **json_kw)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def url(self) -> str:
        """The store's URL with any password masked (for logs and `leadsync status`)."""
        return self._url.render_as_string(hide_password=True)

    @property
    def where(self) -> str:
        """The store's location for messages (file, or host and database; never the password)."""
        return describe_store(self._url)

    def _now(self) -> datetime:
        return _aware(self._clock(), "clock")

    @contextmanager
    def _begin(self, *, write: bool = True, doing: str = "use") -> Iterator[Connection]:
        """One transaction; a database that cannot be reached or used raises :class:`StateStoreError`.

        Its message names the store (:attr:`where`) and the driver's reason on one line, never the password.
        """
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(leadsync_write=True)
                with conn.begin():
                    yield conn
        except (OperationalError, InterfaceError) as exc:
            raise StateStoreError(f"cannot {doing} the state store at {self.where}: {_reason(exc, self._url)}") from exc
        except StatementError as exc:
            # a value refused while binding parameters (e.g. a naive datetime): raise the plain error
            if not isinstance(exc, DBAPIError) and isinstance(exc.orig, ValueError | TypeError):
                raise exc.orig from exc
            raise

    def _insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        if self._dialect == "sqlite":
            return sqlite.insert(table)
        return postgresql.insert(table)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- schema ------------------------------------------------------------------------------------

    @staticmethod
    def _alembic_config() -> Config:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS_DIR).replace("%", "%%"))
        config.set_main_option("path_separator", "os")
        return config

    def migrate(self) -> None:
        """``alembic upgrade head`` on this store; idempotent, safe to call from several replicas at once."""
        config = self._alembic_config()
        with self._migrate_lock, self._begin(write=True, doing="migrate") as conn:
            if self._dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATE_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def schema_revision(self) -> str | None:
        """The alembic revision the database is at (None: never migrated)."""
        with self._begin(write=False) as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    # ---- runs --------------------------------------------------------------------------------------

    def start_run(self, job: str) -> int:
        with self._begin() as conn:
            run_id = conn.execute(
                t_runs.insert()
                .values(job=job, started_at=self._now(), status="running", summary={}, error=None)
                .returning(t_runs.c.id)
            ).scalar_one()
        return int(run_id)

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any], error: str | None = None) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish_run status must be one of ok, failed, stopped; got {status!r}")
        with self._begin() as conn:
            result = conn.execute(
                update(t_runs)
                .where(t_runs.c.id == run_id)
                .values(finished_at=self._now(), status=status, summary=dict(summary), error=error)
            )
            if result.rowcount == 0:
                raise KeyError(f"no run with id {run_id}")

    def last_runs(self, limit: int = 10, *, job: str | None = None, lease: str | None = None) -> list[RunRecord]:
        """The newest runs first.

        With ``lease`` (the job lease these runs are made under), a run still ``running`` although nobody
        holds that lease now, or whose holder took it after the run started, comes back with status
        ``abandoned``: the process running it is gone (SIGKILL, crash, lost node) and its lease expired.
        """
        query = select(t_runs).order_by(t_runs.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(t_runs.c.job == job)
        with self._begin(write=False) as conn:
            rows = conn.execute(query).all()
            held_since = None
            if lease is not None:
                held_since = conn.execute(
                    select(t_leases.c.acquired_at).where(t_leases.c.name == lease, t_leases.c.expires_at > self._now())
                ).scalar_one_or_none()
        runs = [
            RunRecord(
                id=r.id,
                job=r.job,
                started_at=r.started_at,
                finished_at=r.finished_at,
                status=r.status,
                summary=dict(r.summary or {}),
                error=r.error,
            )
            for r in rows
        ]
        if lease is None:
            return runs
        return [
            replace(
                run,
                status=ABANDONED,
                error=f"abandoned: the process running it no longer holds the lease {lease!r} (killed or crashed)",
            )
            if run.status == "running" and (held_since is None or run.started_at < held_since)
            else run
            for run in runs
        ]

    # ---- watermarks --------------------------------------------------------------------------------

    def get_watermark(self, stream: str) -> datetime | None:
        with self._begin(write=False) as conn:
            value: datetime | None = conn.execute(
                select(t_watermarks.c.value).where(t_watermarks.c.stream == stream)
            ).scalar_one_or_none()
        return value

    def watermarks(self) -> dict[str, datetime]:
        """Every stream's watermark (for `leadsync status`)."""
        with self._begin(write=False) as conn:
            rows = conn.execute(select(t_watermarks.c.stream, t_watermarks.c.value).order_by(t_watermarks.c.stream))
            return {r.stream: r.value for r in rows}

    def set_watermark(self, stream: str, value: datetime | None) -> None:
        """Set a stream's watermark; ``None`` clears it (the next pass reads everything)."""
        with self._begin() as conn:
            self._set_watermark(conn, stream, value)

    def _set_watermark(self, conn: Connection, stream: str, value: datetime | None) -> None:
        if value is None:
            conn.execute(delete(t_watermarks).where(t_watermarks.c.stream == stream))
            return
        ins = self._insert(t_watermarks).values(stream=stream, value=value, updated_at=self._now())
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=[t_watermarks.c.stream],
                set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
            )
        )

    # ---- lead cache --------------------------------------------------------------------------------

    def upsert_leads(self, leads: Sequence[CachedLead], *, max_chars: Mapping[str, int] | None = None) -> int:
        """Insert or replace cached leads (properties and activities are replaced whole).

        Every string value is stored up to a bound: ``max_chars[property]`` (the CRM's own limit for the
        property, when the caller knows it), else :data:`MAX_VALUE_CHARS`, so one hostile 20 MB value cannot
        bloat the store. Returns how many values were cut (also added to :attr:`values_truncated`).
        """
        if not leads:
            return 0
        now = self._now()
        by_id = {lead.id: lead for lead in leads}  # last one wins; one statement must not hit a row twice
        rows = []
        truncated = 0
        for lead in by_id.values():
            properties: dict[str, Any] = {}
            for name, value in lead.properties.items():
                limit = (max_chars or {}).get(name, MAX_VALUE_CHARS)
                properties[name], cut = _bounded(value, limit)
                if cut:
                    log.warning("state.value_truncated", lead_id=lead.id, property=name, max_chars=limit)
                truncated += cut
            activities, cut = _bounded([dict(a) for a in lead.activities], MAX_VALUE_CHARS)
            if cut:
                log.warning("state.value_truncated", lead_id=lead.id, property="activities", max_chars=MAX_VALUE_CHARS)
            truncated += cut
            rows.append(
                {
                    "id": lead.id,
                    "object_type": lead.object_type,
                    "email": lead.email,
                    "email_lower": lead.email.strip().lower() if lead.email else None,
                    "properties": properties,
                    "activities": activities,
                    "updated_at": lead.updated_at,
                    "cached_at": now,
                }
            )
        ins = self._insert(t_leads)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_leads.c.id],
            set_={name: ins.excluded[name] for name in rows[0] if name != "id"},
        )
        with self._begin() as conn:
            for chunk in _chunks(rows, 1000):
                conn.execute(stmt, list(chunk))
        with self._counter_lock:
            self.values_truncated += truncated
        return truncated

    @staticmethod
    def _lead(row: Row[*tuple[Any, ...]]) -> CachedLead:
        return CachedLead(
            id=row.id,
            object_type=row.object_type,
            email=row.email,
            properties=dict(row.properties or {}),
            activities=list(row.activities or []),
            updated_at=row.updated_at,
        )

    _LEAD_COLUMNS: Final = (
        t_leads.c.id,
        t_leads.c.object_type,
        t_leads.c.email,
        t_leads.c.properties,
        t_leads.c.activities,
        t_leads.c.updated_at,
    )

    def iter_leads(self, chunk_size: int = 1000) -> Iterator[list[CachedLead]]:
        """Every cached lead, in chunks of at most ``chunk_size``, ordered by id.

        Keyset pagination (``WHERE id > last ORDER BY id LIMIT n``), one short transaction per chunk:
        memory stays bounded by one chunk and no read transaction is held while the caller works, so
        the caller may write to the store between chunks.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        last: str | None = None
        while True:
            query = select(*self._LEAD_COLUMNS).order_by(t_leads.c.id).limit(chunk_size)
            if last is not None:
                query = query.where(t_leads.c.id > last)
            with self._begin(write=False) as conn:
                chunk = [self._lead(r) for r in conn.execute(query)]
            if not chunk:
                return
            yield chunk
            if len(chunk) < chunk_size:
                return
            last = chunk[-1].id

    def find_lead(self, id_or_email: str) -> CachedLead | None:
        """A lead by exact id, else by email (case-insensitive; the most recently updated if several)."""
        key = id_or_email.strip()
        with self._begin(write=False) as conn:
            row = conn.execute(select(*self._LEAD_COLUMNS).where(t_leads.c.id == key)).first()
            if row is None and key:
                row = conn.execute(
                    select(*self._LEAD_COLUMNS)
                    .where(t_leads.c.email_lower == key.lower())
                    .order_by(t_leads.c.updated_at.desc().nulls_last(), t_leads.c.id)
                    .limit(1)
                ).first()
        return None if row is None else self._lead(row)

    def get_leads(self, lead_ids: Sequence[str]) -> dict[str, CachedLead]:
        found: dict[str, CachedLead] = {}
        with self._begin(write=False) as conn:
            for chunk in _chunks(_unique(lead_ids)):
                for row in conn.execute(select(*self._LEAD_COLUMNS).where(t_leads.c.id.in_(chunk))):
                    found[row.id] = self._lead(row)
        return found

    def count_leads(self) -> int:
        with self._begin(write=False) as conn:
            return int(conn.execute(select(func.count()).select_from(t_leads)).scalar_one())

    def delete_leads(self, lead_ids: Sequence[str]) -> None:
        """Forget leads (deleted or merged away in the CRM): cache, score, written state, failures.

        The outbox keeps its history.
        """
        with self._begin() as conn:
            for chunk in _chunks(_unique(lead_ids)):
                conn.execute(delete(t_leads).where(t_leads.c.id.in_(chunk)))
                for table in (t_scores, t_written, t_failed_writes):
                    conn.execute(delete(table).where(table.c.lead_id.in_(chunk)))

    # ---- scores and written state ------------------------------------------------------------------

    def save_scores(self, scores: Sequence[StoredScore]) -> None:
        with self._begin() as conn:
            self._save_scores(conn, scores)

    def _save_scores(self, conn: Connection, scores: Sequence[StoredScore]) -> None:
        if not scores:
            return
        by_id = {s.lead_id: s for s in scores}
        rows = [
            {
                "lead_id": s.lead_id,
                "total": s.total,
                "fit": s.fit,
                "engagement": s.engagement,
                "penalties": s.penalties,
                "grade": s.grade,
                "qualified": s.qualified,
                "qualified_at": s.qualified_at,
                "hits": [dict(h) for h in s.hits],
                "reasons": s.reasons,
                "rules_version": s.rules_version,
                "scored_at": s.scored_at,
            }
            for s in by_id.values()
        ]
        ins = self._insert(t_scores)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_scores.c.lead_id],
            set_={name: ins.excluded[name] for name in rows[0] if name != "lead_id"},
        )
        for chunk in _chunks(rows, 1000):
            conn.execute(stmt, list(chunk))

    def get_scores(self, lead_ids: Sequence[str]) -> dict[str, StoredScore]:
        found: dict[str, StoredScore] = {}
        with self._begin(write=False) as conn:
            for chunk in _chunks(_unique(lead_ids)):
                for r in conn.execute(select(t_scores).where(t_scores.c.lead_id.in_(chunk))):
                    found[r.lead_id] = StoredScore(
                        lead_id=r.lead_id,
                        total=r.total,
                        fit=r.fit,
                        engagement=r.engagement,
                        penalties=r.penalties,
                        grade=r.grade,
                        qualified=bool(r.qualified),
                        qualified_at=r.qualified_at,
                        hits=list(r.hits or []),
                        reasons=r.reasons,
                        rules_version=r.rules_version,
                        scored_at=r.scored_at,
                    )
        return found

    def get_written(self, lead_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """What was last written to the CRM, per lead (leads never written are absent)."""
        found: dict[str, dict[str, str]] = {}
        with self._begin(write=False) as conn:
            for chunk in _chunks(_unique(lead_ids)):
                query = select(t_written.c.lead_id, t_written.c.properties).where(t_written.c.lead_id.in_(chunk))
                for r in conn.execute(query):
                    found[r.lead_id] = {str(k): str(v) for k, v in (r.properties or {}).items()}
        return found

    def record_written(self, written: Mapping[str, Mapping[str, str]]) -> None:
        """Merge the properties just written into each lead's stored dict (other keys are kept)."""
        with self._begin() as conn:
            self._record_written(conn, written)

    def _record_written(self, conn: Connection, written: Mapping[str, Mapping[str, str]]) -> None:
        if not written:
            return
        now = self._now()
        rows = [
            {"lead_id": lead_id, "properties": {str(k): str(v) for k, v in props.items()}, "updated_at": now}
            for lead_id, props in written.items()
        ]
        ins = self._insert(t_written)
        merged: ColumnElement[Any]
        if self._dialect == "sqlite":
            # values are strings, never null, so RFC 7386 merge-patch is a plain key-wise merge
            merged = func.json_patch(t_written.c.properties, ins.excluded.properties)
        else:
            merged = cast(cast(t_written.c.properties, JSONB).op("||")(cast(ins.excluded.properties, JSONB)), JSON)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_written.c.lead_id],
            set_={"properties": merged, "updated_at": ins.excluded.updated_at},
        )
        for chunk in _chunks(rows, 1000):
            conn.execute(stmt, list(chunk))

    # ---- failed writes -----------------------------------------------------------------------------

    def record_failures(self, failures: Sequence[tuple[str, str, Mapping[str, str], str, bool]]) -> None:
        """Record per-record CRM write errors ``(lead_id, object_type, properties, message, retriable)``.

        A lead already recorded gets the new properties/message/retriable and ``attempts + 1``.
        """
        if not failures:
            return
        now = self._now()
        rows: dict[str, dict[str, Any]] = {}
        for lead_id, object_type, properties, message, retriable in failures:
            previous = rows.get(lead_id)
            rows[lead_id] = {
                "lead_id": lead_id,
                "object_type": object_type,
                "properties": {str(k): str(v) for k, v in properties.items()},
                "message": message,
                "retriable": bool(retriable),
                "attempts": (previous["attempts"] if previous else 0) + 1,
                "first_failed_at": now,
                "last_failed_at": now,
            }
        ins = self._insert(t_failed_writes)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_failed_writes.c.lead_id],
            set_={
                "object_type": ins.excluded.object_type,
                "properties": ins.excluded.properties,
                "message": ins.excluded.message,
                "retriable": ins.excluded.retriable,
                "attempts": t_failed_writes.c.attempts + ins.excluded.attempts,
                "last_failed_at": ins.excluded.last_failed_at,
            },
        )
        with self._begin() as conn:
            for chunk in _chunks(list(rows.values()), 1000):
                conn.execute(stmt, list(chunk))

    def failed_writes(self, *, retriable_only: bool = False, limit: int | None = None) -> list[FailedWrite]:
        """Recorded failures, oldest first."""
        query = select(t_failed_writes).order_by(t_failed_writes.c.first_failed_at, t_failed_writes.c.lead_id)
        if retriable_only:
            query = query.where(t_failed_writes.c.retriable.is_(True))
        if limit is not None:
            query = query.limit(limit)
        with self._begin(write=False) as conn:
            rows = conn.execute(query).all()
        return [
            FailedWrite(
                lead_id=r.lead_id,
                object_type=r.object_type,
                properties={str(k): str(v) for k, v in (r.properties or {}).items()},
                message=r.message,
                retriable=bool(r.retriable),
                attempts=r.attempts,
                first_failed_at=r.first_failed_at,
                last_failed_at=r.last_failed_at,
            )
            for r in rows
        ]

    def failure_counts(self) -> dict[str, int]:
        """``{"retriable": n, "permanent": m}``."""
        counts = {"retriable": 0, "permanent": 0}
        with self._begin(write=False) as conn:
            query = select(t_failed_writes.c.retriable, func.count()).group_by(t_failed_writes.c.retriable)
            for retriable, n in conn.execute(query):
                counts["retriable" if retriable else "permanent"] = int(n)
        return counts

    def clear_failures(self, lead_ids: Sequence[str]) -> None:
        with self._begin() as conn:
            for chunk in _chunks(_unique(lead_ids)):
                conn.execute(delete(t_failed_writes).where(t_failed_writes.c.lead_id.in_(chunk)))

    # ---- workflow-trigger outbox -------------------------------------------------------------------

    def enqueue_triggers(self, items: Sequence[tuple[str, str | None, datetime]]) -> int:
        """Enqueue ``(lead_id, email, qualified_at)``; one item per (lead, qualified_at), ever.

        Returns how many were newly enqueued (duplicates of existing items are ignored).
        """
        with self._begin() as conn:
            return self._enqueue_triggers(conn, items)

    def _enqueue_triggers(self, conn: Connection, items: Sequence[tuple[str, str | None, datetime]]) -> int:
        if not items:
            return 0
        now = self._now()
        rows: dict[tuple[str, datetime], dict[str, Any]] = {}
        for lead_id, email, qualified_at in items:
            key = (lead_id, _aware(qualified_at, f"trigger for {lead_id}: qualified_at"))
            rows.setdefault(
                key,
                {
                    "lead_id": lead_id,
                    "email": email,
                    "qualified_at": qualified_at,
                    "status": "pending",
                    "attempts": 0,
                    "last_error": None,
                    "created_at": now,
                    "done_at": None,
                },
            )
        stmt = (
            self._insert(t_outbox)
            .on_conflict_do_nothing(index_elements=[t_outbox.c.lead_id, t_outbox.c.qualified_at])
            .returning(t_outbox.c.id)
        )
        added = 0
        for chunk in _chunks(list(rows.values()), 1000):
            added += len(conn.execute(stmt, list(chunk)).all())
        return added

    def pending_triggers(self, limit: int = 100) -> list[OutboxItem]:
        """Pending items, oldest first."""
        query = select(t_outbox).where(t_outbox.c.status == "pending").order_by(t_outbox.c.id).limit(limit)
        with self._begin(write=False) as conn:
            rows = conn.execute(query).all()
        return [self._outbox_item(r) for r in rows]

    def outbox_items(self, *, status: str | None = None, limit: int = 100) -> list[OutboxItem]:
        """Outbox items (newest first), optionally of one status (for `leadsync status`)."""
        query = select(t_outbox).order_by(t_outbox.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(t_outbox.c.status == status)
        with self._begin(write=False) as conn:
            rows = conn.execute(query).all()
        return [self._outbox_item(r) for r in rows]

    @staticmethod
    def _outbox_item(r: Row[*tuple[Any, ...]]) -> OutboxItem:
        return OutboxItem(
            id=r.id,
            lead_id=r.lead_id,
            email=r.email,
            qualified_at=r.qualified_at,
            status=r.status,
            attempts=r.attempts,
            last_error=r.last_error,
            created_at=r.created_at,
            done_at=r.done_at,
            claimed_at=r.claimed_at,
            claimed_by=r.claimed_by,
        )

    def claim_trigger(self, item: OutboxItem, owner: str) -> bool:
        """Mark a pending item as being delivered by ``owner``, before the CRM call.

        A compare-and-set on the ``claimed_at`` the caller read: False when another process claimed or
        finished it meanwhile (it must then not be sent). An item found already claimed was possibly
        delivered by a process that died before recording it: check the CRM before sending it again.
        """
        with self._begin() as conn:
            result = conn.execute(
                update(t_outbox)
                .where(
                    t_outbox.c.id == item.id,
                    t_outbox.c.status == "pending",
                    t_outbox.c.claimed_at.is_(None)
                    if item.claimed_at is None
                    else t_outbox.c.claimed_at == item.claimed_at,
                )
                .values(claimed_at=self._now(), claimed_by=owner)
            )
            return bool(result.rowcount)

    def mark_triggered(self, item_id: int) -> None:
        with self._begin() as conn:
            result = conn.execute(
                update(t_outbox)
                .where(t_outbox.c.id == item_id)
                .values(status="done", attempts=t_outbox.c.attempts + 1, done_at=self._now())
            )
            if result.rowcount == 0:
                raise KeyError(f"no outbox item with id {item_id}")

    def mark_trigger_failed(self, item_id: int, error: str, *, final: bool) -> None:
        """Count a failed attempt; ``final`` gives up (status ``failed``), else the item stays pending."""
        with self._begin() as conn:
            result = conn.execute(
                update(t_outbox)
                .where(t_outbox.c.id == item_id)
                .values(
                    status="failed" if final else "pending",
                    attempts=t_outbox.c.attempts + 1,
                    last_error=error,
                )
            )
            if result.rowcount == 0:
                raise KeyError(f"no outbox item with id {item_id}")

    def outbox_counts(self) -> dict[str, int]:
        """Items per status; every status is present (0 when none)."""
        counts = dict.fromkeys(OUTBOX_STATUSES, 0)
        with self._begin(write=False) as conn:
            for status, n in conn.execute(select(t_outbox.c.status, func.count()).group_by(t_outbox.c.status)):
                counts[status] = int(n)
        return counts

    # ---- a pass's commit point ---------------------------------------------------------------------

    def commit_pass(
        self,
        *,
        scores: Sequence[StoredScore],
        written: Mapping[str, Mapping[str, str]],
        triggers: Sequence[tuple[str, str | None, datetime]],
        watermark: tuple[str, datetime] | None,
    ) -> None:
        """Save scores, merge written properties, enqueue triggers and move the watermark: all or nothing."""
        with self._begin() as conn:
            self._save_scores(conn, scores)
            self._record_written(conn, written)
            self._enqueue_triggers(conn, triggers)
            if watermark is not None:
                self._set_watermark(conn, watermark[0], watermark[1])

    # ---- daemon support --------------------------------------------------------------------------

    def ping(self) -> None:
        """One round trip to the database (readiness checks, `leadsync check`). :raises StateStoreError:"""
        with self._begin(write=False, doing="reach") as conn:
            conn.execute(select(1))

    def abandon_runs(self, job: str, *, keep: int | None = None) -> int:
        """Mark ``running`` runs of ``job`` (except run ``keep``) as failed: their process died.

        Called by the replica that takes the job's lease: nobody else may be running the job then.
        """
        query = update(t_runs).where(t_runs.c.job == job, t_runs.c.status == "running")
        if keep is not None:
            query = query.where(t_runs.c.id != keep)
        with self._begin() as conn:
            result = conn.execute(
                query.values(
                    status="failed",
                    finished_at=self._now(),
                    error="interrupted: the process running it stopped (crash, kill or lost lease)",
                )
            )
            return int(result.rowcount)

    # ---- job leases (several replicas on one store) ------------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``owner`` until now + ``ttl``.

        True when ``owner`` holds it afterwards: it was free, expired, or already ``owner``'s (renewal).
        Expiry is judged by the caller's clock: keep ``ttl`` well above the replicas' clock skew.
        """
        if ttl <= timedelta(0):
            raise ValueError("lease ttl must be positive")
        now = self._now()
        ins = self._insert(t_leases).values(name=name, owner=owner, acquired_at=now, expires_at=now + ttl)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_leases.c.name],
            set_={
                "owner": ins.excluded.owner,
                "expires_at": ins.excluded.expires_at,
                "acquired_at": case(
                    (t_leases.c.owner == ins.excluded.owner, t_leases.c.acquired_at),
                    else_=ins.excluded.acquired_at,
                ),
            },
            where=or_(t_leases.c.owner == ins.excluded.owner, t_leases.c.expires_at <= now),
        ).returning(t_leases.c.owner)
        with self._begin() as conn:
            return conn.execute(stmt).first() is not None

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up (no-op unless ``owner`` holds it)."""
        with self._begin() as conn:
            conn.execute(delete(t_leases).where(t_leases.c.name == name, t_leases.c.owner == owner))

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        """``(owner, expires_at)`` of an unexpired lease, else None."""
        with self._begin(write=False) as conn:
            row = conn.execute(
                select(t_leases.c.owner, t_leases.c.expires_at).where(
                    t_leases.c.name == name, t_leases.c.expires_at > self._now()
                )
            ).first()
        return None if row is None else (row.owner, row.expires_at)
