"""Raw feature columns -> the numeric matrix the gradient boosting reads, and back to readable values.

Why the encoding is learned from the training rows and stored with the model: at scoring time a lead must be
encoded exactly as the training rows were (the same category codes, the same dropped columns), whatever the
new data holds. Decisions, each recorded in the model card:

- a column is numeric when (nearly) every present value reads as a number or a yes/no, else categorical;
- text is compared case-folded and stripped (``Google`` and ``google`` are one source);
- categoricals keep their most frequent values (at least ``min_count`` rows each, at most ``max_categories``),
  the rest share one "other" code, and missing stays missing (the estimator handles it natively);
- columns that cannot generalise are dropped: empty, constant, dates, and identifier-like ones (every value
  distinct, or free text with about one value per row).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

TKind = Literal["numeric", "categorical"]
#: text that means "no value"
MISSING_TEXT = frozenset({"", "nan", "none", "null", "n/a", "na", "-"})
_TRUE = frozenset({"true", "yes", "y"})
_FALSE = frozenset({"false", "no", "n"})
#: share of present values that must read as numbers for a column to be numeric
NUMERIC_SHARE = 0.98
#: HistGradientBoosting's limit is 255 bins; far fewer generalise on a few thousand leads
MAX_CATEGORIES = 60
MIN_COUNT = 10
OTHER = "(other)"


@dataclass(frozen=True)
class FeatureSpec:
    """One encoded column: its kind and, for a categorical, the kept values in code order."""

    name: str
    kind: TKind
    categories: tuple[str, ...] = ()
    #: values outside ``categories`` get the code ``len(categories)`` (else missing)
    other: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "categories": list(self.categories), "other": self.other}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(str(data["name"]), data["kind"], tuple(data.get("categories") or ()), bool(data.get("other")))

    def label(self, code: float) -> str:
        """The readable value of an encoded cell (for explanations)."""
        if math.isnan(code):
            return "missing"
        if self.kind == "numeric":
            return f"{code:g}"
        k = int(code)
        return self.categories[k] if k < len(self.categories) else OTHER


@dataclass
class FeatureTable:
    """Raw feature columns of equal length (values as read: numbers, text, bools or None)."""

    columns: dict[str, list[Any]] = field(default_factory=dict)
    rows: int = 0

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> FeatureTable:
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        return cls({n: [row.get(n) for row in rows] for n in names}, len(rows))

    def take(self, index: npt.NDArray[np.intp]) -> FeatureTable:
        picked = index.tolist()
        return FeatureTable({n: [v[i] for i in picked] for n, v in self.columns.items()}, len(picked))

    def without(self, names: Iterable[str]) -> FeatureTable:
        drop = set(names)
        return FeatureTable({n: v for n, v in self.columns.items() if n not in drop}, self.rows)


def _text(value: Any) -> str | None:
    """Case-folded, stripped text; None when the value means missing."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip().casefold()
    return None if text in MISSING_TEXT else text


def _number(value: Any) -> float | None:
    """A number from a bool, int, float or numeric text (yes/no read as 1/0); None when it is not one."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    text = _text(value)
    if text is None:
        return math.nan
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    try:
        number = float(text.replace(",", "")) if text.count(",") and "." not in text else float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _is_date(value: Any) -> bool:
    if isinstance(value, datetime | date):
        return True
    if not isinstance(value, str) or len(value) < 8 or not value[:4].isdigit():
        return False
    try:
        datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def infer_specs(
    table: FeatureTable, *, max_categories: int = MAX_CATEGORIES, min_count: int = MIN_COUNT
) -> tuple[list[FeatureSpec], dict[str, str]]:
    """The encoding of each usable column, and why each other column was dropped (name -> reason)."""
    specs: list[FeatureSpec] = []
    dropped: dict[str, str] = {}
    for name, values in table.columns.items():
        present = [v for v in values if _text(v) is not None]
        if not present:
            dropped[name] = "empty"
            continue
        if sum(map(_is_date, present[:200])) >= 0.9 * min(len(present), 200):
            dropped[name] = "a date (its value after the outcome would leak; dates order the holdout instead)"
            continue
        numbers = [_number(v) for v in present]
        readable = [x for x in numbers if x is not None]
        if len(readable) >= NUMERIC_SHARE * len(present):
            distinct = len(set(readable))
            if distinct <= 1:
                dropped[name] = "constant"
            elif distinct == len(readable) >= 50 and all(x.is_integer() for x in readable):
                dropped[name] = "identifier-like (a distinct whole number in every row)"
            else:
                specs.append(FeatureSpec(name, "numeric"))
            continue
        counts = Counter(t for t in map(_text, present) if t is not None)
        if len(present) >= 50 and len(counts) >= 0.5 * len(present):
            dropped[name] = f"identifier-like or free text ({len(counts)} distinct values in {len(present)} rows)"
            continue
        kept = [v for v, c in counts.most_common(max_categories) if c >= min_count]
        other = len(kept) < len(counts)
        if len(kept) + other <= 1:
            dropped[name] = "constant" if len(counts) <= 1 else f"no value in at least {min_count} rows"
            continue
        specs.append(FeatureSpec(name, "categorical", tuple(sorted(kept)), other))
    return specs, dropped


def encode(specs: Sequence[FeatureSpec], table: FeatureTable) -> npt.NDArray[np.float64]:
    """The (rows, features) matrix: numbers as read, categories as codes, missing as NaN.

    Vectorised for the bulk path: a column's few distinct values are read once each, and every cell is then
    looked up in C (``map`` over a dict), never parsed again per row.
    """
    out = np.full((table.rows, len(specs)), np.nan)
    for j, spec in enumerate(specs):
        values = table.columns.get(spec.name)
        if values is None:
            continue  # a column the new data lacks is missing for every row
        if spec.kind == "numeric":
            out[:, j] = _numeric_column(values)
        else:
            codes = {c: float(k) for k, c in enumerate(spec.categories)}
            fallback = float(len(spec.categories)) if spec.other else math.nan

            def code(v: Any, codes: dict[str, float] = codes, fallback: float = fallback) -> float:
                t = _text(v)
                return math.nan if t is None else codes.get(t, fallback)

            out[:, j] = _by_distinct(values, code)
    return out


#: at most one of these may share a column for the distinct-value lookup: ``True == 1 == 1.0`` hash alike
_HASH_ALIKE = frozenset({bool, int, float})


def _by_distinct(values: list[Any], read: Any) -> npt.NDArray[np.float64]:
    """``read`` of every value, computed once per distinct value (the same few values repeat over the rows)."""
    types = set(map(type, values))
    if len(types & _HASH_ALIKE) <= 1 and types <= _HASH_ALIKE | {str, type(None)}:
        lookup = {v: read(v) for v in set(values)}
        return np.fromiter(map(lookup.__getitem__, values), dtype=np.float64, count=len(values))
    return np.array([read(v) for v in values], dtype=np.float64)


def _as_number(value: Any) -> float:
    number = _number(value)
    return math.nan if number is None else number


def _numeric_column(values: list[Any]) -> npt.NDArray[np.float64]:
    try:  # the bulk path: numbers and None only
        column = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return _by_distinct(values, _as_number)  # text such as yes/no or "" among the numbers
    column[~np.isfinite(column)] = np.nan
    return column
