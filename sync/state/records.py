"""What the store hands out: one frozen dataclass per table family, and the one mapper from rows to them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_origin, get_type_hints

from sqlalchemy import Row

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


@dataclass(frozen=True, slots=True)
class CachedLead:
    id: str
    object_type: str
    email: str | None
    properties: dict[str, Any]  # raw CRM properties
    activities: list[dict[str, Any]]  # raw activity dicts
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class CachedCompany:
    """A lead's associated company as last read: the mapped properties and its CRM modification time."""

    id: str
    properties: dict[str, Any]
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredScore:
    lead_id: str
    total: int
    fit: int
    engagement: int
    penalties: int
    grade: str
    qualified: bool
    qualified_at: datetime | None
    hits: list[dict[str, Any]]
    reasons: str
    rules_version: str
    scored_at: datetime
    #: ``Score.points``, the unclamped total after part caps; None for a row scored before it was kept
    points: float | None = None


@dataclass(frozen=True, slots=True)
class FailedWrite:
    lead_id: str
    object_type: str
    properties: dict[str, str]
    message: str
    retriable: bool
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    lead_id: str
    email: str | None
    qualified_at: datetime
    status: str  # pending | done | failed
    attempts: int
    last_error: str | None
    created_at: datetime
    done_at: datetime | None
    #: set when a delivery attempt started: the CRM may have received it even if no outcome was recorded
    claimed_at: datetime | None = None
    claimed_by: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    status: str  # running | ok | partial | failed | stopped
    summary: dict[str, Any]
    error: str | None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """A lead's score from ``at`` on (until its next row): what evaluation reads "as of" a moment."""

    lead_id: str
    at: datetime
    total: int
    grade: str
    qualified: bool
    rules_version: str
    arm: str = "champion"  # champion | challenger


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """A lead's earliest conversion the CRM showed, and when leadsync first saw it."""

    lead_id: str
    converted_at: datetime
    source: str
    detail: dict[str, Any]
    first_seen_at: datetime | None = None


# --------------------------------------------------------------------------------------------------------
# the one mapper from rows to records


def string_dict(value: Mapping[Any, Any] | None) -> dict[str, str]:
    """A JSON object of CRM property values as ``{str: str}`` (written and failed-write properties)."""
    return {str(k): str(v) for k, v in (value or {}).items()}


def _identity(value: Any) -> Any:
    return value


def _json_dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _json_list(value: Sequence[Any] | None) -> list[Any]:
    return list(value or [])


def _converter(hint: Any) -> Callable[[Any], Any]:
    """How a column value becomes the field's type: JSON null -> empty, SQLite's 0/1 -> bool, keys/values -> str."""
    if hint is bool:
        return bool
    if get_origin(hint) is dict:
        return string_dict if get_args(hint) == (str, str) else _json_dict
    if get_origin(hint) is list:
        return _json_list
    return _identity


@cache
def _converters(cls: type[DataclassInstance]) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    hints = get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in fields(cls))


def from_row(cls: type[R], row: Row[*tuple[Any, ...]]) -> R:
    """The record ``cls`` from a row holding (at least) a column per field, named as the field."""
    values = row._mapping
    return cls(**{name: convert(values[name]) for name, convert in _converters(cls)})
