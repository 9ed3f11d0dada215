"""Telling leadsync's own write-backs (and the CRM's echoes of them) from real changes of a record."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from connectors.base import RawRecord
from sync.passwrites import MODIFIED_KEY
from sync.state import CachedLead

__all__ = ["echoes", "same", "soon_after_write"]


def soon_after_write(record: RawRecord, written: Mapping[str, str] | None, window: timedelta) -> bool:
    """Whether the record was modified within ``window`` after leadsync's last write to it (the CRM
    recomputing its own properties after a write; a later change is somebody else's)."""
    if not written or record.updated_at is None or MODIFIED_KEY not in written:
        return False
    try:
        wrote = datetime.fromisoformat(written[MODIFIED_KEY])
    except ValueError:
        return False
    return timedelta(0) <= record.updated_at - wrote <= window


def echoes(record: RawRecord, cached: CachedLead | None, written: Mapping[str, str], ignore: Collection[str]) -> bool:
    """Whether every property the CRM sent is what leadsync last read of it, or last wrote to it."""
    if cached is None:
        return False
    for name, value in record.properties.items():
        if name in ignore:
            continue
        expected = written[name] if name in written else cached.properties.get(name)
        if not same(value, expected):
            return False
    return True


def same(value: Any, expected: Any) -> bool:
    """One value as the CRM returned it and as leadsync last saw or wrote it: None and "" alike (an unset
    property comes back as either), numbers and datetimes by value ("42" and "42.0", "...Z" and "+00:00")."""
    a, b = ("" if value is None else str(value)), ("" if expected is None else str(expected))
    if a == b:
        return True
    if not a or not b:
        return False
    try:
        return float(a) == float(b)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(a.replace("Z", "+00:00")) == datetime.fromisoformat(b.replace("Z", "+00:00"))
    except ValueError:
        return False
