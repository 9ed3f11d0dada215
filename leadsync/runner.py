"""Wiring of ``leadsync run`` and ``leadsync migrate``: config -> state store, pipeline, metrics, daemon.

The daemon itself (scheduling, leases, health, shutdown) lives in :mod:`sync.daemon`; this module only
translates the config and keeps secrets out of the logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import structlog
from sqlalchemy.engine import make_url

from leadsync.app import App
from leadsync.config import Config, ConfigError, JobScheduleConfig, secret
from leadsync.logs import register_secret
from sync.daemon import EVALUATE_JOB, TRAIN_JOB, Daemon, DaemonSettings
from sync.metrics import SyncMetrics
from sync.schedule import JobSpec
from sync.state import StateStore
from sync.webhooks import WebhookService, WebhookSettings

log = structlog.get_logger("leadsync.run")

#: pins the "now" the daemon scores at (ISO-8601, e.g. 2025-03-01T00:00:00Z), so that runs made at different
#: times give identical scores. For tests and reproducible demos only: decay then stops moving.
SCORING_NOW_ENV: Final = "LEADSYNC_SCORING_NOW"
#: the readiness probe's CRM connector gives up fast: /readyz must reflect reachability, not wait it out
PROBE_MAX_RETRIES: Final = 2
PROBE_TIMEOUT_S: Final = 5.0


def _job_spec(name: str, job: JobScheduleConfig, *, full: bool = False, wait_first: bool = False) -> JobSpec:
    """One ``schedule:`` entry as the daemon's :class:`JobSpec`; ``wait_first`` makes an unset
    ``run_at_start`` mean "wait one interval" (jobs that need earlier passes' data)."""
    run_at_start = job.run_at_start
    if run_at_start is None and wait_first:
        run_at_start = False
    return JobSpec(
        name=name,
        full=full,
        every_s=job.every,
        cron=job.cron,
        timezone=job.timezone,
        jitter_s=job.jitter,
        misfire_grace_s=job.misfire_grace,
        run_at_start=run_at_start,
    )


def job_specs(config: Config) -> tuple[JobSpec, ...]:
    """The daemon's jobs from ``schedule:`` (``sync`` incremental, ``full_sync`` reading everything)."""
    jobs = (("sync", config.schedule.sync), ("full_sync", config.schedule.full_sync))
    return tuple(_job_spec(name, job, full=name == "full_sync") for name, job in jobs if job is not None)


def evaluate_job_spec(config: Config) -> JobSpec | None:
    """``schedule.evaluate`` (None when off or outcomes are disabled); its first run waits one interval,
    since the first passes are still filling the history."""
    job = config.schedule.evaluate
    if job is None or not config.outcomes.enabled:
        return None
    return _job_spec(EVALUATE_JOB, job, wait_first=True)


def train_job_spec(config: Config) -> JobSpec | None:
    """``schedule.train`` (None when off, outcomes or the model disabled); the first run waits one interval."""
    job = config.schedule.train
    if job is None or not config.outcomes.enabled or not config.model.enabled:
        return None
    return _job_spec(TRAIN_JOB, job, wait_first=True)


def daemon_settings(config: Config, *, port: int | None = None, host: str | None = None) -> DaemonSettings:
    """``schedule:`` and ``run:`` as daemon settings; ``--port``/``--host`` override the config."""
    jobs = job_specs(config)
    if not jobs:
        raise ConfigError(config.source, "schedule", "no job to run: set schedule.sync (e.g. {every: 5m})")
    run = config.run
    return DaemonSettings(
        jobs=jobs,
        host=host if host is not None else run.host,
        port=port if port is not None else run.port,
        shutdown_grace_s=run.shutdown_grace_s,
        lease_ttl_s=run.lease_ttl_s,
        job_lock=run.job_lock,
        probe_interval_s=run.probe_interval_s,
    )


def webhook_settings(config: Config) -> WebhookSettings | None:
    """The ``webhooks:`` section for the daemon (None when off); the config already required its secret."""
    hooks = config.webhooks
    if not hooks.enabled:
        return None
    key = hooks.hubspot_client_secret if config.crm == "hubspot" else hooks.salesforce_secret
    return WebhookSettings(
        crm=config.crm,
        secret=secret(key),
        batch_window_s=hooks.batch_window_s,
        queue_size=hooks.queue_size,
        max_age_s=hooks.max_age_s,
        max_body_bytes=hooks.max_body_bytes,
        public_url=hooks.public_url,
        salesforce_org_id=hooks.salesforce_org_id,
    )


def scoring_clock_from_env(source: str) -> Callable[[], datetime] | None:
    """A pinned scoring clock from ``$LEADSYNC_SCORING_NOW`` (None when unset)."""
    raw = os.environ.get(SCORING_NOW_ENV)
    if not raw:
        return None
    try:
        pinned = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(source, f"${SCORING_NOW_ENV}", f"expected an ISO-8601 time, got {raw!r}") from None
    if pinned.tzinfo is None:
        raise ConfigError(source, f"${SCORING_NOW_ENV}", "expected a time with a zone, e.g. 2025-03-01T00:00:00Z")
    log.warning("scoring.clock_pinned", now=pinned.isoformat(), env=SCORING_NOW_ENV)
    return lambda: pinned


def register_config_secrets(config: Config) -> None:
    """Tell the log scrubber every secret value of this config (tokens, client secrets, DB password)."""
    for section in (config.hubspot, config.salesforce):
        if section is None:
            continue
        for name in ("access_token", "client_secret"):
            value = getattr(section, name, None)
            register_secret(secret(value) if value is not None else None)
    with contextlib.suppress(Exception):  # an unparsable URL fails later, with its own message
        register_secret(make_url(config.state.url).password)


def _version() -> str:
    try:
        return version("leadsync")
    except PackageNotFoundError:
        return "unknown"


def build_daemon(app: App, store: StateStore, *, port: int | None = None, host: str | None = None) -> Daemon:
    """Everything ``leadsync run`` needs around one store (not migrated yet: the daemon does it)."""
    config = app.config
    register_config_secrets(config)
    settings = daemon_settings(config, port=port, host=host)
    evaluate_job = evaluate_job_spec(config)
    for extra in (evaluate_job, train_job_spec(config)):
        if extra is not None:
            settings = dataclasses.replace(settings, jobs=(*settings.jobs, extra))
    pipeline = app.pipeline(store)
    pipeline.scoring_clock = scoring_clock_from_env(config.source)
    connector = pipeline.connector
    rate_limit = config.hubspot.rate_limit_per_10s if config.crm == "hubspot" and config.hubspot else None
    metrics = SyncMetrics(crm=connector.name, stream=pipeline.stream, rate_limit=rate_limit, version=_version())
    on_call = getattr(connector, "on_call", None)
    if callable(on_call):
        on_call(metrics.on_api_call)
    metrics.daily_remaining_from(lambda: getattr(connector, "daily_remaining", None))
    metrics.rate_limit_from(getattr(connector, "limit_info", None))

    hooks = webhook_settings(config)
    webhooks = WebhookService(hooks, pipeline, store, metrics) if hooks is not None else None

    probe_app = app
    if config.hubspot is not None:
        fast = config.hubspot.model_copy(update={"max_retries": PROBE_MAX_RETRIES, "timeout_s": PROBE_TIMEOUT_S})
        probe_app = dataclasses.replace(app, config=config.model_copy(update={"hubspot": fast}))
    probe = probe_app.connector()
    probe_on_call = getattr(probe, "on_call", None)
    if callable(probe_on_call):
        probe_on_call(metrics.on_api_call)
    return Daemon(
        settings,
        store=store,
        pipeline=pipeline,
        metrics=metrics,
        crm_probe=probe.describe,
        evaluator=lambda: scheduled_evaluation(app, store),
        trainer=lambda: scheduled_training(app, store),
        auc_drop_warn=config.outcomes.auc_drop_warn,
        configured_threshold=app.rules.mql_threshold,
        webhooks=webhooks,
    )


def scheduled_evaluation(app: App, store: StateStore) -> dict[str, Any]:
    """``leadsync evaluate --json`` on the daemon's own store (objective f1), for the ``evaluate`` job."""
    from leadsync.evaluate_store import evaluate_store

    return evaluate_store(store, app.mapping, app.rules, app.config.outcomes, "f1").as_dict()


def scheduled_training(app: App, store: StateStore) -> dict[str, Any]:
    """The ``train`` job: a challenger trained on the store, active only if it beats the active model."""
    from leadsync.model_train import champion_challenger

    return champion_challenger(app, store)


def run_daemon(app: App, *, port: int | None = None, host: str | None = None) -> int:
    """Run ``leadsync run`` in this process until SIGTERM/SIGINT; returns the exit code.

    When the shutdown grace ran out with a pass stuck in a CRM call, the process exits here and now
    (``os._exit``): the worker thread would otherwise keep the interpreter alive past the grace period.
    """
    register_config_secrets(app.config)
    store = StateStore(app.config.state.url)
    daemon: Daemon | None = None
    try:
        daemon = build_daemon(app, store, port=port, host=host)
        code = daemon.run(install_signals=True)
    finally:
        if daemon is None or not daemon.pass_abandoned:
            store.close()
    if daemon.pass_abandoned:
        sys.stderr.flush()
        os._exit(code)
    return code


def migrate(app: App) -> tuple[str | None, str | None]:
    """``alembic upgrade head`` on the configured store; returns (revision before, revision after)."""
    register_config_secrets(app.config)
    store = StateStore(app.config.state.url)
    try:
        before = store.schema_revision()
        store.migrate()
        return before, store.schema_revision()
    finally:
        store.close()
