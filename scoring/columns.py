"""Columnar input for the batch path: one ``Column`` per attribute, and ``LeadBatch`` for leads + activities.

A column holds n values of one attribute as Python objects, as a numeric array, as instants (int64
microseconds) or as categorical codes. Whatever the form, it answers the same questions (``numbers()``,
``micros()``, ``missing()``, ``map_unique(fn)``) with the same coercions as the single-lead path
(``scoring._values``), so both paths agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from ._values import datetime_of_micros, display, is_missing, is_multi, micros_of_datetime, to_micros, to_number
from .model import Activity, Lead, QualificationState

I64: TypeAlias = npt.NDArray[np.int64]
F64: TypeAlias = npt.NDArray[np.float64]
Bools: TypeAlias = npt.NDArray[np.bool_]

#: the instant that stands for "no time" in int64 microsecond columns
NO_TIME = np.iinfo(np.int64).min
#: the attributes a ``Lead`` holds as fields (the rest live in ``Lead.attributes``)
LEAD_FIELDS = frozenset(Lead.__dataclass_fields__) - {"attributes"}


@dataclass(frozen=True, slots=True)
class Categorical:
    """Values as integer codes into ``categories`` (code -1 = missing): cheap for repeated values."""

    codes: npt.NDArray[np.integer[Any]]
    categories: Sequence[Any]


ColumnLike: TypeAlias = "Column | Categorical | Sequence[Any] | npt.NDArray[Any]"


def _key(value: Any, position: int) -> Any:
    """A dict key that keeps 1, 1.0 and True apart; unhashable values are never merged."""
    try:
        hash(value)
    except TypeError:
        return ("#unhashable", position)
    return (type(value), value)


_SIMPLE_TYPES = frozenset({str, int, float, bool, datetime, date, type(None)})


def _factorize(objects: list[Any]) -> tuple[list[Any], I64]:
    """Distinct values (in order of first appearance) and each value's code."""
    kinds = set(map(type, objects))
    if kinds <= _SIMPLE_TYPES and len(kinds - {type(None)}) <= 1:
        # one type (plus None): dict keys cannot confuse 1, 1.0 and True; all C loops
        cats = list(dict.fromkeys(objects))
        lookup = {value: code for code, value in enumerate(cats)}
        return cats, np.fromiter(map(lookup.__getitem__, objects), dtype=np.int64, count=len(objects))
    index: dict[Any, int] = {}
    cats = []
    codes: list[int] = []
    append = codes.append
    for position, value in enumerate(objects):
        key = value if type(value) is str or value is None else _key(value, position)
        code = index.get(key)
        if code is None:
            code = index[key] = len(cats)
            cats.append(value)
        append(code)
    return cats, np.array(codes, dtype=np.int64)


