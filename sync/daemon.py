"""``leadsync run``: scheduled sync passes, one working replica at a time, health and metrics, a graceful stop.

Life of a daemon:

1. ``/healthz``, ``/readyz`` and ``/metrics`` start listening first, so an orchestrator sees a live process
   while the state store is still being reached.
2. The state store is migrated (``alembic upgrade head``), retried with backoff while the database is down
   (a compose stack starts the daemon and PostgreSQL together).
3. The job lease is taken or waited for (:mod:`sync.lease`): with several replicas on one PostgreSQL, one
   works and the others stand by; a standby takes over when the holder dies.
4. APScheduler 3.x runs the jobs (``sync`` incremental, ``full_sync`` reading everything) on their interval
   or cron trigger, each with ``max_instances=1``, ``coalesce=True`` and an explicit ``misfire_grace_time``,
   on one worker thread, so no pass ever overlaps another one in this process.
5. SIGTERM (or SIGINT) stops the scheduler and lets the pass in flight reach its next commit point (the end of
   the page being written), records the run as ``stopped``, gives the lease back and exits, all within
   ``shutdown_grace_s``; past it, the process exits anyway (the state store is crash-safe: see
   :mod:`sync.pipeline`). A second signal exits at once.

Writes to the CRM go through :class:`GuardedConnector`, which refuses them once a stop was requested or
the lease is no longer surely ours.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Final

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from connectors.base import (
    Connector,
    OutcomeReader,
    OutcomeSpec,
    PropertySpec,
    RawActivity,
    RawOutcome,
    RawRecord,
    RecordsById,
    RecordUpdate,
    Window,
    WriteResult,
)
from connectors.errors import BudgetExhausted, ConnectorError
from sync.health import HealthServer
from sync.joblock import job_lock
from sync.lease import LeaseKeeper, LeaseLost, lease_name
from sync.metrics import SyncMetrics
from sync.pipeline import PassInterrupted, SyncPipeline, SyncSummary
from sync.schedule import DEFAULT_PORT, JobSpec, build_trigger
from sync.state import FencedOut, StateStore
from sync.triggers import DeliveryCheck
from sync.webhooks import WebhookService

__all__ = [
    "DEFAULT_PORT",
    "Daemon",
    "DaemonSettings",
    "GuardedConnector",
    "ShutdownRequested",
    "default_replica_id",
    "lease_name",
]

log = structlog.get_logger("leadsync.daemon")

#: the run-history job name the pipeline records (sync and full_sync passes alike)
RUN_JOB: Final = "sync"
#: the CRM counts as reachable when it answered a call this many probe intervals ago at most; otherwise the
#: probe calls it (so a busy daemon costs no extra API call, an idle one about one per minute)
CRM_FRESH_PROBES: Final = 4


#: the scheduled re-evaluation job (schedule.evaluate); it reads the store only, never the CRM
EVALUATE_JOB: Final = "evaluate"
#: the scheduled retraining job (schedule.train): champion/challenger on the store's outcomes, no CRM call
TRAIN_JOB: Final = "train"
#: the recommended threshold this many points away from the configured one is worth a warning
THRESHOLD_MOVE_WARN: Final = 10.0


def evaluation_warnings(
    result: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    auc_drop: float,
    configured_threshold: float | None,
) -> list[str]:
    """What a human should look at: AUC fell by more than ``auc_drop``, or the advice moved > 10 points."""
    warnings: list[str] = []
    auc = (result.get("auc") or {}).get("value")
    before = (previous or {}).get("auc")
    if auc is not None and before is not None and before - auc > auc_drop:
        warnings.append(f"AUC fell from {before:.3f} to {auc:.3f} (more than {auc_drop:g}) since the last evaluation")
    recommended = (result.get("recommendation") or {}).get("threshold")
    configured = result.get("configured_threshold", configured_threshold)
    if recommended is not None and configured is not None and abs(recommended - configured) > THRESHOLD_MOVE_WARN:
        warnings.append(
            f"recommended MQL threshold {recommended:g} is more than {THRESHOLD_MOVE_WARN:g} points from "
            f"the configured {configured:g}"
        )
    return warnings


def default_replica_id() -> str:
    """Host, pid and a random suffix: unique per process, so two processes never share a lease by accident."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class DaemonSettings:
    """How the daemon runs (built from the config's ``schedule:`` and ``run:`` sections)."""

    jobs: tuple[JobSpec, ...]
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    shutdown_grace_s: float = 30.0
    lease_ttl_s: float = 30.0
    job_lock: bool = True
    probe_interval_s: float = 15.0
    replica_id: str = field(default_factory=default_replica_id)


