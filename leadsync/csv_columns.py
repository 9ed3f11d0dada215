"""A chunk of CSV text columns mapped to a columnar ``LeadBatch``: what ``LeadMapping.to_lead`` does row by
row, done once per distinct value of each column.

Each mapped column is dictionary-encoded (pyarrow); its null tokens are blanked and its distinct values
converted with the mapping's own ``convert`` (so a value reads the same as on the row path, and an
unreadable one is missing and reported), except that whole numbers, decimals and plain ISO-8601 date-times
are converted by pyarrow casts, which give the same numbers and instants. Text columns (``str``, ``list``,
``present``) cannot hold an unreadable value and are decoded only if a rule reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mappings import FieldSpec, LeadMapping
from mappings.mapping import EXPECTED
from scoring import Categorical, Column, LeadBatch
from scoring._values import micros_of_datetime

#: numbers pyarrow casts exactly as ``float()`` reads them (the rest go through the mapping's converter)
_PLAIN_NUMBER = r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$"
#: date-times ``datetime.fromisoformat`` and pyarrow read alike: date, optional hh:mm[:ss[.fff|.ffffff]], UTC
_PLAIN_INSTANT = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{3}|\.[0-9]{6})?)?(Z|\+00:00)?)?$"
)
#: the flags a ``Lead`` holds as False when missing
_FLAGS = frozenset({"opted_out", "bounced"})


@dataclass
class BadValues:
    """The values of one mapped attribute in a chunk that do not parse as its type (read as missing)."""

    attribute: str
    column: str  #: the CSV column
    problem: str  #: as the mapping words it: "expected a number for annual_revenue"
    rows: npt.NDArray[np.int64]  #: positions in the chunk, ascending
    raws: list[str]  #: the cell text of each


class _Ids(Sequence[str]):
    """Lead ids as ``score`` names them (the ``id`` column, else ``line-N``), built only when asked for."""

    def __init__(self, ids: Any, lines: npt.NDArray[np.int64]) -> None:
        self._ids = ids
        self._lines = lines

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        found = self._ids[i].as_py() if self._ids is not None else ""
        return found or f"line-{int(self._lines[i])}"


def chunk_batch(
    cells: Mapping[str, Any], lines: npt.NDArray[np.int64], mapping: LeadMapping, nulls: frozenset[str]
) -> tuple[LeadBatch, list[BadValues]]:
    """The leads of one chunk (``cells``: CSV column -> pyarrow string array) and the unreadable values found."""
    n = len(lines)
    eager: dict[str, Column] = {}
    lazy: dict[str, Callable[[], Column]] = {}
    bad: list[BadValues] = []
    for attribute, spec in mapping.fields_for(mapping.object_type).items():
        array = cells.get(spec.property)
        if array is None:
            eager[attribute] = _constant(n, False if spec.type == "present" or attribute in _FLAGS else None)
        elif spec.type in ("str", "list", "present"):
            lazy[attribute] = _text_column(array, attribute, spec, mapping, nulls)
        else:
            column, found = typed_column(array, attribute, spec, mapping, nulls)
            eager[attribute] = column
            if found is not None:
                bad.append(found)
    eager["object_type"] = _constant(n, mapping.object_type)

    def source(name: str) -> Column | None:
        make = lazy.pop(name, None)
        return make() if make is not None else None

    batch = LeadBatch.from_columns(n, eager, ids=_Ids(cells.get("id"), lines), column_source=source)
    return batch, bad


def _constant(n: int, value: Any) -> Column:
    return Column.of(Categorical(np.zeros(n, dtype=np.int64), [value]))


def _encode(array: Any, nulls: frozenset[str]) -> tuple[npt.NDArray[np.int64], Any, list[str]]:
    """Codes, distinct values (pyarrow) and the distinct values with null tokens blanked (Python)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(array)
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    distinct = encoded.dictionary
    cleaned = ["" if (value and value.strip() in nulls) else value for value in distinct.to_pylist()]
    return codes, distinct, cleaned


