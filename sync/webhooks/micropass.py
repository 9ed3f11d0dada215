"""Micro-passes: the notified records read by id, then scored, diffed and written like any pass.

A micro-pass is the pipeline's own pass (:meth:`sync.pipeline.SyncPipeline.process_records`) over records
read with one batch read per 100 ids instead of a search window, so the search index's lag does not apply.
Before reading, ids whose notification is about a version leadsync already has cost nothing: its own write
(the notification's modification time is the one the write returned) or a version it already read (no
later than the cached record's). Nothing here moves the watermark: the scheduled incremental pass still
reads every change by modification time, so a lost notification only delays a score.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import structlog

from connectors.base import RawRecord, RecordsById
from sync.passwrites import MODIFIED_KEY
from sync.pipeline import SyncPipeline, SyncSummary
from sync.state import StateStore
from sync.webhooks.events import Notice
from sync.webhooks.queue import NoticeQueue

__all__ = ["MicroPass", "MicroResult", "MicroWorker"]

log = structlog.get_logger("leadsync.webhooks")

#: the job name micro-passes are counted under (``leadsync_runs_total{job="webhook"}``)
WEBHOOK_JOB: Final = "webhook"


@dataclass
class MicroResult:
    """What one micro-pass did with its notices."""

    notices: int = 0
    own_writes: int = 0
    already_seen: int = 0
    read: int = 0
    summary: SyncSummary | None = None
    #: seconds from each change to its write landing, for the ids whose score was written
    latencies: tuple[float, ...] = ()


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class MicroPass:
    """Turns a batch of notices into one pipeline pass (the caller holds the pass lock)."""

    def __init__(self, pipeline: SyncPipeline, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self.pipeline = pipeline
        self.store = store
        self.clock = clock

    def known_versions(self, notices: Sequence[Notice]) -> tuple[set[str], set[str]]:
        """Ids whose notified version leadsync wrote itself, and ids whose version it has already read."""
        ids = [n.record_id for n in notices]
        written = self.store.get_written(ids)
        cached = self.store.get_leads(ids)
        own: set[str] = set()
        seen: set[str] = set()
        for n in notices:
            if n.modified_at is None:
                continue
            wrote = _parse(written.get(n.record_id, {}).get(MODIFIED_KEY))
            lead = cached.get(n.record_id)
            if wrote is not None and wrote == n.modified_at:
                own.add(n.record_id)
            elif lead is not None and lead.updated_at is not None and n.modified_at <= lead.updated_at:
                seen.add(n.record_id)
        return own, seen

    def run(self, notices: Sequence[Notice]) -> MicroResult:
        """Read, score and write the records the notices name (those leadsync does not know already).

        :raises connectors.errors.ConnectorError, sync.pipeline.PassInterrupted: as a scheduled pass does.
        """
        result = MicroResult(notices=len(notices))
        own, seen = self.known_versions(notices)
        result.own_writes, result.already_seen = len(own), len(seen)
        wanted = [n for n in notices if n.record_id not in own and n.record_id not in seen]
        if not wanted:
            return result
        connector = self.pipeline.connector
        if not isinstance(connector, RecordsById):
            raise TypeError(f"the {connector.name} connector cannot read records by id")
        ids = [n.record_id for n in wanted]
        before = {i: v.get(MODIFIED_KEY) for i, v in self.store.get_written(ids).items()}
        counted: list[int] = []

        def pages() -> Iterator[list[RawRecord]]:
            for page in connector.read_by_ids(ids, self.pipeline.read_properties()):
                counted.append(len(page))
                yield page

        result.summary = self.pipeline.process_records(pages())
        result.read = sum(counted)
        after = self.store.get_written(ids)
        now = self.clock()
        result.latencies = tuple(
            max(0.0, now - n.occurred_s)
            for n in wanted
            if (stamp := after.get(n.record_id, {}).get(MODIFIED_KEY)) is not None and stamp != before.get(n.record_id)
        )
        return result


#: runs ``work`` as a pass would run (lease held, not stopping, never beside another pass); False: not now
Exclusive = Callable[[Callable[[], None]], bool]


class MicroWorker:
    """The thread that takes batches off the queue and runs them as micro-passes."""

    def __init__(
        self,
        micro: MicroPass,
        queue: NoticeQueue,
        *,
        window_s: float,
        exclusive: Exclusive,
        ready: Callable[[], bool],
        catch_up: Callable[[], None],
        observe: Callable[[MicroResult | None, str, float], None],
        stop: threading.Event,
    ) -> None:
        self.micro = micro
        self.queue = queue
        self.window_s = window_s
        self._exclusive = exclusive
        self._ready = ready
        self._catch_up = catch_up
        self._observe = observe
        self._stop = stop
        self._thread: threading.Thread | None = None

    def start(self) -> MicroWorker:
        self._thread = threading.Thread(target=self._loop, name="webhook-micropass", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            notices = self.queue.take(self.window_s, self._stop)
            if self.queue.take_catch_up():
                self._catch_up()
            if not notices:
                continue
            if not self._ready():
                # no pass has finished in this process yet (properties, model, rules rescoring): wait for it
                if self.queue.offer(notices).dropped:
                    self._catch_up()
                self._stop.wait(self.window_s)
                continue
            self._run(notices)

    def _run(self, notices: Sequence[Notice]) -> None:
        done: dict[str, MicroResult] = {}
        started = time.monotonic()
        status = "failed"

        def work() -> None:
            done["result"] = self.micro.run(notices)

        try:
            if not self._exclusive(work):
                status = "skipped"
                self._catch_up()  # standby or stopping: the scheduled pass (here or on the leader) covers it
            else:
                status = "ok"
        except Exception as exc:  # a failed micro-pass is the scheduled pass's to cover
            status = "failed"
            log.warning("webhooks.micropass_failed", error=str(exc), error_type=type(exc).__name__)
            self._catch_up()
        result = done.get("result")
        self._observe(result, status, time.monotonic() - started)
        if result is not None:
            log.info(
                "webhooks.micropass",
                notices=result.notices,
                own_writes=result.own_writes,
                already_seen=result.already_seen,
                read=result.read,
                written=result.summary.leads_written if result.summary else 0,
                api_calls=result.summary.api_calls if result.summary else 0,
            )


def count_skips(result: MicroResult) -> Mapping[str, int]:
    """The notices of a micro-pass by what they cost (the ``webhook_events`` results)."""
    return {"own_write": result.own_writes, "already_seen": result.already_seen, "read": result.read}
