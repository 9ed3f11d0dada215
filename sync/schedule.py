"""What the daemon runs when: job specs, durations and crontab expressions, turned into APScheduler 3.x triggers.

Kept apart from the daemon so that config validation (``leadsync.config``) can use the very parsers the
scheduler will use: an expression that passes ``leadsync check`` is one that ``leadsync run`` accepts.

Crontab expressions follow standard cron semantics for the day of the week (``0`` and ``7`` are Sunday).
APScheduler 3.x's own ``CronTrigger.from_crontab`` counts ``0`` as Monday (a documented historical
mistake, fixed only in 4.x), so numeric weekdays are translated to names before APScheduler sees them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:  # APScheduler is imported by the functions that build triggers: `leadsync --help` needs none
    from apscheduler.triggers.base import BaseTrigger
    from apscheduler.triggers.cron import CronTrigger

__all__ = [
    "DEFAULT_CRON_MISFIRE_GRACE_S",
    "DEFAULT_PORT",
    "JobSpec",
    "build_trigger",
    "crontab_trigger",
    "parse_duration",
    "parse_timezone",
]

#: the daemon's /healthz, /readyz and /metrics port unless configured (the usual Prometheus exporter port);
#: here rather than in sync.daemon so that the config and the CLI can name it without importing the daemon
DEFAULT_PORT: Final = 9464
#: a cron job (e.g. a nightly full sync) that the scheduler could not start on time still runs when it is
#: at most this late; an interval job's default grace is one interval (the next tick supersedes it)
DEFAULT_CRON_MISFIRE_GRACE_S: Final = 3600

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNITS: Final = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DAY_NAMES: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DOW_TOKEN = re.compile(r"^(\d+)(?:-(\d+))?$")

DURATION_HELP: Final = "a duration such as 2s, 5m, 1h, 1d or a number of seconds"


def parse_duration(value: object) -> float:
    """Seconds of ``"30s"``, ``"5m"``, ``"1.5h"``, ``"1d"``, ``"250ms"`` or a plain number (seconds).

    :raises ValueError: for anything else, or a negative number.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    else:
        raise ValueError(f"expected {DURATION_HELP}")
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"expected {DURATION_HELP}, not a negative or infinite one")
    return seconds


def parse_timezone(name: str) -> tzinfo:
    """An IANA time zone (``UTC``, ``Europe/Paris``). :raises ValueError: for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone such as UTC or Europe/Paris") from None


def _day_of_week(field: str) -> str:
    """Standard cron weekday numbers (0/7 = Sunday) as names, which APScheduler 3.x reads unambiguously."""
    parts = []
    for token in field.split(","):
        match = _DOW_TOKEN.match(token)
        if match is None:
            if any(ch.isdigit() for ch in token):
                raise ValueError(
                    f"day-of-week {token!r}: use numbers 0-7 (0 and 7 are Sunday), ranges such as 1-5, "
                    "or names such as mon-fri (steps are not supported on weekdays)"
                )
            parts.append(token)  # *, names, name ranges: APScheduler reads them as cron does
            continue
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if first > 7 or last > 7 or first > last:
            raise ValueError(f"day-of-week {token!r}: weekday numbers go from 0 to 7 (0 and 7 are Sunday), low-high")
        # spelled out as names (e.g. 0-2 -> sun,mon,tue): APScheduler's week runs mon..sun, cron's sun..sat
        parts.extend(_DAY_NAMES[n] for n in range(first, last + 1))
    return ",".join(dict.fromkeys(parts))


def crontab_trigger(expr: str, *, timezone: tzinfo, jitter: float | None = None) -> CronTrigger:
    """A ``CronTrigger`` for a five-field crontab expression with standard cron weekday numbering.

    :raises ValueError: when the expression is not a valid five-field crontab line.
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected five crontab fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, dow = fields
    try:
        trigger = CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_day_of_week(dow),
            timezone=timezone,
            jitter=_jitter(jitter),
        )
    except ValueError as exc:
        raise ValueError(f"invalid crontab expression {expr!r}: {exc}") from None
    return trigger


def _jitter(seconds: float | None) -> int | None:
    # APScheduler 3.x applies jitter as whole seconds (random.uniform over an int range is fine too, but its
    # type contract says int); below one second, jitter is pointless against a multi-second schedule anyway
    if not seconds or seconds < 1:
        return None
    return int(seconds)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One scheduled job of the daemon, as the config describes it (exactly one of ``every``/``cron``)."""

    #: ``sync`` (incremental) or ``full_sync`` (reads everything)
    name: str
    full: bool
    every_s: float | None = None
    cron: str | None = None
    timezone: str = "UTC"
    #: delay each run by up to this many seconds, so replicas and tenants do not all hit the CRM at :00
    jitter_s: float = 0.0
    #: a run the scheduler could not start on time still starts when it is at most this late
    misfire_grace_s: float | None = None
    #: start a first run at once (interval jobs; cron jobs wait for their next time)
    run_at_start: bool | None = None

    def __post_init__(self) -> None:
        if (self.every_s is None) == (self.cron is None):
            raise ValueError(f"job {self.name}: expected exactly one of every or cron")

    @property
    def misfire_grace_time(self) -> int:
        """APScheduler's ``misfire_grace_time`` (whole seconds, at least 1), always set explicitly."""
        if self.misfire_grace_s is not None:
            return max(1, math.ceil(self.misfire_grace_s))
        if self.every_s is not None:
            return max(1, math.ceil(self.every_s))
        return DEFAULT_CRON_MISFIRE_GRACE_S

    @property
    def starts_at_once(self) -> bool:
        return self.run_at_start if self.run_at_start is not None else self.every_s is not None

    def describe(self) -> str:
        what = f"every {self.every_s:g}s" if self.every_s is not None else f"cron {self.cron!r} ({self.timezone})"
        return what + (f", jitter {self.jitter_s:g}s" if self.jitter_s else "")


def build_trigger(spec: JobSpec) -> BaseTrigger:
    """The APScheduler trigger of a job spec."""
    from apscheduler.triggers.interval import IntervalTrigger

    zone = parse_timezone(spec.timezone)
    if spec.every_s is not None:
        if spec.every_s <= 0:
            raise ValueError(f"job {spec.name}: every must be more than 0 seconds")
        return IntervalTrigger(seconds=spec.every_s, timezone=zone, jitter=_jitter(spec.jitter_s))
    assert spec.cron is not None
    return crontab_trigger(spec.cron, timezone=zone, jitter=spec.jitter_s)
