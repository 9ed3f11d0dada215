"""``leadsync init --from-csv``: a starter config written from an export's own columns and values.

Columns named like a canonical attribute (``email``, ``Job Title``, ``Company Name``) map to it; every other
column becomes a custom attribute (its name in snake_case) with a type inferred from the first
:data:`SAMPLE_ROWS` records. Each text column with at most :data:`MAX_CATEGORIES` distinct values gets a
``points_by_value`` table listing every value with its count (points 0, to fill in), each numeric column
quartile ``points_by_range`` bands; with a label column, each value's and band's conversion rate is a
comment beside it. The file is written so that ``check --input`` passes on the same CSV.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from leadsync.config import CsvFileConfig
from leadsync.csv_dialect import CsvDialect, likely_placeholders, resolve
from leadsync.evaluate_cmd import parse_label
from leadsync.scorefile import Sample, ScoreFileError, open_output, read_sample
from mappings import FieldSpec, LeadMapping, load_mapping
from mappings.mapping import TValueType
from scoring import Lead
from scoring.rules import DERIVED_ATTRIBUTES

SAMPLE_ROWS = 10_000
#: a text column with at most this many distinct values is categorical: it gets a lookup table
MAX_CATEGORIES = 30
#: other spellings of canonical attributes seen in exports (after snake_casing the column name)
ALIASES = {
    "email_address": "email",
    "e_mail": "email",
    "title": "job_title",
    "company_name": "company",
    "account_name": "company",
    "number_of_employees": "employees",
    "employee_count": "employees",
    "company_size": "employees",
    "revenue": "annual_revenue",
    "lead_owner": "owner",
    "created_date": "created_at",
    "create_date": "created_at",
}
_NUMERIC = ("int", "float", "range")
#: a column is an id only when the sample has at least this many rows (a 5-row file proves nothing)
MIN_ID_ROWS = 20


def snake_case(name: str) -> str:
    """``Lead Origin`` -> ``lead_origin``, ``TimeOnSite (s)`` -> ``time_on_site_s``; never empty."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    return text or "column"


@dataclass
class ColumnPlan:
    """How one column is mapped, and the rule (if any) the starter config gives it."""

    column: str
    attribute: str
    type: TValueType
    canonical: bool
    counts: Counter[str] = field(default_factory=Counter)  #: value -> rows (categorical columns)
    numbers: list[float] = field(default_factory=list)  #: the parsed values (numeric columns)
    #: a different value on every row (a record id, a lead number): mapped commented out, no rule
    identifier: bool = False


def plan_columns(sample: Sample, dialect: CsvDialect, label: str | None) -> list[ColumnPlan]:
    """One plan per column of the sample, the label column left out."""
    defaults = _csv_mapping()
    canonical = {spec.property: attribute for attribute, spec in defaults.fields.items()}
    taken: set[str] = set()
    reserved = {*defaults.fields, *DERIVED_ATTRIBUTES, *Lead.__dataclass_fields__}
    plans = []
    for i, column in enumerate(sample.header):
        if column == label or not column.strip():  # an unnamed column (a trailing delimiter) cannot be mapped
            continue
        cells = [row[i].strip() for row in sample.rows]
        values = [c for c in cells if c not in dialect.nulls]
        snake = snake_case(column)
        attribute = canonical.get(column) or ALIASES.get(snake) or (snake if snake in defaults.fields else None)
        is_canonical = attribute is not None and attribute not in taken
        if not is_canonical:
            attribute = _unique(snake, taken | reserved)
        assert attribute is not None
        taken.add(attribute)
        kind = defaults.fields[attribute].type if is_canonical else _infer(values)
        plan = ColumnPlan(column, attribute, kind, is_canonical, identifier=_identifier(values, len(cells), kind))
        if kind in _NUMERIC:
            plan.numbers = _numbers(values, kind)
        elif kind == "str":
            plan.counts = Counter(values)
        plans.append(plan)
    return plans


