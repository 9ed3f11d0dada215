"""Raw CRM records to columns: what ``LeadMapping.to_lead`` does record by record, done once per distinct
value of each property, for the columnar scoring path (``scoring.LeadBatch``).

Each attribute's raw values (its property, then its fallbacks where that is empty) are factorized and every
distinct value converted with the mapping's own ``convert``, so a value reads exactly as ``to_lead`` reads it
and an unreadable one is missing and reported once per record holding it. Records of different object
types (Salesforce leads and contacts) are read with each type's own fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from mappings.mapping import EXPECTED, FieldSpec, LeadMapping, OnBadValue
from scoring import Categorical, Column
from scoring._values import micros_of_datetime

#: the flags a ``Lead`` holds as False when missing or unmapped
FLAGS = ("opted_out", "bounced")
#: date-times ``datetime.fromisoformat`` and pyarrow read alike: date, optional hh:mm[:ss[.fff|.ffffff]], UTC
PLAIN_INSTANT = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{3}|\.[0-9]{6})?)?(Z|\+00:00)?)?$"
)
#: below this many values, instants are parsed in Python (importing pyarrow costs more than it saves)
_ARROW_FROM = 2_000


_TEXT_TYPES = frozenset({str, type(None)})
#: value types no raw value can fail to convert to
_NEVER_BAD = frozenset({"str", "list", "present"})


def _empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _factorize(values: list[Any]) -> tuple[npt.NDArray[np.int64], list[Any]]:
    """Codes into the distinct values (first appearance order); a value of another type than ``str`` and
    ``None`` (Salesforce numbers and booleans) is keyed by its type too, so 1, 1.0 and True stay apart."""
    if set(map(type, values)) <= _TEXT_TYPES:
        distinct = list(dict.fromkeys(values))
        index = {v: k for k, v in enumerate(distinct)}
        return np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values)), distinct
    keyed: dict[Any, int] = {}
    distinct = []
    codes = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        key = v if type(v) is str or v is None else (type(v), repr(v))
        code = keyed.get(key)
        if code is None:
            code = keyed[key] = len(distinct)
            distinct.append(v)
        codes[i] = code
    return codes, distinct


def _raw_values(properties: Sequence[Mapping[str, Any]], rows: Sequence[int] | None, spec: FieldSpec) -> list[Any]:
    """The raw value of ``spec`` of each record: its property, else the first non-empty fallback."""
    picked = properties if rows is None else [properties[i] for i in rows]
    values = [p.get(spec.property) for p in picked]
    for fallback in spec.fallbacks:
        values = [p.get(fallback) if _empty(v) else v for v, p in zip(values, picked, strict=True)]
    return values


def lead_columns(
    mapping: LeadMapping,
    ids: Sequence[str],
    object_types: Sequence[str],
    properties: Sequence[Mapping[str, Any]],
    on_bad_value: OnBadValue | None = None,
) -> dict[str, Column]:
    """The mapped attributes of n records as columns (by canonical name, as ``Lead.get`` gives them), with
    ``id`` and ``object_type``. ``object_types[i]`` picks record i's fields, as in ``to_lead``. Every
    attribute is converted (and its unreadable values reported); see ``LeadColumns`` for columns on demand."""
    source = LeadColumns(mapping, ids, object_types, properties, on_bad_value)
    return {name: source.column(name) for name in source.names}


class LeadColumns:
    """The mapped attributes of n records, each converted when first asked for (``column``): a rule set
    that reads ten attributes of a thirty-field mapping converts ten. ``LeadBatch``'s ``column_source``."""

    def __init__(
        self,
        mapping: LeadMapping,
        ids: Sequence[str],
        object_types: Sequence[str],
        properties: Sequence[Mapping[str, Any]],
        on_bad_value: OnBadValue | None = None,
    ) -> None:
        self.mapping, self.ids, self.properties, self.on_bad_value = mapping, ids, properties, on_bad_value
        self.n = n = len(ids)
        self.kinds = [t if t in ("lead", "contact") else mapping.object_type for t in object_types]
        groups: dict[str, list[int]] = {}
        if len(set(self.kinds)) > 1:
            for i, kind in enumerate(self.kinds):
                groups.setdefault(kind, []).append(i)
        else:
            groups = {self.kinds[0] if self.kinds else mapping.object_type: []}
        self.groups = groups
        attributes = dict.fromkeys(a for kind in groups for a in mapping.fields_for(kind))
        self.names = ["id", "object_type", *attributes, *(f for f in FLAGS if f not in attributes)]
        self._attributes = attributes
        self._flag_default = Column.of(Categorical(np.zeros(n, dtype=np.int64), [False]))

    def reported(self) -> dict[str, Column]:
        """The columns whose values can be unreadable (numbers, flags, date-times, ranges), converted now so
        that every unreadable value is reported (none without ``on_bad_value``); text columns wait for a rule."""
        if self.on_bad_value is None:
            return {}
        typed = {
            name
            for kind in self.groups
            for name, spec in self.mapping.fields_for(kind).items()
            if spec.type not in _NEVER_BAD
        }
        return {name: self.column(name) for name in self.names if name in typed}

    def __call__(self, name: str) -> Column | None:
        return self.column(name) if name in self.names else None

    def column(self, name: str) -> Column:
        if name == "id":
            return Column.of(list(self.ids))
        if name == "object_type":
            return Column.of(self.kinds)
        if name not in self._attributes:
            return self._flag_default if name in FLAGS else Column.empty(self.n)
        mapping, groups = self.mapping, self.groups
        if len(groups) == 1:
            (kind,) = groups
            spec = mapping.fields_for(kind)[name]
            return _mapped(mapping, name, spec, self.ids, None, self.properties, self.on_bad_value)
        objects: list[Any] = [None] * self.n
        for kind, rows in groups.items():
            found = mapping.fields_for(kind).get(name)
            if found is None:
                fill = False if name in FLAGS else None
                for i in rows:
                    objects[i] = fill
                continue
            values = _mapped(mapping, name, found, self.ids, rows, self.properties, self.on_bad_value).objects()
            for i, value in zip(rows, values, strict=True):
                objects[i] = value
        return Column.of(objects)