class Column:
    """n values of one attribute (see the module docstring)."""

    __slots__ = ("_cats", "_codes", "_factory", "_micros", "_missing", "_multi", "_numbers", "_objects", "_ok", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._objects: list[Any] | None = None
        self._factory: Callable[[], list[Any]] | None = None
        self._codes: I64 | None = None
        self._cats: list[Any] | None = None
        self._numbers: F64 | None = None
        self._micros: I64 | None = None
        self._ok: Bools | None = None
        self._missing: Bools | None = None
        self._multi: bool | None = None

    # -- construction ----------------------------------------------------------------------------------

    @classmethod
    def of(cls, values: ColumnLike, n: int | None = None) -> Column:
        if isinstance(values, Column):
            return values
        if isinstance(values, Categorical):
            codes = np.asarray(values.codes, dtype=np.int64)
            col = cls(len(codes))
            cats = list(values.categories)
            if (codes < 0).any():
                codes = np.where(codes < 0, len(cats), codes)
                cats.append(None)
            col._codes, col._cats = codes, cats
            return col
        if isinstance(values, np.ndarray):
            kind = values.dtype.kind
            col = cls(len(values))
            if kind == "f":
                col._numbers = values.astype(np.float64, copy=False)
                col._multi = False
            elif kind in "iu":
                col._numbers = values.astype(np.float64)
                col._objects = values.tolist()
                col._multi = False
            elif kind == "M":
                micros = values.astype("datetime64[us]").view(np.int64)
                col._ok = ~np.isnat(values)
                col._micros = np.where(col._ok, micros, 0)
                col._multi = False
            else:
                col._objects = values.tolist()
            return col
        objects = list(values)
        col = cls(len(objects) if n is None else n)
        col._objects = objects
        return col

    @classmethod
    def coded(
        cls, codes: I64, categories: list[Any], *, numbers: F64 | None = None, multi: bool | None = None
    ) -> Column:
        """Values as codes into ``categories`` (every code valid), with what the caller already knows:
        ``numbers``, ``to_number`` of each category (NaN for None), and whether any category is a list."""
        col = cls(len(codes))
        col._codes, col._cats, col._multi = codes, categories, multi
        if numbers is not None:
            col._numbers = numbers[codes] if len(codes) else np.zeros(0, dtype=np.float64)
        return col

    @classmethod
    def of_micros(cls, micros: I64, ok: Bools) -> Column:
        col = cls(len(micros))
        col._micros, col._ok, col._multi = micros, ok, False
        return col

    @classmethod
    def lazy(cls, n: int, factory: Callable[[], list[Any]], missing: Bools) -> Column:
        """Values computed only when someone needs them; ``missing`` is known up front."""
        col = cls(n)
        col._factory, col._missing = factory, missing
        return col

    @classmethod
    def empty(cls, n: int) -> Column:
        col = cls(n)
        col._codes, col._cats = np.zeros(n, dtype=np.int64), [None]
        return col

    # -- access ------------------------------------------------------------------------------------------

    def objects(self) -> list[Any]:
        if self._objects is None:
            if self._factory is not None:
                self._objects = self._factory()
            elif self._cats is not None and self._codes is not None:
                cats = self._cats
                self._objects = [cats[c] for c in self._codes.tolist()]
            elif self._micros is not None and self._ok is not None:
                self._objects = [
                    datetime_of_micros(m) if ok else None
                    for m, ok in zip(self._micros.tolist(), self._ok.tolist(), strict=True)
                ]
            elif self._numbers is not None:
                self._objects = [None if math.isnan(x) else x for x in self._numbers.tolist()]
            else:
                self._objects = [None] * self.n
        return self._objects

    def value_at(self, i: int) -> Any:
        if self._objects is not None:
            return self._objects[i]
        if self._cats is not None and self._codes is not None:
            return self._cats[int(self._codes[i])]
        if self._micros is not None and self._ok is not None:
            return datetime_of_micros(int(self._micros[i])) if self._ok[i] else None
        if self._numbers is not None:
            x = float(self._numbers[i])
            return None if math.isnan(x) else x
        return self.objects()[i]

    def codes(self) -> tuple[I64, list[Any]]:
        """Factorized values: codes into a list of distinct values (in order of first appearance)."""
        if self._codes is None or self._cats is None:
            if self._objects is None and self._numbers is not None and self._factory is None:
                uniq, inverse = np.unique(self._numbers, return_inverse=True)
                self._cats = [None if math.isnan(x) else x for x in uniq.tolist()]
                self._codes = inverse.astype(np.int64).reshape(-1)
            elif self._objects is None and self._micros is not None and self._ok is not None:
                keyed = np.where(self._ok, self._micros, NO_TIME)
                uniq, inverse = np.unique(keyed, return_inverse=True)
                self._cats = [None if m == NO_TIME else datetime_of_micros(m) for m in uniq.tolist()]
                self._codes = inverse.astype(np.int64).reshape(-1)
            else:
                self._cats, self._codes = _factorize(self.objects())
        return self._codes, self._cats

    def has_multi(self) -> bool:
        """Whether some value is a list/tuple/set (tests then use 'any element' semantics)."""
        if self._multi is None:
            _, cats = self.codes()
            self._multi = any(is_multi(c) for c in cats)
        return self._multi

    def numbers(self) -> F64:
        """``to_number`` of every value; NaN where it is ``None``."""
        if self._numbers is None:
            codes, cats = self.codes()
            table = np.array([_nan_if_none(to_number(c)) for c in cats], dtype=np.float64)
            self._numbers = table[codes] if len(codes) else np.zeros(0, dtype=np.float64)
        return self._numbers

    def micros(self) -> tuple[I64, Bools]:
        """``to_micros`` of every value, and where it is not ``None``."""
        if self._micros is None or self._ok is None:
            codes, cats = self.codes()
            found = [to_micros(c) for c in cats]
            table = np.array([0 if m is None else m for m in found], dtype=np.int64)
            valid = np.array([m is not None for m in found], dtype=np.bool_)
            self._micros, self._ok = table[codes], valid[codes]
        return self._micros, self._ok

    def missing(self) -> Bools:
        if self._missing is None:
            # only a column built from numbers or instants is missing exactly where they are; once derived
            # from other values (``numbers()`` of text), NaN also means "not a number"
            native = self._objects is None and self._factory is None and self._cats is None
            if native and self._numbers is not None:
                self._missing = np.isnan(self._numbers)
            elif native and self._ok is not None:
                self._missing = ~self._ok
            else:
                self._missing = self.map_unique(is_missing)
        return self._missing

    def map_unique(self, fn: Callable[[Any], bool]) -> Bools:
        """``fn`` of every value, computed once per distinct value."""
        codes, cats = self.codes()
        table = np.array([bool(fn(c)) for c in cats], dtype=np.bool_)
        return table[codes] if len(codes) else np.zeros(0, dtype=np.bool_)

    def map_unique_int(self, fn: Callable[[Any], int]) -> I64:
        """Like ``map_unique`` with int results; a column not yet factorized (typically unique values such
        as email addresses) is mapped value by value instead."""
        if self._codes is None and self._objects is not None:
            return np.fromiter(map(fn, self._objects), dtype=np.int64, count=self.n)
        codes, cats = self.codes()
        table = np.array([fn(c) for c in cats], dtype=np.int64)
        return table[codes] if len(codes) else np.zeros(0, dtype=np.int64)

    def map_values(self, fn: Callable[[Any], Any]) -> list[Any]:
        codes, cats = self.codes()
        mapped = [fn(c) for c in cats]
        return [mapped[c] for c in codes.tolist()]

    def display_at(self, rows: I64) -> list[str]:
        """``display`` of the values at some rows (once per distinct value when that is cheaper)."""
        if not len(rows):
            return []
        if self._codes is None and self._objects is not None and len(rows) * 4 < self.n:
            objects = self._objects
            return [display(objects[r]) for r in rows.tolist()]
        codes, cats = self.codes()
        picked = codes[rows]
        if len(cats) > 2 * len(rows):
            return [display(cats[c]) for c in picked.tolist()]
        table = [display(c) for c in cats]
        return [table[c] for c in picked.tolist()]

    def take(self, index: I64) -> Column:
        codes, cats = self.codes()
        col = Column(len(index))
        col._codes, col._cats = codes[index], cats
        return col


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


class LeadBatch:
    """Leads, their activities and previous qualification states, held column by column.

    Build it with ``LeadBatch.from_items`` (canonical objects) or ``LeadBatch.from_columns`` (arrays, e.g.
    a CSV or a benchmark). Activities are kept sorted by lead (stable, so each lead keeps its order).
    """

    def __init__(
        self,
        *,
        n: int,
        ids: Sequence[str],
        lead_columns: Mapping[str, Column],
        leads: Sequence[Lead] | None,
        activity_lead: I64,
        activity_kind: Column,
        activity_micros: I64,
        activity_columns: Mapping[str, Column],
        activities: Sequence[Activity] | None,
        previous_qualified: Bools,
        previous_qualified_at: Sequence[datetime | None],
        column_source: Callable[[str], Column | None] | None = None,
        activity_source: Callable[[str], Column | None] | None = None,
    ) -> None:
        self.n = n
        #: builds a lead column on first use (a CSV's text columns are decoded only if a rule reads them)
        self._column_source = column_source
        #: builds an activity attribute column on first use (cached activities are decoded only if read)
        self._activity_source = activity_source
        self.ids = ids
        self._lead_columns = dict(lead_columns)
        self._leads = leads
        self.activity_lead = activity_lead
        self.activity_kind = activity_kind
        self.activity_micros = activity_micros
        self._activity_columns = dict(activity_columns)
        self._activities = activities
        self.previous_qualified = previous_qualified
        self.previous_qualified_at = previous_qualified_at
        self._offsets: I64 | None = None

    def __len__(self) -> int:
        return self.n

    @property
    def m(self) -> int:
        """Number of activities."""
        return len(self.activity_lead)

    @property
    def offsets(self) -> I64:
        """Activities of lead i are ``offsets[i]:offsets[i + 1]``."""
        if self._offsets is None:
            self._offsets = np.searchsorted(self.activity_lead, np.arange(self.n + 1)).astype(np.int64)
        return self._offsets

    def lead_column(self, name: str) -> Column:
        col = self._lead_columns.get(name)
        if col is None and self._column_source is not None:
            col = self._column_source(name)
            if col is not None:
                if col.n != self.n:
                    raise ValueError(f"lead column {name!r} has {col.n} values, expected {self.n}")
                self._lead_columns[name] = col
        if col is None:
            leads = self._leads
            if leads is None:
                col = Column.empty(self.n)
            elif name in LEAD_FIELDS:
                col = Column.of([getattr(lead, name) for lead in leads])
            else:
                col = Column.of([lead.attributes.get(name) for lead in leads])
            self._lead_columns[name] = col
        return col

    def activity_column(self, name: str) -> Column:
        if name == "kind":
            return self.activity_kind
        col = self._activity_columns.get(name)
        if col is None:
            if name == "timestamp":
                col = Column.of_micros(self.activity_micros, np.ones(self.m, dtype=np.bool_))
            elif self._activity_source is not None:
                col = self._activity_source(name) or Column.empty(self.m)
            elif self._activities is None:
                col = Column.empty(self.m)
            else:
                col = Column.of([a.attributes.get(name) for a in self._activities])
            self._activity_columns[name] = col
        return col

    # -- constructors ----------------------------------------------------------------------------------

    @classmethod
    def from_items(cls, items: Iterable[tuple[Lead, Sequence[Activity], QualificationState | None]]) -> LeadBatch:
        leads: list[Lead] = []
        activities: list[Activity] = []
        lead_of: list[int] = []
        micros: list[int] = []
        kinds: list[str] = []
        prev_q: list[bool] = []
        prev_at: list[datetime | None] = []
        for i, (lead, acts, prev) in enumerate(items):
            leads.append(lead)
            prev_q.append(bool(prev is not None and prev.qualified))
            prev_at.append(None if prev is None else prev.qualified_at)
            if acts:
                activities.extend(acts)
                lead_of.extend([i] * len(acts))
                for a in acts:
                    micros.append(micros_of_datetime(a.timestamp))
                    kinds.append(a.kind)
        n = len(leads)
        return cls(
            n=n,
            ids=[lead.id for lead in leads],
            lead_columns={},
            leads=leads,
            activity_lead=np.array(lead_of, dtype=np.int64),
            activity_kind=Column.of(kinds),
            activity_micros=np.array(micros, dtype=np.int64),
            activity_columns={},
            activities=activities,
            previous_qualified=np.array(prev_q, dtype=np.bool_),
            previous_qualified_at=prev_at,
        )

    @classmethod
    def from_columns(
        cls,
        n: int,
        leads: Mapping[str, ColumnLike],
        *,
        ids: Sequence[str] | None = None,
        activity_lead: npt.ArrayLike | None = None,
        activity_kind: ColumnLike | None = None,
        activity_timestamp: npt.NDArray[Any] | Sequence[datetime] | None = None,
        activity_attributes: Mapping[str, ColumnLike] | None = None,
        previous_qualified: npt.ArrayLike | None = None,
        previous_qualified_at: Sequence[datetime | None] | None = None,
        column_source: Callable[[str], Column | None] | None = None,
        activity_source: Callable[[str], Column | None] | None = None,
    ) -> LeadBatch:
        """Columns by canonical attribute name (as ``Lead.get`` would return them); activity timestamps as
        int64 microseconds since the epoch, ``datetime64`` or datetimes (naive = UTC). ``column_source``
        builds a lead column not in ``leads`` when a rule first asks for it (None: all missing), ``activity_source``
        an activity attribute column (given sorted by lead)."""
        lead_cols = {name: Column.of(values) for name, values in leads.items()}
        for name, col in lead_cols.items():
            if col.n != n:
                raise ValueError(f"lead column {name!r} has {col.n} values, expected {n}")
        lead_idx = np.asarray(activity_lead if activity_lead is not None else [], dtype=np.int64)
        m = len(lead_idx)
        if activity_timestamp is None:
            stamps = np.zeros(m, dtype=np.int64)
        elif isinstance(activity_timestamp, np.ndarray) and activity_timestamp.dtype.kind == "M":
            stamps = activity_timestamp.astype("datetime64[us]").view(np.int64)
        elif isinstance(activity_timestamp, np.ndarray) and activity_timestamp.dtype.kind in "iu":
            stamps = activity_timestamp.astype(np.int64)
        else:
            stamps = np.array([micros_of_datetime(t) for t in activity_timestamp], dtype=np.int64)
        kind_col = Column.of(activity_kind if activity_kind is not None else [])
        act_cols = {name: Column.of(values) for name, values in (activity_attributes or {}).items()}
        if m and (lead_idx.min() < 0 or lead_idx.max() >= n):
            raise ValueError("activity_lead holds an index outside 0..n-1")
        if m and bool((np.diff(lead_idx) < 0).any()):
            order = np.argsort(lead_idx, kind="stable")
            lead_idx, stamps = lead_idx[order], stamps[order]
            kind_col = kind_col.take(order)
            act_cols = {name: col.take(order) for name, col in act_cols.items()}
        prev_q = (
            np.zeros(n, dtype=np.bool_)
            if previous_qualified is None
            else np.asarray(previous_qualified, dtype=np.bool_)
        )
        return cls(
            n=n,
            ids=ids if isinstance(ids, Sequence) else [str(i) for i in range(n)],
            lead_columns=lead_cols,
            leads=None,
            activity_lead=lead_idx,
            activity_kind=kind_col,
            activity_micros=stamps,
            activity_columns=act_cols,
            activities=None,
            previous_qualified=prev_q,
            previous_qualified_at=list(previous_qualified_at) if previous_qualified_at else [None] * n,
            column_source=column_source,
            activity_source=activity_source,
        )