def _identifier(values: list[str], rows: int, kind: TValueType) -> bool:
    """Filled on every row with a different text or whole number each time: an id, which a rule cannot
    score (``rules fit`` leaves the same columns out)."""
    if rows < MIN_ID_ROWS or len(values) < rows or len(set(values)) < rows or kind in ("float", "datetime"):
        return False
    return kind != "int" or all(float(v).is_integer() for v in values)


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def _infer(values: list[str]) -> TValueType:
    """The narrowest type every sampled value parses as: int, float, datetime, else text."""
    distinct = set(values)
    if not distinct:
        return "str"
    for kind in ("int", "float", "datetime"):
        parsed = [_convert(v, kind) for v in distinct]
        if all(p is not None for p in parsed) and (kind != "int" or all(float(v).is_integer() for v in distinct)):
            return kind
    return "str"


def _convert(value: str, kind: TValueType) -> Any:
    """``value`` read as the CSV mapping reads a column of type ``kind``; None when it does not parse."""
    return _csv_mapping().convert("", "value", value, lambda *_: None, FieldSpec(property="value", type=kind))


@cache
def _csv_mapping() -> LeadMapping:
    return load_mapping("csv")


def _numbers(values: list[str], kind: TValueType) -> list[float]:
    return [float(n) for n in (_convert(v, kind) for v in values) if n is not None]


def _yaml_text(value: str) -> str:
    """A YAML scalar for any text (JSON strings are YAML double-quoted scalars)."""
    return json.dumps(value, ensure_ascii=False)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


class _Rates:
    """Conversion rates by value and by band, from the label column (None without --label)."""

    def __init__(self, sample: Sample, label: str | None, source: Path) -> None:
        self.labels: list[bool | None] = []
        if label is None:
            return
        if label not in sample.header:
            raise ScoreFileError(f"{source}: no column {label!r} for --label (columns: {', '.join(sample.header)})")
        i = sample.header.index(label)
        for line, row in enumerate(sample.rows, start=2):
            try:
                self.labels.append(parse_label(row[i]))
            except ValueError as exc:
                raise ScoreFileError(f"{source}: record {line - 1}: column {label!r}: {exc}") from None

    def comment(self, rows: Iterable[int], count: int) -> str:
        """``# 120 leads, 8.3% converted`` (of the labeled ones), or the count alone."""
        text = f"{count} lead{'s' if count != 1 else ''}"
        if not self.labels:
            return text
        outcomes = [self.labels[r] for r in rows if self.labels[r] is not None]
        if outcomes:
            text += f", {sum(1 for o in outcomes if o) / len(outcomes):.1%} converted"
        return text


def render(source: Path, sample: Sample, dialect: CsvDialect, label: str | None) -> str:
    """The starter config's text. Placeholders (:func:`leadsync.csv_dialect.likely_placeholders`, e.g. a
    form's ``Select`` frequent in several columns) are written to ``csv.null_values`` and read as missing
    for the tables too, with a comment saying where they were found (delete one to keep it as a value)."""
    placeholders = likely_placeholders(sample.header, sample.rows, dialect.nulls)
    dialect = dataclasses.replace(dialect, nulls=dialect.nulls | set(placeholders))
    plans = plan_columns(sample, dialect, label)
    rates = _Rates(sample, label, source)
    scope = "all" if sample.complete else "the first"
    lines = [
        f"# leadsync starter config for {source.name}, written by `leadsync init --from-csv` from {scope} "
        f"{len(sample.rows)} rows.",
        "# Fill in the points (0 everywhere for now), then: leadsync check --input FILE; leadsync score --input FILE",
        "csv:",
        # detected on every read, so that the same export saved with `;` or tabs scores as it is
        f"  # delimiter: {_yaml_text(dialect.delimiter)}   # detected ({_yaml_text(dialect.delimiter)} in this file); "
        "set it to force one",
        "  # cells that mean 'no value' besides the defaults (empty, NA, N/A, n/a, null, NULL, None, #N/A);",
        "  # a form's placeholder such as Select belongs here",
    ]
    for token, columns in placeholders.items():
        lines.append(f"  # {_yaml_text(token)}: a placeholder frequent in {', '.join(columns)} (delete it to score it)")
    lines += [f"  null_values: [{', '.join(_yaml_text(t) for t in placeholders)}]", "  fields:"]
    for plan in plans:
        spec = f"{{property: {_yaml_text(plan.column)}, type: {plan.type}}}"
        if plan.identifier:
            lines.append(f"    # {plan.attribute}: {spec}  # an id (a different value on every row): no rule")
            continue
        note = "  # canonical attribute" if plan.canonical else ""
        lines.append(f"    {plan.attribute}: {spec}{note}")
    lines += [
        "",
        "scoring:",
        "  base: none                 # `base: defaults` adds the packaged rules (free-mail penalties, ...)",
        "  qualification: {threshold: 60, release: 50}",
        "  grades: {hot: 70, warm: 40}",
        "  fit:",
    ]
    position = {name: i for i, name in enumerate(sample.header)}
    rules = 0
    for plan in plans:
        i = position[plan.column]
        if plan.identifier:
            continue
        if plan.counts and _categorical(plan):
            lines += _table(plan, sample, i, rates)
            rules += 1
        elif plan.numbers and len(set(plan.numbers)) >= 2:
            lines += _bands(plan, sample, i, dialect, rates)
            rules += 1
    if not rules:
        lines[-1] = "  fit: []   # no categorical or numeric column to start from"
    return "\n".join(lines) + "\n"


