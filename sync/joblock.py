"""The job lock under a lease: held by a live process only, so a dead holder frees the job at once.

A lease row alone (:mod:`sync.lease`) frees a dead holder's job only when it expires, a TTL after its last
renewal. The lock here is released by the operating system or the database the moment its holder dies:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection of its own. When the
  holder's process dies, its connection closes and the server drops the lock; when the connection is cut
  while the process lives (``pg_terminate_backend``, a network partition), the next :meth:`JobLock.alive`
  round trip fails, so the holder learns it before its next write.
- SQLite: an OS file lock (``filelock``, ``flock`` on POSIX) beside the database file, freed by the kernel
  when the process dies; it covers the one host a SQLite file can be shared on.

An in-memory SQLite store has no lock: its lease is only ever seen by one process anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from pathlib import Path
from typing import Any, Protocol

import structlog
from filelock import FileLock, Timeout
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import NullPool

__all__ = ["FileJobLock", "JobLock", "PgAdvisoryLock", "job_lock"]

log = structlog.get_logger("leadsync.lease")

#: libpq settings that make a dead or unreachable server show within seconds instead of the OS's minutes
_PG_LIVENESS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
    "application_name": "leadsync job lock",
}


class JobLock(Protocol):
    """Non-blocking, process-wide: at most one live process holds it."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free (True), or say it is held elsewhere (False); never waits."""
        ...

    def alive(self) -> bool:
        """Whether this process still holds it, proven now (a round trip where there is a server)."""
        ...

    def release(self) -> None: ...


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` from the lease name."""
    digest = hashlib.sha256(f"leadsync:lease:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PgAdvisoryLock:
    """A session advisory lock on a dedicated connection (not from the store's pool)."""

    def __init__(self, url: URL, name: str) -> None:
        self.key = advisory_key(name)
        self._engine = create_engine(url, poolclass=NullPool, connect_args=_PG_LIVENESS)
        self._conn: Connection | None = None
        self._held = False
        #: the server process of the lock's session (operators: ``pg_terminate_backend`` frees the job)
        self.backend_pid: int | None = None
        self._lock = threading.Lock()  # the keeper's thread renews, the job's thread checks before writes

    def try_acquire(self) -> bool:
        with self._lock:
            if self._held:
                return self._alive()
            try:
                if self._conn is None:
                    self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                got = self._conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
            except Exception as exc:
                log.warning("lease.lock_unavailable", error=str(exc).splitlines()[0], error_type=type(exc).__name__)
                self._drop()
                return False
            self._held = bool(got)
            if self._held:
                self.backend_pid = self._conn.execute(text("SELECT pg_backend_pid()")).scalar()
            return self._held

    def alive(self) -> bool:
        with self._lock:
            return self._alive()

    def _alive(self) -> bool:
        if not self._held or self._conn is None:
            return False
        try:
            # the lock lives exactly as long as this session: a round trip proves both
            self._conn.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("lease.lock_connection_lost", error=str(exc).splitlines()[0], error_type=type(exc).__name__)
            self._drop()
            return False
        return True

    def release(self) -> None:
        with self._lock:
            if self._held and self._conn is not None:
                with contextlib.suppress(Exception):  # closing the session below releases it all the same
                    self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            self._drop()
            self._engine.dispose()

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class FileJobLock:
    """An OS file lock beside the SQLite database (``<db>.<lease>.lock``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # thread_local=False: the keeper's thread takes it, the job's thread asks about it
        self._lock = FileLock(str(path), timeout=0, thread_local=False)

    def try_acquire(self) -> bool:
        if self._lock.is_locked:
            return True
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def alive(self) -> bool:
        return self._lock.is_locked  # a file lock is lost only with the process

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)


def job_lock(url: URL, name: str) -> JobLock | None:
    """The job lock for the lease ``name`` of the store at ``url``; None for an in-memory SQLite store."""
    if url.get_backend_name() == "postgresql":
        return PgAdvisoryLock(url, name)
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory" or url.query.get("uri"):
        return None
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return FileJobLock(Path(database).expanduser().with_name(f"{Path(database).name}.{safe}.lock"))
