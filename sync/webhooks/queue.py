"""The bounded, coalescing queue between the webhook endpoint and the micro-passes.

The endpoint only puts ids in (it answers within milliseconds, whatever the CRM is doing); the micro-pass
thread takes everything gathered once the first id of a batch has waited ``window_s``. An id notified again
while it waits is one entry (duplicates are free), keeping its first arrival (for the latency metric) and
the latest modification time it was told of (an older, reordered notification changes nothing). When the
queue is full, new ids are dropped and a catch-up is flagged: the scheduled incremental pass, which reads by
modification time, covers them anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from sync.webhooks.events import Notice

__all__ = ["NoticeQueue", "Offered"]


class Offered:
    """How many notices of one request were queued, merged with ones already waiting, or dropped."""

    __slots__ = ("dropped", "merged", "queued")

    def __init__(self) -> None:
        self.queued = self.merged = self.dropped = 0


class NoticeQueue:
    """At most ``capacity`` distinct ids waiting; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._pending: dict[str, Notice] = {}
        self._first_at: float | None = None  # monotonic arrival of the oldest waiting id
        self._cond = threading.Condition()
        self._catch_up = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending)

    def offer(self, notices: Iterable[Notice]) -> Offered:
        """Queue what fits; never blocks (the endpoint must answer fast)."""
        done = Offered()
        with self._cond:
            for notice in notices:
                known = self._pending.get(notice.record_id)
                if known is not None:
                    self._pending[notice.record_id] = _merge(known, notice)
                    done.merged += 1
                elif len(self._pending) >= self.capacity:
                    done.dropped += 1
                    self._catch_up = True
                else:
                    if not self._pending:
                        self._first_at = time.monotonic()
                    self._pending[notice.record_id] = notice
                    done.queued += 1
            if done.queued:
                self._cond.notify_all()
        return done

    def mark_catch_up(self) -> None:
        """Something was not queued (a standby replica, a full queue): the next scheduled pass must run soon."""
        with self._cond:
            self._catch_up = True

    def take_catch_up(self) -> bool:
        """Whether a catch-up was flagged since the last call (and clear it)."""
        with self._cond:
            flagged, self._catch_up = self._catch_up, False
            return flagged

    def take(self, window_s: float, stop: threading.Event, poll_s: float = 0.5) -> list[Notice]:
        """Wait for a first id, then until it has waited ``window_s``; returns all that gathered (empty once
        ``stop`` is set)."""
        with self._cond:
            while not self._pending:
                if stop.is_set():
                    return []
                self._cond.wait(poll_s)
            while not stop.is_set():
                first = self._first_at if self._first_at is not None else time.monotonic()
                left = first + window_s - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, poll_s))
            taken = list(self._pending.values())
            self._pending.clear()
            self._first_at = None
            return taken


def _merge(known: Notice, new: Notice) -> Notice:
    """One id's notices as one: the earliest change time, the latest modification time."""
    stamps = [s for s in (known.modified_at, new.modified_at) if s is not None]
    return Notice(known.record_id, max(stamps) if stamps else None, min(known.occurred_s, new.occurred_s))