def _mapped(
    mapping: LeadMapping,
    attribute: str,
    spec: FieldSpec,
    ids: Sequence[str],
    rows: Sequence[int] | None,
    properties: Sequence[Mapping[str, Any]],
    on_bad_value: OnBadValue | None,
) -> Column:
    codes, distinct = _factorize(_raw_values(properties, rows, spec))
    bad: list[int] = []
    converted: list[Any]
    if spec.type == "str" and not spec.transformed:
        converted = [_text(raw) for raw in distinct]  # what ``convert`` gives, without its per-value checks
    else:
        at = [0]

        def report(_id: str, _prop: str, _raw: Any, _problem: str) -> None:
            bad.append(at[0])

        converted = []
        for k, raw in enumerate(distinct):
            at[0] = k
            converted.append(mapping.convert("", attribute, raw, report, spec))
    if attribute in FLAGS:
        converted = [bool(v) for v in converted]
    if bad and on_bad_value is not None:
        problem = f"expected {EXPECTED[spec.type]} for {attribute}"
        is_bad = np.zeros(len(distinct), dtype=np.bool_)
        is_bad[bad] = True
        for pos in np.flatnonzero(is_bad[codes]).tolist():
            record = pos if rows is None else rows[pos]
            on_bad_value(ids[record], spec.property, distinct[int(codes[pos])], problem)
    numbers = None
    if spec.type in ("int", "float", "range") and attribute not in FLAGS:
        numbers = np.array([np.nan if v is None else float(v) for v in converted], dtype=np.float64)
    return Column.coded(codes, converted, numbers=numbers, multi=None if spec.type == "list" else False)


def _text(raw: Any) -> str | None:
    """``LeadMapping.convert`` of a plain text attribute (no map, compute or default)."""
    if raw is None:
        return None
    if type(raw) is not str:
        raw = str(raw).lower() if isinstance(raw, bool) else str(raw)
    return raw or None


def parse_instants(texts: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """ISO-8601 date-times (as ``datetime.fromisoformat`` reads them; naive = UTC) as int64 microseconds,
    and where they parsed. Plain UTC ones are cast by pyarrow in bulk, the others parsed one by one."""
    n = len(texts)
    micros = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    slow: Sequence[int] = range(n)
    if n >= _ARROW_FROM:
        import pyarrow as pa
        import pyarrow.compute as pc

        array = pa.array(texts, type=pa.string())
        fast = pc.match_substring_regex(array, PLAIN_INSTANT).to_numpy(zero_copy_only=False)
        picked = np.flatnonzero(fast)
        if len(picked):
            plain = pc.replace_substring_regex(array.take(pa.array(picked)), r"(Z|\+00:00)$", "")
            try:
                micros[picked] = pc.cast(plain, pa.timestamp("us")).cast(pa.int64()).to_numpy()
                ok[picked] = True
                slow = np.flatnonzero(~fast).tolist()
            except pa.ArrowInvalid:  # a day that does not exist (Feb 30): parsed one by one
                pass
    for i in slow:
        parsed = _instant(texts[i])
        if parsed is not None:
            micros[i], ok[i] = micros_of_datetime(parsed), True
    return micros, ok


def _instant(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None