class ShutdownRequested(PassInterrupted):
    """A stop was requested: the pass ends at its next commit point."""

    def __init__(self) -> None:
        super().__init__("shutdown requested: stopped between two commit points; the next run resumes")


class GuardedConnector:
    """A connector whose writes (records, triggers, properties) first ask ``guard``, which raises to refuse.

    Reads pass straight through: reading never harms, and a pass stopped by the guard re-reads anyway.
    """

    def __init__(self, inner: Connector, guard: Callable[[], None]) -> None:
        self.inner = inner
        self.name = inner.name
        self._guard = guard

    @property
    def api_calls(self) -> int:
        return self.inner.api_calls

    def read_records(self, window: Window, properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        return self.inner.read_records(window, properties)

    def read_activities(self, records: Sequence[RawRecord]) -> Mapping[str, list[RawActivity]]:
        return self.inner.read_activities(records)

    def read_by_ids(self, ids: Sequence[str], properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        """The inner connector's read by id (webhook micro-passes); a read, so never guarded."""
        if not isinstance(self.inner, RecordsById):
            raise TypeError(f"the {self.inner.name} connector cannot read records by id")
        return self.inner.read_by_ids(ids, properties)

    def describe(self) -> Mapping[str, str]:
        return self.inner.describe()

    def write(self, updates: Sequence[RecordUpdate]) -> WriteResult:
        self._guard()
        return self.inner.write(updates)

    def trigger(self, record_id: str, email: str | None) -> None:
        self._guard()
        self.inner.trigger(record_id, email)

    def ensure_properties(self, specs: Sequence[PropertySpec]) -> list[str]:
        self._guard()
        return self.inner.ensure_properties(specs)

    def read_outcomes(self, records: Sequence[RawRecord], spec: OutcomeSpec) -> Mapping[str, RawOutcome]:
        """The inner connector's outcomes (none when it cannot read them): a read, so never guarded."""
        if isinstance(self.inner, OutcomeReader):
            return self.inner.read_outcomes(records, spec)
        return {}

    def outcome_properties(self, spec: OutcomeSpec) -> Sequence[str]:
        if isinstance(self.inner, OutcomeReader):
            return self.inner.outcome_properties(spec)
        return ()

    def trigger_delivered(self, record_id: str, email: str | None) -> bool | None:
        if isinstance(self.inner, DeliveryCheck):
            return self.inner.trigger_delivered(record_id, email)
        return None


@dataclass
class _Probe:
    ok: bool = False
    at: float = 0.0  # monotonic time of the result
    detail: str = "not checked yet"


class Daemon:
    """The ``leadsync run`` process around one pipeline; :meth:`run` blocks until stopped."""

    def __init__(
        self,
        settings: DaemonSettings,
        *,
        store: StateStore,
        pipeline: SyncPipeline,
        metrics: SyncMetrics,
        crm_probe: Callable[[], object] | None = None,
        evaluator: Callable[[], Mapping[str, Any]] | None = None,
        trainer: Callable[[], Mapping[str, Any]] | None = None,
        auc_drop_warn: float = 0.05,
        configured_threshold: float | None = None,
        webhooks: WebhookService | None = None,
    ) -> None:
        if not settings.jobs:
            raise ValueError("no job scheduled: set schedule.sync and/or schedule.full_sync")
        self.settings = settings
        self.store = store
        self.pipeline = pipeline
        self.metrics = metrics
        self.replica_id = settings.replica_id
        name = lease_name(pipeline.stream)
        self.lease = LeaseKeeper(
            store,
            name,
            settings.replica_id,
            settings.lease_ttl_s,
            on_acquired=self._lease_acquired,
            on_lost=self._lease_lost,
            lock=job_lock(store.connect_url, name) if settings.job_lock else None,
        )
        # every CRM write asks first: a stopping daemon or a replica without the lease must not write
        pipeline.connector = GuardedConnector(pipeline.connector, self._may_write)
        pipeline.progress = self._progress
        pipeline.owner = settings.replica_id
        self._crm_probe = crm_probe
        #: the ``evaluate`` job: returns ``leadsync evaluate --json``'s dict (see leadsync.evaluate_store)
        self._evaluator = evaluator
        #: the ``train`` job: trains a challenger, activates it only when it beats the active model
        self._trainer = trainer
        self._auc_drop_warn = auc_drop_warn
        self._configured_threshold = configured_threshold
        self._evaluation: dict[str, Any] = {"state": "not run yet", "warnings": []}
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._pass_lock = threading.Lock()
        self._pass: tuple[str, float] | None = None  # (job, monotonic start) of the pass in flight
        self._pass_counts: dict[str, int] = {}
        self._stop_reason = ""
        self._signals = 0
        self._migrated = False
        self._store_probe = _Probe()
        self._crm_state = _Probe()
        self._http: HealthServer | None = None
        #: the webhook endpoint and its micro-passes (None: webhooks off)
        self.webhooks = webhooks
        #: set once a scheduled pass succeeded here: micro-passes wait for it (properties, model, rules rescore)
        self._synced = threading.Event()
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # APScheduler narrates every run at info and warns for every tick skipped behind a long pass;
            # the daemon logs what matters itself (job.missed, job.skipped_still_running) and counts it
            logging.getLogger("apscheduler").setLevel(logging.ERROR)
        self._scheduler = self._make_scheduler()
        #: set when :meth:`run` returned with a pass still running (the caller must exit the process hard)
        self.pass_abandoned = False

    # ---- public ------------------------------------------------------------------------------------

    @property
    def port(self) -> int | None:
        """The port the HTTP endpoints listen on (known once :meth:`run` started them)."""
        return self._http.port if self._http is not None else None

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a graceful stop (thread-safe; the signal handlers call it)."""
        if not self._stopping.is_set():
            self._stop_reason = reason
        self._stopping.set()

    def run(self, *, install_signals: bool = True) -> int:
        """Serve, migrate, schedule, wait for a stop; returns the exit code (0: stopped on request)."""
        if install_signals:
            self._install_signals()
        try:
            self._http = HealthServer(
                self.settings.host,
                self.settings.port,
                live=self._liveness,
                ready=self._readiness,
                registry=self.metrics.registry,
                mounts={self.webhooks.path: self.webhooks.endpoint} if self.webhooks is not None else None,
            ).start()
        except OSError as exc:
            log.error("daemon.cannot_listen", host=self.settings.host, port=self.settings.port, error=str(exc))
            return 1
        log.info(
            "daemon.listening",
            host=self.settings.host,
            port=self._http.port,
            endpoints=["/healthz", "/readyz", "/metrics", *([self.webhooks.path] if self.webhooks else [])],
            replica=self.replica_id,
        )
        code = 0
        try:
            if self._migrate():
                self.lease.start()
                threading.Thread(target=self._probe_loop, name="probe", daemon=True).start()
                self._scheduler.start()
                if self.webhooks is not None:
                    self.webhooks.start(
                        active=self.lease.held,
                        exclusive=self._exclusive,
                        ready=self._synced.is_set,
                        catch_up=self.request_catch_up,
                    )
                self._started.set()
                log.info(
                    "daemon.started",
                    replica=self.replica_id,
                    jobs={j.name: j.describe() for j in self.settings.jobs},
                    lease=self.lease.name,
                    lease_ttl_s=self.settings.lease_ttl_s,
                    state=self.store.url,
                )
                self._stopping.wait()
        except Exception:
            log.exception("daemon.crashed")
            code = 1
            self.request_stop("internal error")
        return self._shutdown(code)

    # ---- startup -----------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        def handle(signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            name = signal.Signals(signum).name
            if self._signals > 1:
                log.warning("daemon.forced_exit", signal=name)
                os._exit(1)  # the state store is crash-safe: a second signal means "now"
            self.request_stop(name)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handle)

    def _migrate(self) -> bool:
        delay = 1.0
        while not self._stopping.is_set():
            try:
                self.store.migrate()
            except Exception as exc:
                log.warning(
                    "state.unavailable",
                    state=self.store.url,
                    error=str(exc),
                    error_type=type(exc).__name__,
                    retry_in_s=delay,
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            self._migrated = True
            log.info("state.ready", state=self.store.url, revision=self.store.schema_revision())
            return True
        return False

    def _make_scheduler(self) -> BackgroundScheduler:
        # one worker: sync and full_sync queue behind each other instead of running side by side
        scheduler = BackgroundScheduler(timezone=UTC, executors={"default": ThreadPoolExecutor(max_workers=1)})
        now = datetime.now(UTC)
        for spec in self.settings.jobs:
            # left out, next_run_time comes from the trigger; None would add the job paused
            first: dict[str, Any] = {"next_run_time": now} if spec.starts_at_once else {}
            scheduler.add_job(
                self._run_job,
                trigger=build_trigger(spec),
                args=[spec],
                id=spec.name,
                name=spec.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=spec.misfire_grace_time,
                replace_existing=True,
                **first,
            )
        scheduler.add_listener(self._scheduler_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR)
        return scheduler

    def _scheduler_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            self.metrics.job_skips.labels(event.job_id, "missed").inc()
            log.warning("job.missed", job=event.job_id, scheduled_for=str(getattr(event, "scheduled_run_time", "")))
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.metrics.job_skips.labels(event.job_id, "max_instances").inc()
            log.info("job.skipped_still_running", job=event.job_id)
        elif event.code == EVENT_JOB_ERROR:  # _run_job catches everything; this is a bug in it
            log.error("job.error", job=event.job_id, error=str(getattr(event, "exception", "")))

    # ---- leases ------------------------------------------------------------------------------------

    def _lease_acquired(self) -> None:
        self.metrics.lease_held.labels(self.lease.name).set(1)
        self.metrics.lease_changes.labels(self.lease.name, "acquired").inc()
        try:
            abandoned = self.store.abandon_runs(RUN_JOB)
            if abandoned:
                log.info("runs.abandoned", count=abandoned, job=RUN_JOB)
        except Exception as exc:
            log.warning("runs.abandon_failed", error=str(exc))
        if self._scheduler.running:
            # taking over: run the interval jobs now instead of at their next tick
            for spec in self.settings.jobs:
                if spec.starts_at_once:
                    self._scheduler.modify_job(spec.name, next_run_time=datetime.now(UTC))

    def _lease_lost(self) -> None:
        self.metrics.lease_held.labels(self.lease.name).set(0)
        self.metrics.lease_changes.labels(self.lease.name, "lost").inc()

    def _may_write(self) -> None:
        """The guard of every CRM write. :raises ShutdownRequested, LeaseLost:"""
        if self._stopping.is_set():
            raise ShutdownRequested
        self.lease.check()

    # ---- one run -----------------------------------------------------------------------------------

    def _progress(self, event: str, count: int) -> None:
        """The pipeline's progress callback: counts, and the checkpoints where a pass may stop.

        "read" and "scored" come before the page's writes, so stopping there loses nothing; "written"
        comes after the CRM write and before the page's commit, so the pass never stops there (the commit
        records what did reach the CRM).
        """
        self._pass_counts[event] = self._pass_counts.get(event, 0) + count
        log.debug("sync.progress", progress=event, count=count)
        if event == "read":
            self.metrics.leads_read.labels(self.metrics.crm).inc(count)
        elif event == "scored":
            self.metrics.leads_scored.labels(self.metrics.crm).inc(count)
        elif event == "written":
            self.metrics.leads_written.labels(self.metrics.crm).inc(count)
            return
        self._may_write()

    def _run_job(self, spec: JobSpec) -> None:
        if self._stopping.is_set():
            self.metrics.job_skips.labels(spec.name, "stopping").inc()
            return
        if not self.lease.held():
            self.metrics.job_skips.labels(spec.name, "standby").inc()
            log.debug("job.standby", job=spec.name, lease=self.lease.name)
            return
        with self._pass_lock:
            self._idle.clear()
            try:
                if spec.name == EVALUATE_JOB:
                    self._run_evaluation()
                elif spec.name == TRAIN_JOB:
                    self._run_training()
                else:
                    self._run_pass(spec)
            finally:
                self._idle.set()

    def _run_pass(self, spec: JobSpec) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(job=spec.name, replica=self.replica_id, pass_id=uuid.uuid4().hex[:12])
        started = time.monotonic()
        self._pass = (spec.name, started)
        self._pass_counts = {}
        self.metrics.pass_in_progress.labels(spec.name).set(1)
        status = "failed"
        summary: SyncSummary | None = None
        try:
            summary = self.pipeline.run_once(full=spec.full)
            status = "ok"
            self._synced.set()
        except (ShutdownRequested, LeaseLost, BudgetExhausted):
            status = "stopped"  # logged by the pipeline (sync.stopped / sync.failed)
        except FencedOut as exc:
            status = "stopped"  # another replica took the job over while this pass ran: its commit was refused
            log.warning("sync.fenced_out", job=spec.name, error=str(exc))
        except ConnectorError:
            pass  # logged by the pipeline (sync.failed); the next tick tries again
        except Exception:
            log.exception("sync.crashed", job=spec.name)
        finally:
            elapsed = time.monotonic() - started
            self.metrics.runs.labels(spec.name, status).inc()
            self.metrics.run_duration.labels(spec.name).observe(elapsed)
            self.metrics.pass_in_progress.labels(spec.name).set(0)
            if summary is not None:
                self._count_summary(spec, summary)
            self._pass = None
            self._refresh_store_gauges()
            structlog.contextvars.clear_contextvars()

    def _exclusive(self, work: Callable[[], None]) -> bool:
        """Run a webhook micro-pass as a scheduled pass runs: lease held, not stopping, never beside another
        pass (the pipeline holds one pass's writes at a time); False when it may not run now."""
        if self._stopping.is_set() or not self.lease.held():
            return False
        with self._pass_lock:
            self._idle.clear()
            try:
                work()
            finally:
                self._idle.set()
        return True

    def request_catch_up(self) -> None:
        """Run the incremental ``sync`` job now (notifications were dropped or failed): it reads every change
        by modification time, so whatever a micro-pass missed is covered within one pass."""
        if self._stopping.is_set() or not self._scheduler.running:
            return
        for spec in self.settings.jobs:
            if spec.name == RUN_JOB:
                self._scheduler.modify_job(spec.name, next_run_time=datetime.now(UTC))
                log.info("webhooks.catch_up", job=spec.name)

    def _run_evaluation(self) -> None:
        """Re-evaluate the scores against outcomes; warn (log, /readyz detail; never a failure) on drift."""
        if self._evaluator is None:
            return
        previous = next(
            (r.summary for r in self.store.last_runs(5, job=EVALUATE_JOB) if r.status == "ok" and r.summary), None
        )
        run_id = self.store.start_run(EVALUATE_JOB)
        try:
            result = dict(self._evaluator())
        except Exception as exc:
            self.store.finish_run(run_id, "failed", {}, error=str(exc))
            log.error("evaluate.failed", error=str(exc), error_type=type(exc).__name__)
            self._evaluation = {"state": "failed", "error": str(exc), "warnings": []}
            return
        auc = (result.get("auc") or {}).get("value")
        threshold = (result.get("recommendation") or {}).get("threshold")
        self.metrics.eval_positives.set(int(result.get("positives") or 0))
        self.metrics.eval_auc.set(float("nan") if auc is None else float(auc))
        self.metrics.eval_recommended_threshold.set(float("nan") if threshold is None else float(threshold))
        warnings = evaluation_warnings(result, previous, self._auc_drop_warn, self._configured_threshold)
        summary = {
            "auc": auc,
            "recommended_threshold": threshold,
            "positives": result.get("positives"),
            "pending": result.get("pending"),
            "message": result.get("message"),
            "warnings": warnings,
        }
        self.store.finish_run(run_id, "ok", summary)
        log.info("evaluate.done", **{k: v for k, v in summary.items() if k != "warnings"})
        for warning in warnings:
            log.warning("evaluate.warning", warning=warning)
        self._evaluation = {"state": "ok", **summary}

    def _run_training(self) -> None:
        """Retrain; the result (activated or not, and why) is logged and recorded as a ``train`` run."""
        if self._trainer is None:
            return
        run_id = self.store.start_run(TRAIN_JOB)
        try:
            result = dict(self._trainer())
        except Exception as exc:
            self.store.finish_run(run_id, "failed", {}, error=str(exc))
            log.error("train.failed", error=str(exc), error_type=type(exc).__name__)
            return
        self.store.finish_run(run_id, "ok", result)
        log.info("train.done", **result)

    def _count_summary(self, spec: JobSpec, summary: SyncSummary) -> None:
        crm = self.metrics.crm
        self.metrics.last_success.labels(spec.name).set(time.time())
        self.metrics.write_failures.labels(crm).inc(summary.write_failures)
        self.metrics.workflows_triggered.labels(crm).inc(summary.workflows_triggered)
        for reason, count in (
            ("no_id", summary.bad_records),
            ("bad_value", summary.bad_values),
            ("value_truncated", summary.values_truncated),
        ):
            self.metrics.records_refused.labels(crm, reason).inc(count)
        # writes retried from earlier passes are in the summary but not in the progress events
        extra = summary.leads_written - self._pass_counts.get("written", 0)
        if extra > 0:
            self.metrics.leads_written.labels(crm).inc(extra)

    # ---- probes, health ------------------------------------------------------------------------------

    def _refresh_store_gauges(self) -> None:
        try:
            watermark = self.store.get_watermark(self.pipeline.stream)
            outbox = self.store.outbox_counts()
            failures = self.store.failure_counts()
        except Exception as exc:
            log.debug("metrics.refresh_failed", error=str(exc))
            return
        self.metrics.set_watermark(watermark.timestamp() if watermark else None)
        for status, n in outbox.items():
            self.metrics.outbox.labels(status).set(n)
        for kind, n in failures.items():
            self.metrics.failed_writes.labels(kind).set(n)

    def _probe_loop(self) -> None:
        while not self._stopping.is_set():
            self._probe_once()
            self._stopping.wait(self.settings.probe_interval_s)

    def _probe_once(self) -> None:
        now = time.monotonic()
        try:
            self.store.ping()
            self._store_probe = _Probe(True, now, "reachable")
        except Exception as exc:
            self._store_probe = _Probe(False, now, f"{type(exc).__name__}: {exc}")
        self.metrics.ready.labels("state_store").set(int(self._store_probe.ok))
        self._refresh_store_gauges()
        fresh = CRM_FRESH_PROBES * self.settings.probe_interval_s
        if self.metrics.last_status in (401, 403):
            self._crm_state = _Probe(False, now, f"the CRM refused the credentials ({self.metrics.last_status})")
        elif self.metrics.crm_answered_within(fresh):
            self._crm_state = _Probe(True, now, "answered a recent call")
        elif self._crm_probe is not None and (not self._crm_state.ok or now - self._crm_state.at >= fresh):
            try:
                self._crm_probe()
                self._crm_state = _Probe(True, time.monotonic(), "probe answered")
            except Exception as exc:
                self._crm_state = _Probe(False, time.monotonic(), f"{type(exc).__name__}: {exc}")
        self.metrics.ready.labels("crm").set(int(self._crm_state.ok))

    def _liveness(self) -> tuple[bool, dict[str, Any]]:
        if self._stopping.is_set():
            state = "stopping"
        elif not self._started.is_set():
            state = "starting"
        else:
            state = "running" if self._scheduler.running else "dead"
        running = self._pass
        return state != "dead", {
            "replica": self.replica_id,
            "scheduler": state,
            "pass": None
            if running is None
            else {"job": running[0], "running_s": round(time.monotonic() - running[1], 1)},
        }

    def _readiness(self) -> tuple[bool, dict[str, Any]]:
        # a result older than a few probe rounds means the probe itself is stuck: not ready
        stale = (CRM_FRESH_PROBES + 3) * self.settings.probe_interval_s
        now = time.monotonic()
        store_ok = self._migrated and self._store_probe.ok and now - self._store_probe.at <= stale
        crm_ok = self._crm_state.ok and now - self._crm_state.at <= stale
        ok = store_ok and crm_ok and not self._stopping.is_set()
        return ok, {
            "replica": self.replica_id,
            "state_store": {"ok": store_ok, "migrated": self._migrated, "detail": self._store_probe.detail},
            "crm": {"ok": crm_ok, "detail": self._crm_state.detail},
            "lease": {"name": self.lease.name, "held": self.lease.held()},
            "stopping": self._stopping.is_set(),
            # informational: a drifting model is a warning for humans, never a reason to stop serving
            "evaluation": self._evaluation,
        }

    # ---- shutdown ----------------------------------------------------------------------------------

    def _shutdown(self, code: int) -> int:
        grace = self.settings.shutdown_grace_s
        running = self._pass
        log.info(
            "daemon.stopping",
            reason=self._stop_reason or "requested",
            grace_s=grace,
            pass_in_flight=None if running is None else running[0],
        )
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self.webhooks is not None:
            self.webhooks.stop(timeout=min(grace, 5.0))
        finished = self._idle.wait(timeout=grace)
        if finished:
            self.lease.stop(release=True)
        else:
            # a pass is stuck in a CRM call: keep the lease (it expires by itself) and let the caller exit hard
            self.pass_abandoned = True
            self.lease.stop(release=False)
            # not an error: a pass waiting out a rate-limit window or a retry backoff cannot be interrupted,
            # and the state store is crash-safe, so the next run resumes where this one stopped
            log.warning("daemon.grace_exceeded", grace_s=grace, pass_in_flight=running[0] if running else None)
        if self._http is not None:
            self._http.stop()
        log.info("daemon.stopped", exit_code=code)
        return code
