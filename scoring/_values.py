"""Value coercion shared by every evaluation path (single lead, batch, columnar).

Every comparison the rules make goes through these helpers, so that the row path and the columnar path see
exactly the same numbers, texts and instants. Instants are integer microseconds since the Unix epoch (UTC),
which keeps all date arithmetic exact; naive datetimes are read as UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)  # noqa: DTZ001 - the UTC epoch for naive (UTC) datetimes
_ONE_US = timedelta(microseconds=1)
DAY_US = 86_400_000_000
#: points are kept as integers of 1/10,000 point so that every sum is exact and order-independent
UNIT = 10_000
#: counters above this are treated as this many units (keeps integer arithmetic far from overflow)
MAX_COUNT = 1_000_000
#: the largest points one rule may give or take (keeps integer arithmetic far from overflow)
MAX_POINTS = 1000

_TRUE_TEXT = frozenset({"true", "yes", "y", "1", "on", "t"})
_FALSE_TEXT = frozenset({"false", "no", "n", "0", "off", "f"})


def is_missing(value: Any) -> bool:
    """``None``, a blank string or an empty collection."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        return len(value) == 0
    return False


def to_number(value: Any) -> float | None:
    """A finite-or-infinite float, or ``None`` when the value is not a number (booleans are not numbers)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        try:
            result = float(value)
        except (TypeError, ValueError):
            return None
    return None if math.isnan(result) else result


def to_bool(value: Any) -> bool | None:
    """Booleans, 1/0 and the usual CRM texts (true/false, yes/no, ...); ``None`` when unknown."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 1:
            return True
        if value == 0:
            return False
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_TEXT:
            return True
        if text in _FALSE_TEXT:
            return False
    return None


def to_text(value: Any) -> str | None:
    """The value as text for string tests (numbers without a spurious ``.0``), ``None`` when missing."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def micros_of_datetime(value: datetime) -> int:
    """Exact microseconds since the epoch; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        return (value - _EPOCH_NAIVE) // _ONE_US
    return (value - EPOCH) // _ONE_US


def to_micros(value: Any) -> int | None:
    """An instant as microseconds since the epoch (datetime, date, or ISO-8601 text), else ``None``."""
    if isinstance(value, datetime):
        return micros_of_datetime(value)
    if isinstance(value, date):
        return micros_of_datetime(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return micros_of_datetime(parsed)
    return None


def datetime_of_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def as_aware(value: datetime) -> datetime:
    """A datetime with a timezone: a naive one is read as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def age_days(now_us: int, at_us: int) -> int:
    """Age in UTC calendar days: 0 today, 1 yesterday, ... (the future counts as today).

    Whole calendar days (not 24-hour periods from now) make every score a function of the inputs and
    today's UTC date: decay and date windows move once a day, at 00:00 UTC, so that syncing again later
    the same day writes nothing new to the CRM.
    """
    age = now_us // DAY_US - at_us // DAY_US
    return age if age > 0 else 0


def round_units(units: int) -> int:
    """Units to whole points, rounding halves up (exact integer arithmetic)."""
    return (units + UNIT // 2) // UNIT


def display(value: Any, limit: int = 80) -> str:
    """A short text for the explanation's ``value``."""
    text: str
    if type(value) is str:
        text = value.strip()
        return text if len(text) <= limit else text[: limit - 1] + "…"
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        text = value.astimezone(UTC).isoformat(timespec="seconds")
    elif isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        text = ", ".join(t for t in (to_text(v) for v in items) if t)
    else:
        text = to_text(value) or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iter_values(value: Any) -> Iterable[Any]:
    """A multi-valued attribute (list, tuple, set) as its items, anything else as itself."""
    if isinstance(value, list | tuple):
        return value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return (value,)


def is_multi(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)
