"""The daemon's Prometheus metrics (prometheus-client), in a registry of its own.

A registry per daemon instead of the library's global one: tests can run several daemons in one process,
and ``/metrics`` shows exactly what leadsync exports (plus the standard process metrics).

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` units, base units only). Every
series carries the ``crm`` it talks to, so one dashboard can show several leadsync deployments.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

__all__ = ["EVENT_TO_WRITE_BUCKETS", "RUN_DURATION_BUCKETS", "SyncMetrics"]

#: a pass takes from a second (incremental, nothing changed) to an hour (first full read of a big portal)
RUN_DURATION_BUCKETS: Final = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: a webhook change is written within seconds (batch window + one read + one write); the scheduled pass, minutes
EVENT_TO_WRITE_BUCKETS: Final = (0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 30, 60, 300, 900)


def healthy_status(status: int) -> bool:
    """An answer that shows the CRM up and our credentials good: anything but 401/403 and 5xx.

    A 429 is healthy (the CRM is there, we are just fast); a 400 or 404 is about one request, not the CRM.
    """
    return status < 500 and status not in (401, 403)


class SyncMetrics:
    """Every metric ``leadsync run`` exports; the daemon and the connector's call hook feed it."""

    def __init__(
        self,
        *,
        crm: str,
        stream: str,
        rate_limit: int | None = None,
        rate_window_s: float = 10.0,
        version: str = "",
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.crm = crm
        self.stream = stream
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.info = Info("leadsync", "leadsync version and CRM", registry=r)
        self.info.info({"version": version, "crm": crm})

        self.runs = Counter(
            "leadsync_runs",
            "Sync passes by job and outcome (ok, partial, failed, stopped)",
            ["job", "status"],
            registry=r,
        )
        self.run_duration = Histogram(
            "leadsync_run_duration_seconds",
            "Duration of sync passes",
            ["job"],
            buckets=RUN_DURATION_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "leadsync_last_success_timestamp_seconds",
            "When a pass of the job last succeeded (Unix time)",
            ["job"],
            registry=r,
        )
        self.pass_in_progress = Gauge(
            "leadsync_pass_in_progress", "1 while a pass of the job runs", ["job"], registry=r
        )
        self.job_skips = Counter(
            "leadsync_job_skips",
            "Scheduled runs not started: standby (another replica holds the lease), max_instances (the previous "
            "run still going), missed (later than misfire_grace), stopping",
            ["job", "reason"],
            registry=r,
        )

        self.leads_read = Counter("leadsync_leads_read", "Leads read from the CRM", ["crm"], registry=r)
        self.leads_scored = Counter("leadsync_leads_scored", "Leads scored", ["crm"], registry=r)
        self.leads_written = Counter(
            "leadsync_leads_written", "Leads whose properties were written to the CRM", ["crm"], registry=r
        )
        self.write_failures = Counter(
            "leadsync_write_failures", "Per-record write failures reported by the CRM", ["crm"], registry=r
        )
        self.records_refused = Counter(
            "leadsync_records_refused",
            "Records or values refused or cut: no_id (a record without a usable id, never scored or written), "
            "id_type (an id sent as another JSON type), oversized (a value over sync.max_value_chars), "
            "unknown_option (an enumeration value that is none of its options, read by a rule), "
            "bad_value (a value the mapping could not read), value_truncated (a cached value cut to the bound)",
            ["crm", "reason"],
            registry=r,
        )
        self.workflows_triggered = Counter(
            "leadsync_workflows_triggered", "Workflow triggers delivered (once per qualification)", ["crm"], registry=r
        )
        self.eval_auc = Gauge(
            "leadsync_eval_auc", "AUC of the scores at the last evaluation (NaN: none yet)", registry=r
        )
        self.eval_recommended_threshold = Gauge(
            "leadsync_eval_recommended_threshold",
            "MQL threshold the last evaluation recommends (NaN: none)",
            registry=r,
        )
        self.eval_positives = Gauge(
            "leadsync_eval_positives", "Converted leads the last evaluation judged the scores on", registry=r
        )
        for gauge in (self.eval_auc, self.eval_recommended_threshold):
            gauge.set(float("nan"))
        self.outbox = Gauge("leadsync_outbox_items", "Workflow-trigger outbox items by status", ["status"], registry=r)
        self.failed_writes = Gauge(
            "leadsync_failed_writes",
            "Writes waiting in the state store (retriable) or given up (permanent)",
            ["kind"],
            registry=r,
        )

        self.api_calls = Counter(
            "leadsync_api_calls",
            "CRM API calls (every attempt, retries included) by endpoint and HTTP status",
            ["crm", "endpoint", "status"],
            registry=r,
        )
        self.api_throttled = Counter("leadsync_api_throttled", "CRM answers 429 (rate limited)", ["crm"], registry=r)
        self.rate_limit_headroom = Gauge(
            "leadsync_rate_limit_headroom_ratio",
            "Share of the CRM's rolling-window allowance this process has not used in the last window (1: idle)",
            ["crm"],
            registry=r,
        )
        self.rate_limit = Gauge(
            "leadsync_rate_limit_calls",
            "Calls per rolling window the connector paces at now; source: config (the configured budget or the "
            "default), portal (the CRM's own X-HubSpot-RateLimit-Max less the margin) or portal+config (capped)",
            ["crm", "source"],
            registry=r,
        )
        self.daily_remaining = Gauge(
            "leadsync_rate_limit_daily_remaining",
            "API calls left today, as the CRM last reported (NaN: unknown)",
            ["crm"],
            registry=r,
        )
        self.watermark_lag = Gauge(
            "leadsync_watermark_lag_seconds",
            "How far the stream's committed watermark is behind now (NaN: none yet)",
            ["stream"],
            registry=r,
        )

        self.lease_held = Gauge(
            "leadsync_lease_held", "1 while this replica holds the job lease", ["lease"], registry=r
        )
        self.lease_changes = Counter(
            "leadsync_lease_changes", "Lease acquisitions and losses of this replica", ["lease", "change"], registry=r
        )
        self.ready = Gauge("leadsync_ready", "Readiness checks (1: passing)", ["check"], registry=r)

        self.webhook_events = Counter(
            "leadsync_webhook_events",
            "Webhook notifications by result: accepted (queued), duplicate (merged with a waiting one), overflow "
            "(queue full: left to a catch-up pass), standby (this replica does not hold the lease), own_write and "
            "already_seen (no read: leadsync wrote or read that version), read; whole requests refused: forged, "
            "replayed, unsigned, malformed, too_large",
            ["crm", "result"],
            registry=r,
        )
        self.event_to_write = Histogram(
            "leadsync_event_to_write_seconds",
            "From a change in the CRM (the notification's time) to leadsync's write of the new score landing",
            ["crm"],
            buckets=EVENT_TO_WRITE_BUCKETS,
            registry=r,
        )
        self.webhook_queue = Gauge("leadsync_webhook_queue_ids", "Notified ids waiting for a micro-pass", registry=r)

        self._rate_limit = rate_limit
        self._rate_window_s = rate_window_s
        self._calls: deque[float] = deque()
        self._calls_lock = threading.Lock()
        self._watermark: float | None = None  # Unix time of the last known watermark
        self._last_healthy: float | None = None  # monotonic time of the last healthy answer from the CRM
        #: status of the CRM's last answer (None: no answer yet, or the last call got no HTTP answer)
        self.last_status: int | None = None
        self._daily: Callable[[], int | None] = lambda: None
        self._limit_info: Callable[[], Mapping[str, Any] | None] = lambda: None
        self._limit_source: str | None = None
        # every per-CRM series exists from the first scrape on (at 0), so rate() and alerts see a start
        for counter in (
            self.leads_read,
            self.leads_scored,
            self.leads_written,
            self.write_failures,
            self.workflows_triggered,
            self.api_throttled,
        ):
            counter.labels(crm)
        self.rate_limit_headroom.labels(crm).set_function(self._headroom)
        self.daily_remaining.labels(crm).set_function(self._daily_remaining)
        self.watermark_lag.labels(stream).set_function(self._lag)

    # ---- feeds -----------------------------------------------------------------------------------

    def on_api_call(self, endpoint: str, status: int | None) -> None:
        """The connector's per-attempt hook: ``status`` None means no HTTP answer (timeout, dropped)."""
        now = time.monotonic()
        self.api_calls.labels(self.crm, endpoint, str(status) if status is not None else "none").inc()
        if status == 429:
            self.api_throttled.labels(self.crm).inc()
        self.last_status = status
        if status is not None and healthy_status(status):
            self._last_healthy = now
        with self._calls_lock:
            self._calls.append(now)
            self._trim(now)
        self.refresh_rate_limit()

    def daily_remaining_from(self, source: Callable[[], int | None]) -> None:
        """Where to read the CRM's last reported daily allowance (the connector keeps it)."""
        self._daily = source

    def rate_limit_from(self, source: Callable[[], Mapping[str, Any] | None] | None) -> None:
        """Where to read the connector's limit in force (``limit_info``): the headroom follows it too."""
        if source is not None:
            self._limit_info = source
        self.refresh_rate_limit()

    def refresh_rate_limit(self) -> None:
        """Export the limit in force under its current source (the previous source's series is removed)."""
        info = self._limit_info()
        max_calls = info.get("max_calls") if info else None
        if not isinstance(max_calls, int):
            return
        source = str(info.get("source") if info else "config")
        if self._limit_source not in (None, source):
            self.rate_limit.remove(self.crm, self._limit_source)
        self._limit_source = source
        self.rate_limit.labels(self.crm, source).set(max_calls)
        self._rate_limit = max_calls
        period = info.get("period_s") if info else None
        if isinstance(period, int | float) and period > 0:
            self._rate_window_s = float(period)

    def set_watermark(self, unix_time: float | None) -> None:
        self._watermark = unix_time

    def crm_answered_within(self, seconds: float) -> bool:
        """Whether the CRM gave a healthy answer (see :func:`healthy_status`) in the last ``seconds``."""
        return self._last_healthy is not None and time.monotonic() - self._last_healthy <= seconds

    # ---- computed at scrape time ------------------------------------------------------------------

    def _trim(self, now: float) -> None:
        while self._calls and self._calls[0] <= now - self._rate_window_s:
            self._calls.popleft()

    def _headroom(self) -> float:
        if not self._rate_limit:
            return math.nan
        with self._calls_lock:
            self._trim(time.monotonic())
            used = len(self._calls)
        return max(0.0, 1.0 - used / self._rate_limit)

    def _daily_remaining(self) -> float:
        value = self._daily()
        return math.nan if value is None else float(value)

    def _lag(self) -> float:
        return math.nan if self._watermark is None else max(0.0, time.time() - self._watermark)
