"""The webhook side of ``leadsync run``: endpoint, queue and micro-pass worker, fed into the daemon's metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sync.metrics import SyncMetrics
from sync.pipeline import SyncPipeline
from sync.state import StateStore
from sync.webhooks.endpoint import PATHS, WebhookEndpoint, WebhookSettings
from sync.webhooks.micropass import WEBHOOK_JOB, Exclusive, MicroPass, MicroResult, MicroWorker, count_skips
from sync.webhooks.queue import NoticeQueue

__all__ = ["WebhookService"]


class WebhookService:
    """Built with the daemon; :meth:`start` once the daemon can run passes, :meth:`stop` on shutdown."""

    def __init__(self, settings: WebhookSettings, pipeline: SyncPipeline, store: StateStore, metrics: SyncMetrics):
        self.settings = settings
        self.metrics = metrics
        self.queue = NoticeQueue(settings.queue_size)
        self.micro = MicroPass(pipeline, store)
        self._stop = threading.Event()
        self._active: Callable[[], bool] = lambda: False
        self.endpoint = WebhookEndpoint(settings, self.queue, count=self._count, active=lambda: self._active())
        self._worker: MicroWorker | None = None
        for result in ("accepted", "forged", "replayed", "malformed"):
            metrics.webhook_events.labels(settings.crm, result)  # series exist from the first scrape
        metrics.webhook_queue.set_function(lambda: len(self.queue))

    @property
    def path(self) -> str:
        return PATHS[self.settings.crm]

    def start(
        self,
        *,
        active: Callable[[], bool],
        exclusive: Exclusive,
        ready: Callable[[], bool],
        catch_up: Callable[[], None],
    ) -> None:
        """Accept notifications while ``active`` (the lease is ours) and run micro-passes through ``exclusive``."""
        self._active = active
        self._worker = MicroWorker(
            self.micro,
            self.queue,
            window_s=self.settings.batch_window_s,
            exclusive=exclusive,
            ready=ready,
            catch_up=catch_up,
            observe=self._observe,
            stop=self._stop,
        ).start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout)

    def _count(self, crm: str, result: str, n: int) -> None:
        self.metrics.webhook_events.labels(crm, result).inc(n)

    def _observe(self, result: MicroResult | None, status: str, elapsed_s: float) -> None:
        crm = self.settings.crm
        self.metrics.runs.labels(WEBHOOK_JOB, status).inc()
        if status == "skipped":
            return
        self.metrics.run_duration.labels(WEBHOOK_JOB).observe(elapsed_s)
        if result is None:
            return
        for name, n in count_skips(result).items():
            if n:
                self._count(crm, name, n)
        for seconds in result.latencies:
            self.metrics.event_to_write.labels(crm).observe(seconds)
        summary = result.summary
        if summary is not None:
            self.metrics.write_failures.labels(crm).inc(summary.write_failures)
            self.metrics.workflows_triggered.labels(crm).inc(summary.workflows_triggered)
