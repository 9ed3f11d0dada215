"""A deadline for one whole HTTP request (connect, send, headers and the full body).

urllib3 (under hubspot-api-client, and under requests for simple-salesforce) applies its read timeout to each
socket read: a server that trickles the body a few bytes a second never trips it, and a sync hangs far past
``timeout_s``. Here the connections of the SDKs' pools register their socket with the deadline active in the
calling thread (:func:`request_deadline`); one watchdog thread shuts a registered socket down when its
deadline passes, so the blocked read returns at once and the SDK raises its ordinary transport error.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

__all__ = ["Deadline", "install", "request_deadline"]

_local = threading.local()


class Deadline:
    """One request's deadline; ``expired`` says the watchdog cut the request off."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._done = False

    def watch(self, sock: Any) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has passed already)."""
        if sock is None:
            return
        with self._lock:
            if self._done:
                return
            self._sockets.append(sock)
        if time.monotonic() >= self.at:
            self.fire()

    def fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            # socket.socket.shutdown, not SSLSocket.shutdown: that one drops the TLS object under the reader
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close(self) -> None:
        """The request ended in time: forget its sockets (they go back to the pool)."""
        with self._lock:
            self._done = True
            self._sockets = []


class _Watchdog:
    """One daemon thread firing deadlines in time order (a thread per request would cost more)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._ids), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="leadsync-request-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                at, _, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            deadline.fire()  # a no-op when the request already ended


_watchdog = _Watchdog()


@contextlib.contextmanager
def request_deadline(seconds: float) -> Iterator[Deadline]:
    """Bound every HTTP request made by this thread inside the block to ``seconds`` in all."""
    deadline = Deadline(seconds)
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    _watchdog.add(deadline)
    try:
        yield deadline
    finally:
        _local.deadline = previous
        deadline.close()


def _watch(sock: Any) -> None:
    deadline: Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _DeadlineHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a kept-alive connection from the pool (a fresh one registers in connect)
        super().request(*args, **kwargs)


class _DeadlineHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


def install(pool_manager: PoolManager) -> PoolManager:
    """Make ``pool_manager``'s connections honour :func:`request_deadline` (returns it, for chaining)."""
    pool_manager.pool_classes_by_scheme = {
        "http": _DeadlineHTTPConnectionPool,
        "https": _DeadlineHTTPSConnectionPool,
    }
    pool_manager.clear()
    return pool_manager
