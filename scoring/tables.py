"""Lookup tables and numeric ranges: a rule's points read from the value of one attribute.

``points_by_value`` gives points per value of a categorical attribute (lead source, origin, occupation),
matched like the condition language's ``equals`` (text case-insensitive and trimmed, numbers as numbers,
true/false as flags); ``points_by_range`` gives points per numeric band (``from`` inclusive, ``below``
exclusive). ``default`` is for any other value, and for a missing one unless ``missing`` is given.

Both evaluation paths call the same ``ValueTable.lookup`` / ``RangeTable.lookup`` on each (distinct) value,
or, for a plain numeric column, ``RangeTable.lookup_vec``, which compares the same floats the same way.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from ._values import is_missing, is_multi, iter_values, to_bool, to_number, to_text
from .columns import F64, I64
from .conditions import show

TableKey: TypeAlias = str | float | bool

#: what a lookup found: the index of the table entry / band, or one of these
DEFAULT = -1
MISSING = -2


class TableError(ValueError):
    """A malformed table; ``subpath`` is relative to the rule (e.g. ``.points_by_range[1].below``)."""

    def __init__(self, subpath: str, problem: str) -> None:
        self.subpath = subpath
        self.problem = problem
        super().__init__(f"{subpath}: {problem}")


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _table_points(value: Any, where: str, max_points: float) -> float:
    if not _is_number(value):
        raise TableError(where, f"expected a number of points, got {show(value)}")
    if abs(value) > max_points:
        raise TableError(
            where, f"expected points between -{_num(max_points)} and {_num(max_points)}, got {show(value)}"
        )
    return float(value)


def match_text(key: TableKey) -> str:
    """The text a key is told apart by: two keys with the same text would match the same values."""
    text = to_text(key)
    assert text is not None
    return text.casefold()


@dataclass(frozen=True, slots=True)
class Band:
    """``from`` <= value < ``below`` (either bound may be absent)."""

    lo: float | None
    hi: float | None
    points: float

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"{_num(self.lo)} to {_num(self.hi)}"
        if self.lo is not None:
            return f"{_num(self.lo)} or more"
        assert self.hi is not None
        return f"below {_num(self.hi)}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.lo is not None:
            out["from"] = self.lo
        if self.hi is not None:
            out["below"] = self.hi
        out["points"] = self.points
        return out


def parse_value_table(raw: Any, max_points: float) -> tuple[tuple[TableKey, float], ...]:
    """``{value: points, ...}`` as (key, points) pairs in the order written; text keys trimmed."""
    if not isinstance(raw, Mapping) or not raw:
        raise TableError("", f"expected a mapping of value -> points (e.g. {{api: 3}}), got {show(raw)}")
    entries: list[tuple[TableKey, float]] = []
    seen: dict[str, TableKey] = {}
    for key, points in raw.items():
        if isinstance(key, bool):
            clean: TableKey = key
        elif _is_number(key):
            clean = float(key)
        elif isinstance(key, str) and key.strip():
            clean = key.strip()
        else:
            hint = " (for a missing value use the rule's `missing:` key)" if key is None or key == "" else ""
            raise TableError("", f"expected text, a number or true/false as keys, got {show(key)}{hint}")
        where = f".{clean}" if isinstance(clean, str) else f"[{show(clean)}]"
        text = match_text(clean)
        if text in seen:
            raise TableError(
                where, f"expected each value once; {show(seen[text])} and {show(key)} match the same values"
            )
        seen[text] = clean
        entries.append((clean, _table_points(points, where, max_points)))
    return tuple(entries)


def parse_range_table(raw: Any, max_points: float) -> tuple[Band, ...]:
    """``[{from, below, points}, ...]`` as bands in the order written; overlaps are refused."""
    if not isinstance(raw, list | tuple) or not raw:
        raise TableError("", f"expected a list of bands such as {{from: 100, below: 500, points: 5}}, got {show(raw)}")
    bands: list[tuple[Band, int]] = []
    for i, item in enumerate(raw):
        where = f"[{i}]"
        if not isinstance(item, Mapping):
            raise TableError(where, f"expected a band {{from: N, below: M, points: P}}, got {show(item)}")
        unknown = [k for k in item if k not in ("from", "below", "points")]
        if unknown:
            raise TableError(
                f"{where}.{unknown[0]}", "unknown key; expected from (inclusive), below (exclusive), points"
            )
        if "points" not in item:
            raise TableError(f"{where}.points", "missing; this key is required")
        bounds: dict[str, float | None] = {}
        for key in ("from", "below"):
            value = item.get(key)
            if value is not None and not _is_number(value):
                raise TableError(f"{where}.{key}", f"expected a number, got {show(value)}")
            bounds[key] = None if value is None else float(value)
        lo, hi = bounds["from"], bounds["below"]
        if lo is None and hi is None:
            raise TableError(where, "expected `from`, `below` or both")
        if lo is not None and hi is not None and not lo < hi:
            raise TableError(f"{where}.below", f"expected a number above `from` ({_num(lo)}), got {_num(hi)}")
        bands.append((Band(lo, hi, _table_points(item["points"], f"{where}.points", max_points)), i))
    ordered = sorted(bands, key=lambda b: _low(b[0]))
    for (a, i), (b, j) in itertools.pairwise(ordered):
        if a.hi is None or b.lo is None or b.lo < a.hi:
            first, second = sorted((i, j))
            raise TableError(
                f"[{second}]",
                f"expected bands that do not overlap; [{first}] and [{second}] ({a.describe()}, {b.describe()}) do",
            )
    return tuple(b for b, _ in bands)


def _low(band: Band) -> float:
    return -math.inf if band.lo is None else band.lo


def sorted_bands(bands: tuple[Band, ...]) -> tuple[Band, ...]:
    return tuple(sorted(bands, key=_low))


def _folded(value: Any) -> str | None:
    text = to_text(value)
    return None if text is None else text.casefold()


class ValueTable:
    """A compiled ``points_by_value``: ``lookup(value)`` gives the index of the matching entry, or
    ``DEFAULT`` / ``MISSING``."""

    def __init__(self, entries: tuple[tuple[TableKey, float], ...]) -> None:
        self.entries = entries
        texts: dict[Any, int] = {}
        numbers: dict[Any, int] = {}
        flags: dict[Any, int] = {}
        for i, (key, _) in enumerate(entries):
            if isinstance(key, bool):
                flags[key] = i
            elif isinstance(key, float):
                numbers[key] = i
            else:
                texts[key.casefold()] = i
        # text first, then number, then true/false, as ``equals`` tries them
        self._matchers = [(t, read) for t, read in ((texts, _folded), (numbers, to_number), (flags, to_bool)) if t]

    def _one(self, value: Any) -> int:
        for table, read in self._matchers:
            key = read(value)
            if key is not None:
                found = table.get(key)
                if found is not None:
                    return found
        return DEFAULT

    def lookup(self, value: Any) -> int:
        """A list-valued attribute takes its first element that is in the table."""
        if is_missing(value):
            return MISSING
        if is_multi(value):
            for item in iter_values(value):
                if not is_missing(item):
                    found = self._one(item)
                    if found >= 0:
                        return found
            return DEFAULT
        return self._one(value)


class RangeTable:
    """A compiled ``points_by_range``: ``lookup(value)`` gives the index of the band holding the value's
    number, or ``DEFAULT`` (not a number, or in no band) / ``MISSING``."""

    def __init__(self, bands: tuple[Band, ...]) -> None:
        """``bands`` in the order written; ``lookup`` gives indexes into that order."""
        order = sorted(range(len(bands)), key=lambda i: _low(bands[i]))
        self.bands = bands
        self._order = order
        self._order_arr = np.array(order, dtype=np.int64)
        bands = tuple(bands[i] for i in order)
        self._lows = [-math.inf if b.lo is None else b.lo for b in bands]
        self._highs = [math.inf if b.hi is None else b.hi for b in bands]
        self._lows_arr = np.array(self._lows, dtype=np.float64)
        self._highs_arr = np.array(self._highs, dtype=np.float64)
        # an unbounded band holds +-inf too
        self._top_open = bands[-1].hi is None

    def _band(self, x: float) -> int:
        i = bisect.bisect_right(self._lows, x) - 1
        if i >= 0 and (x < self._highs[i] or (i == len(self.bands) - 1 and self._top_open)):
            return self._order[i]
        return DEFAULT

    def lookup(self, value: Any) -> int:
        if is_missing(value):
            return MISSING
        for item in iter_values(value) if is_multi(value) else (value,):
            x = to_number(item)
            if x is not None:
                found = self._band(x)
                if found >= 0:
                    return found
        return DEFAULT

    def lookup_vec(self, x: F64, missing: np.ndarray[Any, np.dtype[np.bool_]]) -> I64:
        """``lookup`` of a column of plain (not list) values: ``x`` their numbers (NaN when not a number),
        ``missing`` where the value is missing."""
        with np.errstate(invalid="ignore"):
            i = np.searchsorted(self._lows_arr, x, side="right").astype(np.int64) - 1
            ok = i >= 0
            safe = np.maximum(i, 0)
            inside = x < self._highs_arr[safe]
            if self._top_open:
                inside |= i == len(self.bands) - 1
            ok &= inside & ~np.isnan(x)
        out: I64 = np.where(ok, self._order_arr[np.clip(i, 0, len(self.bands) - 1)], DEFAULT)
        return np.where(missing, MISSING, out)
