"""Write coercion: a written JSON value as the stored value of a field, or the error Salesforce answers."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from connectors.sandbox.salesforce.schema import (
    _EMAIL_RE,
    KEY_PREFIXES,
    FieldDef,
    RecordError,
    WriteRejected,
    to_18,
)
from connectors.sandbox.salesforce.soql import normalize_datetime

__all__ = ["coerce_value", "parse_datetime_value"]

_DT_INPUT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_datetime_value(text: str) -> str | None:
    """A written datetime (ISO 8601 in the forms Salesforce accepts; no zone = UTC) in stored form."""
    match = _DT_INPUT_RE.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        tz: timezone = UTC
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            tz = timezone(sign * timedelta(minutes=int(digits[:2]) * 60 + int(digits[2:])))
        moment = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo=tz
        )
    except ValueError:
        return None
    return normalize_datetime(moment)


def _parser_error(fd: FieldDef, raw: Any, java_type: str) -> WriteRejected:
    kind = "VALUE_STRING" if isinstance(raw, str) else "VALUE_TRUE" if raw is True else "VALUE_NUMBER_INT"
    if isinstance(raw, float):
        kind = "VALUE_NUMBER_FLOAT"
    elif isinstance(raw, list | dict):
        kind = "START_ARRAY" if isinstance(raw, list) else "START_OBJECT"
    return WriteRejected(
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {java_type} from {kind} value {raw} "
        f"or request may be missing a required field (field {fd.name})",
    )


def _number(fd: FieldDef, raw: Any) -> float | None:
    if isinstance(raw, bool | list | dict):
        raise _parser_error(fd, raw, "double")
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise _parser_error(fd, raw, "double") from None
    if not math.isfinite(value):
        raise _parser_error(fd, raw, "double")
    return value


def coerce_value(fd: FieldDef, raw: Any) -> tuple[Any, RecordError | None]:
    """The stored value for a written JSON value, or a per-record error.

    :raises WriteRejected: for values JSON cannot bind to the field's type (Salesforce fails the whole
        request with ``JSON_PARSER_ERROR`` then, before any record is looked at).
    """
    if raw is None or (raw == "" and fd.type != "boolean"):
        if fd.type == "boolean":
            return False, None
        if fd.type == "picklist" and fd.restricted:
            return None, RecordError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{fd.label}: bad value for restricted picklist field: null",
                (fd.name,),
            )
        return None, None
    kind = fd.type
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw, None
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true", None
        raise _parser_error(fd, raw, "boolean")
    if kind in ("double", "currency", "percent", "int"):
        value = _number(fd, raw)
        assert value is not None
        if kind == "int":
            if value != int(value):
                raise _parser_error(fd, raw, "int")
            if abs(value) >= 10 ** (fd.digits or 9):
                return None, RecordError(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"{fd.label}: value outside of valid range on numeric field: {raw}",
                    (fd.name,),
                )
            return int(value), None
        rounded = round(value, fd.scale) if fd.precision else value
        if fd.precision and abs(rounded) >= 10 ** (fd.precision - fd.scale):
            return None, RecordError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{fd.label}: value outside of valid range on numeric field: {raw}",
                (fd.name,),
            )
        return float(rounded), None
    if kind == "datetime":
        if isinstance(raw, int) and not isinstance(raw, bool):  # Jackson binds epoch milliseconds
            return normalize_datetime(datetime.fromtimestamp(raw / 1000, UTC)), None
        parsed = parse_datetime_value(raw) if isinstance(raw, str) else None
        if parsed is None:
            raise _parser_error(fd, raw, "datetime")
        return parsed, None
    if kind == "date":
        if isinstance(raw, str):
            text = raw.strip()[:10]
            try:
                return date.fromisoformat(text).isoformat(), None
            except ValueError:
                pass
        raise _parser_error(fd, raw, "date")
    if kind in ("reference", "id"):
        if not isinstance(raw, str):
            raise _parser_error(fd, raw, "String")
        full = to_18(raw.strip())
        prefixes = {KEY_PREFIXES.get(t, "") for t in fd.reference_to}
        if full is None or (prefixes and full[:3] not in prefixes):
            return None, RecordError("MALFORMED_ID", f"{fd.label}: id value of incorrect type: {raw}", (fd.name,))
        return full, None
    # text types
    if isinstance(raw, list | dict):
        raise _parser_error(fd, raw, "String")
    text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
    if fd.length and len(text) > fd.length:
        return None, RecordError(
            "STRING_TOO_LONG",
            f"{fd.label}: data value too large: {text[:80]}{'...' if len(text) > 80 else ''} (max length={fd.length})",
            (fd.name,),
        )
    if kind == "email" and not _EMAIL_RE.match(text):
        return None, RecordError("INVALID_EMAIL_ADDRESS", f"{fd.label}: invalid email address: {text}", (fd.name,))
    if kind == "picklist" and fd.restricted and text not in fd.picklist:
        return None, RecordError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{fd.label}: bad value for restricted picklist field: {text}",
            (fd.name,),
        )
    return text, None
