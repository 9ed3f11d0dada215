"""Read the CRM's next page while the pipeline scores and writes this one.

A pass is a chain of calls: read a page, read its activities, score, write. Done one after another, the
calls wait on each other's CPU time and the portal's limit (HubSpot: 190 per 10 s) goes unused. One
reader thread keeps up to ``depth`` pages ahead, so that reads and writes overlap; the limiter shared by
both threads still caps the rate. Order, errors and early stops are those of the plain iterator: pages
arrive in order, the reader's exception is raised where its page would have been, and closing the
iterator (a write failed, a shutdown) stops the reader before its next call.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

T = TypeVar("T")

#: how long the reader waits on a full queue before looking whether it was told to stop
_POLL_S: Final = 0.1


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_DONE: Final = object()


class _Reader(Generic[T]):
    def __init__(self, pages: Iterator[T], depth: int) -> None:
        self._pages = pages
        self.queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for page in self._pages:
                if not self._put(page):
                    return
        except BaseException as exc:  # handed over to the consumer, raised there
            self._put(_Failed(exc))
            return
        finally:
            close = getattr(self._pages, "close", None)
            if close is not None:
                close()
        self._put(_DONE)

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False


def prefetched(pages: Iterator[T], *, depth: int = 2, name: str = "leadsync-reader") -> Generator[T, None, None]:
    """``pages`` read by a background thread, at most ``depth`` ahead of the consumer (0: not threaded).

    The thread runs in a copy of the caller's context, so its log lines carry the pass's ``run_id``.
    """
    if depth <= 0:
        yield from pages
        return
    reader: _Reader[T] = _Reader(pages, depth)
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(reader.run,), name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = reader.queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        reader.stop.set()
        thread.join()
