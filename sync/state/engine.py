"""The one engine and transaction helper every table family uses: URLs, SQLite set-up, errors naming the store."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Row, Select, Table, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.elements import ColumnElement

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

DEFAULT_STATE_URL: Final = "sqlite:///leadsync-state.db"
IN_CHUNK: Final = 500  # ids per IN (...) list
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
#: the SQLite file (and its -wal/-shm/-journal files) holds every lead's email and attributes: owner only
SQLITE_FILE_MODE: Final = 0o600

T = TypeVar("T")
log = structlog.get_logger("leadsync.state")


class StateStoreError(Exception):
    """The state store cannot be used (unreachable database, unsupported URL, ...); the message says why."""


class FencedOut(StateStoreError):
    """A write of a replica that lost its job lease: another replica took the job over (a higher epoch)."""

    def __init__(self, lease: str, epoch: int, current: int | None) -> None:
        super().__init__(
            f"write refused: lease {lease!r} was taken over (epoch {current}, this replica holds {epoch}); "
            "another replica runs the job now"
        )
        self.lease, self.epoch, self.current = lease, epoch, current


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_dumps(value: object) -> str:
    # ensure_ascii (the default) escapes NUL, which PostgreSQL text cannot hold
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def aware(value: datetime, what: str) -> datetime:
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


class Database:
    """One engine per store, a connection and transaction per call (:meth:`_begin`); the table families build on it.

    Thread-safe. ``clock`` stamps every row (tests move it by hand).
    """

    def __init__(self, url: str = DEFAULT_STATE_URL, *, clock: Callable[[], datetime] | None = None) -> None:
        self._url = normalize_url(url)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._migrate_lock = threading.Lock()
        #: (lease, epoch) every write must still match, once this process runs a job under a lease
        self._fence: tuple[str, int] | None = None
        self._counter_lock = threading.Lock()
        #: string values cut to their bound by ``upsert_leads`` since this store was opened
        self.values_truncated = 0
        try:
            self._engine = self._create_engine(self._url)
        except OSError as exc:
            raise StateStoreError(
                f"cannot create the state store {self.where}: {exc.strerror or exc} ({exc.filename or ''})"
            ) from exc
        self._dialect = self._engine.dialect.name

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
    def connect_url(self) -> URL:
        """The URL to open another connection with (the job lock's); holds the password: never render it."""
        return self._url

    @property
    def where(self) -> str:
        """The store's location for messages (file, or host and database; never the password)."""
        return describe_store(self._url)

    def _now(self) -> datetime:
        return aware(self._clock(), "clock")

    def fence(self, lease: str, epoch: int) -> None:
        """From now on every write of this store must find ``lease`` still at ``epoch``, else :class:`FencedOut`.

        Set by the job lease's keeper when it takes (or renews) the lease, so that a replica that lost the lease
        without knowing yet (a stalled process, its lock connection cut) cannot commit over its successor.
        """
        self._fence = (lease, epoch)

    def _check_fence(self, conn: Connection) -> None:
        if self._fence is None:
            return
        lease, epoch = self._fence
        # FOR SHARE: a takeover's epoch bump waits for this transaction, or this one sees the new epoch
        lock = " FOR SHARE" if self._dialect == "postgresql" else ""
        current = conn.execute(text(f"SELECT epoch FROM leases WHERE name = :name{lock}"), {"name": lease}).scalar()
        if current != epoch:
            raise FencedOut(lease, epoch, current)

    @contextmanager
    def _begin(self, *, write: bool = True, doing: str = "use", fenced: bool = True) -> Iterator[Connection]:
        """One transaction; a database that cannot be reached or used raises :class:`StateStoreError`.

        Its message names the store (:attr:`where`) and the driver's reason on one line, never the password.
        A write checks the fence first (:meth:`fence`); the lease's own bookkeeping passes ``fenced=False``.
        """
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(leadsync_write=True)
                with conn.begin():
                    if write and fenced:
                        self._check_fence(conn)
                    yield conn
        except (OperationalError, InterfaceError) as exc:
            raise StateStoreError(f"cannot {doing} the state store at {self.where}: {_reason(exc, self._url)}") from exc
        except StatementError as exc:
            # a value refused while binding parameters (e.g. a naive datetime): raise the plain error
            if not isinstance(exc, DBAPIError) and isinstance(exc.orig, ValueError | TypeError):
                raise exc.orig from exc
            raise

    def _rows_with_keys(
        self, query: Select[*tuple[Any, ...]], key: ColumnElement[str], keys: Sequence[str]
    ) -> list[Row[*tuple[Any, ...]]]:
        """The rows of ``query`` whose ``key`` is one of ``keys``: duplicates dropped, ``IN`` lists of
        :data:`IN_CHUNK` (a million ids would exceed the driver's parameter limit), one read transaction."""
        with self._begin(write=False) as conn:
            return [row for chunk in chunks(unique(keys)) for row in conn.execute(query.where(key.in_(chunk)))]

    def _keyset_pages(
        self, query: Select[*tuple[Any, ...]], key: ColumnElement[str], chunk_size: int, *, after: str | None = None
    ) -> Iterator[Sequence[Row[*tuple[Any, ...]]]]:
        """``query`` in pages of at most ``chunk_size`` rows ordered by the unique ``key``, after ``after``.

        Keyset pagination (``WHERE key > last ORDER BY key LIMIT n``), one short transaction per page: memory
        stays bounded by one page and no read transaction is held while the caller works, so the caller may
        write to the store between pages.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        last = after
        while True:
            page = query.order_by(key).limit(chunk_size)
            if last is not None:
                page = page.where(key > last)
            with self._begin(write=False) as conn:
                rows = conn.execute(page).fetchall()
            if not rows:
                return
            yield rows
            if len(rows) < chunk_size:
                return
            last = rows[-1]._mapping[key]

    def _insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        # each dialect's module imported when used: a SQLite store never loads the PostgreSQL dialect (start-up)
        if self._dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