def _text_column(
    array: Any, attribute: str, spec: FieldSpec, mapping: LeadMapping, nulls: frozenset[str]
) -> Callable[[], Column]:
    def build() -> Column:
        codes, _, cleaned = _encode(array, nulls)
        if spec.type == "str":
            values: list[Any] = [value or None for value in cleaned]
        else:
            values = [mapping.convert("", attribute, value, None, spec) for value in cleaned]
        if attribute in _FLAGS:
            values = [bool(value) for value in values]
        return Column.coded(codes, values, multi=None if spec.type == "list" else False)

    return build


def typed_column(
    array: Any, attribute: str, spec: FieldSpec, mapping: LeadMapping, nulls: frozenset[str]
) -> tuple[Column, BadValues | None]:
    """A number, flag, range or date-time column, and where its values are unreadable."""
    import pyarrow as pa
    import pyarrow.compute as pc

    codes, distinct, cleaned = _encode(array, nulls)
    k = len(cleaned)
    unreadable = np.zeros(k, dtype=np.bool_)
    problem = f"expected {EXPECTED[spec.type]} for {attribute}"
    fast = np.zeros(k, dtype=np.bool_)
    pattern = _PLAIN_NUMBER if spec.type in ("int", "float") else _PLAIN_INSTANT if spec.type == "datetime" else None
    if pattern is not None and k:
        fast = pc.match_substring_regex(distinct, pattern).to_numpy(zero_copy_only=False)
        fast &= ~pc.is_in(distinct, value_set=pa.array(sorted(nulls), type=pa.string())).to_numpy(zero_copy_only=False)

    def slow(index: int) -> Any:
        value = mapping.convert("", attribute, cleaned[index], _flag(unreadable, index), spec)
        return value

    if spec.type == "datetime":
        micros = np.zeros(k, dtype=np.int64)
        ok = np.zeros(k, dtype=np.bool_)
        picked = np.flatnonzero(fast)
        if len(picked):
            texts = pc.replace_substring_regex(distinct.take(pa.array(picked)), r"(Z|\+00:00)$", "")
            try:
                micros[picked] = pc.cast(texts, pa.timestamp("us")).cast(pa.int64()).to_numpy()
                ok[picked] = True
            except pa.ArrowInvalid:  # a day that does not exist (Feb 30): the converter says which
                fast[:] = False
        for index in np.flatnonzero(~fast).tolist():
            value = slow(index)
            if value is not None:
                micros[index], ok[index] = micros_of_datetime(value), True
        column = Column.of_micros(micros[codes], ok[codes])
    else:
        values: list[Any] = [None] * k
        picked = np.flatnonzero(fast)
        if len(picked):
            numbers = pc.cast(distinct.take(pa.array(picked)), pa.float64()).to_numpy()
            found = np.trunc(numbers).astype(np.int64).tolist() if spec.type == "int" else numbers.tolist()
            for index, value in zip(picked.tolist(), found, strict=True):
                values[index] = value
        for index in np.flatnonzero(~fast).tolist():
            values[index] = slow(index)
        if attribute in _FLAGS:
            values = [bool(value) for value in values]
        numbers = None
        if (
            spec.type in ("int", "float", "range") and attribute not in _FLAGS
        ):  # what ``to_number`` gives for ints, floats and None
            numbers = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        column = Column.coded(codes, values, numbers=numbers, multi=False)
    if not unreadable.any():
        return column, None
    rows = np.flatnonzero(unreadable[codes]).astype(np.int64)
    raws = [cleaned[c] for c in codes[rows].tolist()]
    return column, BadValues(attribute, spec.property, problem, rows, raws)


def _flag(unreadable: npt.NDArray[np.bool_], index: int) -> Callable[[str, str, Any, str], None]:
    def bad(_id: str, _column: str, _raw: Any, _problem: str) -> None:
        unreadable[index] = True

    return bad


def as_text_rows(cells: Sequence[Any], header: Sequence[str], rows: npt.NDArray[np.int64]) -> list[dict[str, str]]:
    """Some rows of a chunk as ``{column: cell}`` dicts (what the model's annotator reads)."""
    import pyarrow as pa

    index = pa.array(rows)
    columns = [array.take(index).to_pylist() for array in cells]
    return [dict(zip(header, values, strict=True)) for values in zip(*columns, strict=True)]
