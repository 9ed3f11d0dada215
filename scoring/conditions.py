"""The condition language: parsing YAML conditions into a small normalized tree.

A condition is a mapping. Its keys are attribute names (looked up with ``Lead.get``, or on an activity for
``event.where``) whose value is a test, or the combinators ``all`` / ``any`` (lists of conditions) and
``not`` (one condition). Several keys in one mapping must all hold.

A test is a scalar (equals), a list (in), or a mapping of operators::

    equals, not_equals, in, not_in            text (case-insensitive by default), number or true/false
    gt, gte, lt, lte, between: [lo, hi]       numeric ranges (numeric text such as "250" is read as 250)
    regex, contains, starts_with, ends_with   text; ``regex`` searches anywhere (anchor with ^ and $)
    ignore_case: false                        makes the text tests of this mapping case-sensitive
    exists: true|false, missing: true|false   present and not blank / absent or blank
    within_days: N, older_than_days: N        dates (datetime or ISO-8601 text; naive = UTC) relative to now
    is: free|disposable|role|invalid|competitor|company   email checks (a list means "any of")

A missing value satisfies no test except ``exists: false`` / ``missing: true``; so ``not_in`` is false for a
missing value while ``not: {x: {in: [...]}}`` is true.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeAlias

from .emails import CHECKS
from .regex import RegexError, compile_rule_regex

RANGE_OPS = ("gt", "gte", "lt", "lte", "between")
TEXT_OPS = ("equals", "not_equals", "in", "not_in", "regex", "contains", "starts_with", "ends_with")
OPS = (
    "equals",
    "not_equals",
    "in",
    "not_in",
    *RANGE_OPS,
    "regex",
    "contains",
    "starts_with",
    "ends_with",
    "exists",
    "missing",
    "within_days",
    "older_than_days",
    "is",
    "ignore_case",
)

Scalar: TypeAlias = str | float | bool


@dataclass(frozen=True, slots=True)
class Range:
    lo: float | None = None
    lo_inclusive: bool = True
    hi: float | None = None
    hi_inclusive: bool = True

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>=' if self.lo_inclusive else '>'} {_num(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<=' if self.hi_inclusive else '<'} {_num(self.hi)}")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class Test:
    """One test of one attribute. ``op`` is normalized: ``range`` (gt/gte/lt/lte/between), ``exists``
    (exists/missing), and the other operator names as written."""

    attribute: str
    op: str
    arg: Any
    ignore_case: bool = True


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class NotOf:
    item: Cond


Cond: TypeAlias = Test | AllOf | AnyOf | NotOf


class ConditionError(ValueError):
    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def show(value: Any) -> str:
    """A value as the YAML reader wrote it, for error messages."""
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return _num(float(value))
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, datetime | date):
        return f"the date {value.isoformat()}"
    return repr(value)


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _scalar(value: Any, path: str) -> Scalar:
    if isinstance(value, bool | str):
        return value
    if _is_number(value):
        return float(value)
    raise ConditionError(path, f"expected text, a number or true/false, got {show(value)}")


def _texts(value: Any, path: str) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise ConditionError(path, "expected text or a non-empty list of texts, got an empty list")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            where = path if not isinstance(value, list | tuple) else f"{path}[{i}]"
            raise ConditionError(where, f"expected non-empty text, got {show(item)}")
    return tuple(items)


def _non_negative(value: Any, path: str) -> float:
    if not _is_number(value) or value < 0:
        raise ConditionError(path, f"expected a number of days >= 0, got {show(value)}")
    return float(value)


def _number(value: Any, path: str) -> float:
    if not _is_number(value):
        raise ConditionError(path, f"expected a number, got {show(value)}")
    return float(value)


def parse_condition(raw: Any, path: str = "") -> Cond:
    """Parse a YAML condition; ``path`` prefixes error locations (e.g. ``.when``)."""
    if isinstance(raw, Test | AllOf | AnyOf | NotOf):
        return raw
    if not isinstance(raw, Mapping) or not raw:
        raise ConditionError(
            path,
            "expected a condition: a mapping of attribute -> test (e.g. {job_title: {regex: 'vp'}}), "
            f"or all/any/not, got {show(raw)}",
        )
    items: list[Cond] = []
    for key, value in raw.items():
        if not isinstance(key, str) or not key.strip():
            raise ConditionError(path, f"expected attribute names as keys, got {show(key)}")
        where = f"{path}.{key}"
        if key in ("all", "any"):
            if not isinstance(value, list | tuple) or not value:
                raise ConditionError(where, f"expected a non-empty list of conditions, got {show(value)}")
            subs = tuple(parse_condition(v, f"{where}[{i}]") for i, v in enumerate(value))
            items.append(AllOf(subs) if key == "all" else AnyOf(subs))
        elif key == "not":
            items.append(NotOf(parse_condition(value, where)))
        else:
            items.append(_parse_test(key, value, where))
    return items[0] if len(items) == 1 else AllOf(tuple(items))


def _parse_test(attribute: str, value: Any, path: str) -> Cond:
    if isinstance(value, list | tuple):
        if not value:
            raise ConditionError(path, "expected a non-empty list of values (means 'in'), got an empty list")
        return Test(attribute, "in", tuple(_scalar(v, f"{path}[{i}]") for i, v in enumerate(value)))
    if not isinstance(value, Mapping):
        if value is None:
            raise ConditionError(path, "expected a value, a list or a mapping of tests, got null (use `missing: true`)")
        return Test(attribute, "equals", _scalar(value, path))
    unknown = [k for k in value if k not in OPS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), OPS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConditionError(f"{path}.{unknown[0]}", f"unknown test{hint}; expected one of: {', '.join(OPS)}")
    ignore_case = value.get("ignore_case", True)
    if not isinstance(ignore_case, bool):
        raise ConditionError(f"{path}.ignore_case", f"expected true or false, got {show(ignore_case)}")
    tests: list[Cond] = []
    ranges = {k: value[k] for k in RANGE_OPS if k in value}
    if ranges:
        tests.append(Test(attribute, "range", _parse_range(ranges, path)))
    for op, arg in value.items():
        where = f"{path}.{op}"
        if op in RANGE_OPS or op == "ignore_case":
            continue
        if op in ("equals", "not_equals"):
            tests.append(Test(attribute, op, _scalar(arg, where), ignore_case))
        elif op in ("in", "not_in"):
            args = arg if isinstance(arg, list | tuple) else [arg]
            if not args:
                raise ConditionError(where, "expected a non-empty list of values, got an empty list")
            scalars = tuple(_scalar(v, f"{where}[{i}]") for i, v in enumerate(args))
            tests.append(Test(attribute, op, scalars, ignore_case))
        elif op == "regex":
            if not isinstance(arg, str) or not arg:
                raise ConditionError(where, f"expected a regular expression, got {show(arg)}")
            try:
                compile_rule_regex(arg, ignore_case=ignore_case)
            except RegexError as exc:
                raise ConditionError(where, f"invalid regular expression {arg!r}: {exc}") from None
            tests.append(Test(attribute, op, arg, ignore_case))
        elif op in ("contains", "starts_with", "ends_with"):
            tests.append(Test(attribute, op, _texts(arg, where), ignore_case))
        elif op in ("exists", "missing"):
            if not isinstance(arg, bool):
                raise ConditionError(where, f"expected true or false, got {show(arg)}")
            tests.append(Test(attribute, "exists", arg if op == "exists" else not arg))
        elif op in ("within_days", "older_than_days"):
            tests.append(Test(attribute, op, _non_negative(arg, where)))
        elif op == "is":
            names = _texts(arg, where)
            for i, name in enumerate(names):
                if name.lower() not in CHECKS:
                    at = where if len(names) == 1 and not isinstance(arg, list) else f"{where}[{i}]"
                    raise ConditionError(at, f"expected one of: {', '.join(CHECKS)}, got {show(name)}")
            tests.append(Test(attribute, "is", tuple(sorted({n.lower() for n in names}))))
    if not tests:
        raise ConditionError(path, f"expected at least one test (one of: {', '.join(OPS[:-1])})")
    return tests[0] if len(tests) == 1 else AllOf(tuple(tests))


def _parse_range(ops: Mapping[str, Any], path: str) -> Range:
    lo: float | None = None
    hi: float | None = None
    lo_inc = hi_inc = True
    if "between" in ops:
        arg = ops["between"]
        if not isinstance(arg, list | tuple) or len(arg) != 2 or not all(_is_number(v) for v in arg) or arg[0] > arg[1]:
            raise ConditionError(f"{path}.between", f"expected [low, high] with low <= high, got {show(arg)}")
        lo, hi = float(arg[0]), float(arg[1])
    for op in ("gt", "gte"):
        if op in ops:
            if lo is not None:
                raise ConditionError(f"{path}.{op}", "expected one lower bound (gt, gte or between), got two")
            lo, lo_inc = _number(ops[op], f"{path}.{op}"), op == "gte"
    for op in ("lt", "lte"):
        if op in ops:
            if hi is not None:
                raise ConditionError(f"{path}.{op}", "expected one upper bound (lt, lte or between), got two")
            hi, hi_inc = _number(ops[op], f"{path}.{op}"), op == "lte"
    if lo is not None and hi is not None and (lo > hi or (lo == hi and not (lo_inc and hi_inc))):
        raise ConditionError(path, "expected a range that some number can satisfy (low <= high)")
    return Range(lo, lo_inc, hi, hi_inc)


def to_json(cond: Cond) -> Any:
    """A canonical, JSON-able form (used for the rules version and for dumping rules)."""
    if isinstance(cond, AllOf):
        return {"all": [to_json(c) for c in cond.items]}
    if isinstance(cond, AnyOf):
        return {"any": [to_json(c) for c in cond.items]}
    if isinstance(cond, NotOf):
        return {"not": to_json(cond.item)}
    arg: Any = cond.arg
    if isinstance(arg, Range):
        arg = {"lo": arg.lo, "lo_inclusive": arg.lo_inclusive, "hi": arg.hi, "hi_inclusive": arg.hi_inclusive}
    elif isinstance(arg, tuple):
        arg = list(arg)
    out: dict[str, Any] = {"attribute": cond.attribute, "op": cond.op, "arg": arg}
    if cond.op in TEXT_OPS:
        out["ignore_case"] = cond.ignore_case
    return out


def attributes(cond: Cond) -> Iterator[str]:
    """Every attribute a condition reads, in order of appearance, each once."""
    seen: set[str] = set()
    for test in tests(cond):
        if test.attribute not in seen:
            seen.add(test.attribute)
            yield test.attribute


def tests(cond: Cond) -> Iterator[Test]:
    if isinstance(cond, Test):
        yield cond
    elif isinstance(cond, NotOf):
        yield from tests(cond.item)
    else:
        for item in cond.items:
            yield from tests(item)