def _categorical(plan: ColumnPlan) -> bool:
    """At most MAX_CATEGORIES values, some repeated: an identifier or address is not a category."""
    groups = len(_grouped(plan.counts))
    return plan.attribute != "email" and 2 <= groups <= MAX_CATEGORIES and groups < sum(plan.counts.values())


def _grouped(counts: Counter[str]) -> dict[str, tuple[str, int]]:
    """Values that match as one (case-insensitive, trimmed) -> (most common spelling, rows)."""
    groups: dict[str, Counter[str]] = {}
    for value, n in counts.items():
        groups.setdefault(" ".join(value.split()).casefold(), Counter())[value] += n
    return {key: (c.most_common(1)[0][0], sum(c.values())) for key, c in groups.items()}


def _table(plan: ColumnPlan, sample: Sample, i: int, rates: _Rates) -> list[str]:
    groups = _grouped(plan.counts)
    rows_of: dict[str, list[int]] = {}
    for r, row in enumerate(sample.rows):
        rows_of.setdefault(" ".join(row[i].split()).casefold(), []).append(r)
    out = [
        f"    - name: {plan.attribute}",
        f"      attribute: {plan.attribute}",
        "      points_by_value:",
    ]
    for key, (spelling, n) in sorted(groups.items(), key=lambda kv: (-kv[1][1], kv[0])):
        out.append(f"        {_yaml_text(spelling)}: 0   # {rates.comment(rows_of.get(key, []), n)}")
    out.append("      default: 0              # any other value, and a missing one")
    return out


def _bands(plan: ColumnPlan, sample: Sample, i: int, dialect: CsvDialect, rates: _Rates) -> list[str]:
    low, high = min(plan.numbers), max(plan.numbers)
    quartiles = statistics.quantiles(plan.numbers, n=4, method="inclusive")
    if plan.type != "float":
        quartiles = [math.ceil(q) for q in quartiles]
    edges = sorted({q for q in quartiles if low < q <= high})
    parsed: list[float | None] = []
    for row in sample.rows:
        cell = row[i].strip()
        value = None if cell in dialect.nulls else _convert(cell, plan.type)
        parsed.append(None if value is None else float(value))
    out = [
        f"    - name: {plan.attribute}",
        f"      attribute: {plan.attribute}",
        f"      points_by_range:   # quartiles of {len(plan.numbers)} values, {_number(low)} to {_number(high)}",
    ]
    bounds = [None, *edges, None]
    for lo, hi in itertools.pairwise(bounds):
        keys = ([f"from: {_number(lo)}"] if lo is not None else []) + (
            [f"below: {_number(hi)}"] if hi is not None else []
        )
        members = [
            r for r, v in enumerate(parsed) if v is not None and (lo is None or v >= lo) and (hi is None or v < hi)
        ]
        out.append(f"        - {{{', '.join(keys)}, points: 0}}   # {rates.comment(members, len(members))}")
    return out


def write_starter(source: Path, label: str | None, path: Path, *, force: bool = False) -> str:
    """Write the starter config for ``source`` to ``path`` (never over an existing file unless ``force``)."""
    if path.exists() and not force:
        raise ScoreFileError(f"{path} already exists (use --force to overwrite)")
    dialect = resolve(source, CsvFileConfig())
    sample = read_sample(source, dialect, SAMPLE_ROWS)
    text = render(source, sample, dialect, label)
    with open_output(path) as out:  # complete or not at all, like the scored CSV
        out.write(text)
    return text
