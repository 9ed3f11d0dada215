"""What every HubSpot API family shares: HubSpot's documented limits, its datetime format, its error bodies."""

from __future__ import annotations

import bisect
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from werkzeug.wrappers import Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.synthetic import LIFECYCLE_STAGES

#: search answers 400 when paging reaches this many results
SEARCH_RESULT_CAP = 10_000
SEARCH_MAX_LIMIT = 200
SEARCH_DEFAULT_LIMIT = 10
LIST_MAX_LIMIT = 100
LIST_DEFAULT_LIMIT = 10
BATCH_MAX_INPUTS = 100
#: longer string values reject the whole batch
MAX_VALUE_LENGTH = 65_536
#: properties returned when a request names none (HubSpot's documented default for contacts)
DEFAULT_PROPERTIES: tuple[str, ...] = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
#: returned whatever the request asks for
ALWAYS_RETURNED_PROPERTIES: tuple[str, ...] = ("createdate", "hs_object_id", "lastmodifieddate")
#: the default lifecycle order (the synthetic people's stages); ``other`` sits outside it
LIFECYCLE_ORDER: tuple[str, ...] = LIFECYCLE_STAGES
#: ``hubspot-api-client`` takes ``objectType`` as a name or as HubSpot's type id
_CONTACT_TYPES = frozenset({"contacts", "contact", "0-1"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;.]{2,}$")
_PROPERTY_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TOKEN_SPLIT_RE = re.compile(r"[\s@.,;:/\-_+()]+")
_INF = math.inf
_T = TypeVar("_T")


# helpers --------------------------------------------------------------------------------------------


def _ms_of(dt: datetime) -> int:
    """Epoch milliseconds, floored (HubSpot stores ms)."""
    return (dt - _EPOCH) // _MS


def _iso_ms(ms: int) -> str:
    """HubSpot's datetime format: ``2024-05-01T12:34:56.789Z`` (exact integer arithmetic, no float)."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(value: datetime) -> str:
    """Like :func:`_iso_ms` for a datetime (the fast path when seeding many contacts)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


def _parse_ms(value: str) -> int | None:
    """Epoch ms from an epoch-ms string, an ISO datetime (naive = UTC) or an ISO date; None if neither."""
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _ms_of(parsed)


def _correlation_id() -> str:
    return str(uuid.uuid4())


def _error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": _correlation_id(), "category": category, **extra}


class PortalError(Exception):
    """A request the portal refuses, with HubSpot's status, category and message."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        return json_response(_error_body(self.category, self.message, **self.extra), self.status)


def _validation_message(problems: Sequence[Mapping[str, Any]]) -> str:
    return "Property values were not valid: " + json.dumps(list(problems), separators=(",", ":"))


def _problem(name: str, error: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name, "localizedErrorMessage": message}


def _refuse_invalid(problems: Sequence[Mapping[str, Any]]) -> None:
    """A single-record write with invalid properties is one 400 listing them all, as HubSpot answers it.

    :raises PortalError: when there are problems.
    """
    if problems:
        raise PortalError(400, "VALIDATION_ERROR", _validation_message(problems), errors=_error_details(problems))


# property schema -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """Filter limits of one search request (HubSpot documents 5 groups, 6 filters per group, 18 in total)."""

    max_groups: int = 5
    max_filters_per_group: int = 6
    max_filters_total: int = 18


def _int_id(value: str | int | None) -> int | None:
    if isinstance(value, int):
        return value
    text = (value or "").strip()
    return int(text) if text.isdigit() else None


def _int_param(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PortalError(400, "VALIDATION_ERROR", f"{name} must be an integer, got {value!r}") from None


def _count(value: str | None) -> int:
    """A stored counter as an int (empty or garbage: 0)."""
    try:
        return int(float(value)) if value else 0
    except ValueError:
        return 0


def _check_batch_size(inputs: Any) -> None:
    if not isinstance(inputs, list):
        raise PortalError(400, "VALIDATION_ERROR", "inputs must be a list")
    if len(inputs) > BATCH_MAX_INPUTS:
        raise PortalError(
            400,
            "VALIDATION_ERROR",
            f"Batch input limit exceeded: {len(inputs)} inputs given, the maximum is {BATCH_MAX_INPUTS}",
            context={"maxInputs": [str(BATCH_MAX_INPUTS)]},
        )
    if any(not isinstance(i, Mapping) for i in inputs):
        raise PortalError(400, "VALIDATION_ERROR", "every input must be an object")


def _requested_names(requested: Iterable[Any] | None) -> list[str]:
    """The property names a request asks for: ``properties`` items, each possibly comma-separated."""
    wanted: list[str] = []
    for item in requested or []:
        wanted.extend(n.strip() for n in str(item).split(",") if n.strip())
    return wanted


def _insert_id(ids: list[int], new_id: int) -> None:
    """Keep a per-contact id list ascending (new ids are nearly always the largest, hence the fast path)."""
    if not ids or ids[-1] < new_id:
        ids.append(new_id)
    else:
        bisect.insort(ids, new_id)


def _page_after(ids: Sequence[int], limit: int, after: str | None) -> tuple[Sequence[int], str | None]:
    """One list page of ascending ids from cursor ``after`` (the id to start at): (ids, next cursor or None).

    :raises PortalError: 400 for a cursor that is not an id.
    """
    start = 0
    if after:
        cursor = _int_id(after)
        if cursor is None:
            raise PortalError(400, "VALIDATION_ERROR", f"Invalid after value: {after}")
        start = bisect.bisect_left(ids, cursor)
    nxt = str(ids[start + limit]) if start + limit < len(ids) else None
    return ids[start : start + limit], nxt


def _split_found(
    inputs: Sequence[Mapping[str, Any]], find: Callable[[str, Mapping[str, Any]], _T | None]
) -> tuple[list[_T], list[str]]:
    """A batch read's inputs as (found objects in input order, the ids not found), for a 207's error entry.

    ``find`` takes an input's ``id`` as text and the input itself (for a per-input ``idProperty``).
    """
    found: list[_T] = []
    missing: list[str] = []
    for item in inputs:
        key = str(item.get("id", ""))
        obj = find(key, item)
        if obj is None:
            missing.append(key)
        else:
            found.append(obj)
    return found, missing


def _create_each(
    inputs: Sequence[Mapping[str, Any]],
    validate: Callable[[Any], tuple[dict[str, str], list[dict[str, Any]]]],
    create: Callable[[dict[str, str], Mapping[str, Any]], _T],
) -> tuple[list[_T], list[dict[str, Any]]]:
    """A batch create, record by record: (created, 207 error entries naming each refused input's index).

    ``validate`` takes an input's ``properties`` and gives (values, problems); ``create`` takes the values and
    the whole input and may refuse it with a :class:`PortalError` (e.g. for its associations).
    """
    done: list[_T] = []
    errors: list[dict[str, Any]] = []
    for n, item in enumerate(inputs):
        values, problems = validate(item.get("properties") or {})
        if problems:
            errors.append(_standard_error("VALIDATION_ERROR", _validation_message(problems), [str(n)], problems))
            continue
        try:
            done.append(create(values, item))
        except PortalError as exc:
            errors.append(_standard_error(exc.category, exc.message, [str(n)]))
    return done, errors


def _not_found(contact_id: str) -> PortalError:
    return PortalError(404, "OBJECT_NOT_FOUND", "resource not found", context={"id": [contact_id]})


def _error_details(problems: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}} for p in problems]


def _standard_error(
    category: str, message: str, ids: list[str], problems: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """One entry of a 207's ``errors`` (the SDK's ``StandardError`` requires every field below)."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": ids},
        "links": {},
        "errors": _error_details(problems),
    }


def _missing_error(ids: list[str], object_name: str = "CONTACT") -> dict[str, Any]:
    return _standard_error(
        "OBJECT_NOT_FOUND",
        f"Could not get some {object_name} objects, they may be deleted or not exist. Check that ids are valid.",
        ids,
    )


# the HTTP app --------------------------------------------------------------------------------------------
