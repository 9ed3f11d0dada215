"""``schedule:`` and ``run:`` in the config: one clear error per mistake, and the APScheduler jobs they become."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from leadsync.app import build_app
from leadsync.config import ConfigError, load_config, parse_config
from leadsync.runner import daemon_settings, job_specs
from sync.daemon import Daemon
from sync.metrics import SyncMetrics
from sync.schedule import DEFAULT_PORT, JobSpec, build_trigger, crontab_trigger, parse_duration, parse_timezone
from sync.state import StateStore

BASE: dict[str, Any] = {"crm": "hubspot", "hubspot": {"access_token": "t"}}


def config_with(**sections: Any) -> Any:
    return parse_config(BASE | sections, source="leadsync.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2s", 2), ("5m", 300), ("1.5h", 5400), ("1d", 86400), ("250ms", 0.25), (30, 30), ("45", 45), (" 10 min ", 600)],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "", "m5", "-3s", True, None, "1e3s"])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_example_schedule_of_the_issue() -> None:
    config = config_with(schedule={"sync": {"every": "5m"}, "full_sync": {"cron": "0 3 * * *"}})
    sync, full = job_specs(config)
    assert (sync.name, sync.full, sync.every_s, sync.cron) == ("sync", False, 300, None)
    assert (full.name, full.full, full.every_s, full.cron) == ("full_sync", True, None, "0 3 * * *")
    # misfire_grace_time is always explicit: one interval for interval jobs, an hour for cron jobs
    assert sync.misfire_grace_time == 300 and full.misfire_grace_time == 3600
    assert sync.starts_at_once and not full.starts_at_once
    assert isinstance(build_trigger(sync), IntervalTrigger) and isinstance(build_trigger(full), CronTrigger)


def test_defaults_and_overrides() -> None:
    config = config_with()
    (sync,) = job_specs(config)
    assert sync.every_s == 300 and config.run.port == DEFAULT_PORT == 9464
    settings = daemon_settings(
        config_with(
            schedule={"sync": {"every": "2s", "jitter": "1s", "misfire_grace": "10s", "run_at_start": False}},
            run={"port": 9999, "shutdown_grace_s": 5, "lease_ttl_s": 12},
        ),
        port=0,
    )
    (job,) = settings.jobs
    assert (job.every_s, job.jitter_s, job.misfire_grace_time, job.starts_at_once) == (2, 1, 10, False)
    assert (settings.port, settings.shutdown_grace_s, settings.lease_ttl_s) == (0, 5, 12)
    assert build_trigger(job).jitter == 1


def test_every_job_gets_max_instances_coalesce_and_misfire_grace(tmp_path: Path) -> None:
    config = config_with(
        schedule={"sync": {"every": "2s"}, "full_sync": {"cron": "0 3 * * *", "jitter": "5m"}},
        state={"url": f"sqlite:///{tmp_path / 's.db'}"},
    )
    app = build_app(config)
    store = StateStore(config.state.url)
    try:
        pipeline = app.pipeline(store)
        daemon = Daemon(
            daemon_settings(config),
            store=store,
            pipeline=pipeline,
            metrics=SyncMetrics(crm="hubspot", stream=pipeline.stream),
        )
        jobs = {job.id: job for job in daemon._scheduler.get_jobs()}
        assert set(jobs) == {"sync", "full_sync"}
        for job in jobs.values():
            assert job.max_instances == 1 and job.coalesce is True
        assert jobs["sync"].misfire_grace_time == 2 and jobs["full_sync"].misfire_grace_time == 3600
        assert jobs["full_sync"].trigger.jitter == 300
    finally:
        store.close()


def test_cron_weekdays_follow_cron_not_apscheduler_3() -> None:
    # APScheduler 3.x's from_crontab reads 0 as Monday; leadsync keeps cron's meaning (0 and 7: Sunday)
    saturday = datetime(2025, 3, 1, 12, tzinfo=UTC)
    zone = parse_timezone("UTC")
    assert crontab_trigger("0 9 * * 0", timezone=zone).get_next_fire_time(None, saturday).weekday() == 6
    assert crontab_trigger("0 9 * * 7", timezone=zone).get_next_fire_time(None, saturday).weekday() == 6
    assert crontab_trigger("0 9 * * 1-5", timezone=zone).get_next_fire_time(None, saturday).weekday() == 0
    assert crontab_trigger("0 9 * * sat", timezone=zone).get_next_fire_time(None, saturday).day == 8


@pytest.mark.parametrize(
    ("schedule", "key", "expected"),
    [
        ({"sync": {"every": "5x"}}, "schedule.sync.every", "a duration such as 2s, 5m"),
        ({"sync": {"every": 0}}, "schedule.sync.every", "longer than 0s"),
        ({"sync": {}}, "schedule.sync", "exactly one of `every`"),
        ({"sync": {"every": "1m", "cron": "* * * * *"}}, "schedule.sync", "exactly one of `every`"),
        ({"full_sync": {"cron": "0 3 * *"}}, "schedule.full_sync.cron", "five crontab fields"),
        ({"full_sync": {"cron": "61 3 * * *"}}, "schedule.full_sync.cron", "invalid crontab expression"),
        ({"full_sync": {"cron": "0 3 * * 8"}}, "schedule.full_sync.cron", "0 and 7 are Sunday"),
        ({"sync": {"every": "1m", "timezone": "Mars/Olympus"}}, "schedule.sync.timezone", "IANA time zone"),
        ({"sync": {"every": "1m", "jitter": "soon"}}, "schedule.sync.jitter", "duration"),
        ({"sync": {"evry": "1m"}}, "schedule.sync.evry", "unknown key"),
        ({"nightly": {"every": "1d"}}, "schedule.nightly", "unknown key"),
    ],
)
def test_schedule_mistakes_name_file_key_and_expectation(schedule: Any, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(schedule=schedule)
    assert caught.value.path == "leadsync.yaml"
    assert caught.value.key == key
    assert expected in caught.value.expected


@pytest.mark.parametrize(
    ("run", "key"),
    [
        ({"port": 70000}, "run.port"),
        ({"shutdown_grace_s": 0}, "run.shutdown_grace_s"),
        ({"lease_ttl_s": 0.5}, "run.lease_ttl_s"),
    ],
)
def test_run_section_mistakes(run: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(run=run)
    assert caught.value.key == key


def test_no_job_at_all_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"schedule: no job to run"):
        daemon_settings(config_with(schedule={"sync": None}))


def test_schedule_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "leadsync.yaml"
    path.write_text("crm: hubspot\nhubspot: {access_token: t}\nschedule:\n  full_sync: {cron: '0 25 * * *'}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) and "schedule.full_sync.cron" in str(caught.value)


def test_job_spec_needs_exactly_one_trigger() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JobSpec(name="sync", full=False)
