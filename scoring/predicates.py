"""Compiled conditions: one scalar predicate per test, used by the single-lead path directly and by the
columnar path on each distinct value (numeric ranges, dates, email checks and exists/missing have exact
vectorized equivalents built from the same numbers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np

from ._values import DAY_US, age_days, is_missing, is_multi, to_bool, to_micros, to_number, to_text
from .columns import Bools, Column
from .conditions import AllOf, Cond, NotOf, Range, Test
from .emails import CHECKS, EmailChecker
from .regex import compile_rule_regex

#: (value, now in microseconds) -> bool
Scalar: TypeAlias = Callable[[Any, int], bool]
#: (object, now) -> bool, the object being a lead row or an activity
RowPredicate: TypeAlias = Callable[[Any, int], bool]
Getter: TypeAlias = Callable[[Any], Any]

_MEMO_LIMIT = 1 << 16


def _any_element(base: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def pred(value: Any) -> bool:
        if is_multi(value):
            return any(base(v) for v in value)
        return base(value)

    return pred


def _memo(base: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Remembers verdicts on text values (titles, industries, urls repeat a lot)."""
    memo: dict[str, bool] = {}

    def pred(value: Any) -> bool:
        if type(value) is str:
            found = memo.get(value)
            if found is None:
                found = base(value)
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[value] = found
            return found
        return base(value)

    return pred


def _equals_any(args: tuple[Any, ...], ignore_case: bool) -> Callable[[Any], bool]:
    texts = {a.casefold() if ignore_case else a for a in args if isinstance(a, str)}
    numbers = {a for a in args if isinstance(a, float)}
    bools = {a for a in args if isinstance(a, bool)}

    def base(value: Any) -> bool:
        if texts:
            text = to_text(value)
            if text is not None and (text.casefold() if ignore_case else text) in texts:
                return True
        if numbers:
            number = to_number(value)
            if number is not None and number in numbers:
                return True
        if bools:
            flag = to_bool(value)
            if flag is not None and flag in bools:
                return True
        return False

    return _any_element(base)


def _in_range(r: Range) -> Callable[[float], bool]:
    lo, hi = r.lo, r.hi
    if lo is not None and hi is not None:
        if r.lo_inclusive and r.hi_inclusive:
            return lambda x: lo <= x <= hi
        if r.lo_inclusive:
            return lambda x: lo <= x < hi
        if r.hi_inclusive:
            return lambda x: lo < x <= hi
        return lambda x: lo < x < hi
    if lo is not None:
        return (lambda x: x >= lo) if r.lo_inclusive else (lambda x: x > lo)
    if hi is not None:
        return (lambda x: x <= hi) if r.hi_inclusive else (lambda x: x < hi)
    return lambda x: True


def _range_mask(r: Range, x: np.ndarray[Any, np.dtype[np.float64]]) -> Bools:
    mask: Bools = ~np.isnan(x)
    if r.lo is not None:
        mask &= (x >= r.lo) if r.lo_inclusive else (x > r.lo)
    if r.hi is not None:
        mask &= (x <= r.hi) if r.hi_inclusive else (x < r.hi)
    return mask


class CompiledTest:
    """One test: its scalar predicate and its vectorized form."""

    def __init__(self, test: Test, checker: EmailChecker) -> None:
        self.test = test
        self.checker = checker
        self.flag_mask = 0
        self.days = 0.0
        self._static: Callable[[Any], bool] | None = None
        op, arg, ic = test.op, test.arg, test.ignore_case
        if op == "equals":
            self._static = _memo(_equals_any((arg,), ic))
        elif op == "in":
            self._static = _memo(_equals_any(arg, ic))
        elif op in ("not_equals", "not_in"):
            inner = _equals_any((arg,) if op == "not_equals" else arg, ic)
            self._static = _memo(lambda v: not is_missing(v) and not inner(v))
        elif op == "range":
            check = _in_range(arg)

            def in_range(v: Any) -> bool:
                x = to_number(v)
                return x is not None and check(x)

            self._static = _any_element(in_range)
        elif op == "regex":
            rx = compile_rule_regex(arg, ignore_case=ic)

            def search(v: Any) -> bool:
                text = to_text(v)
                return text is not None and rx.search(text) is not None

            self._static = _memo(_any_element(search))
        elif op in ("contains", "starts_with", "ends_with"):
            needles = tuple(a.casefold() for a in arg) if ic else tuple(arg)

            def text_test(v: Any) -> bool:
                text = to_text(v)
                if text is None:
                    return False
                if ic:
                    text = text.casefold()
                if op == "contains":
                    return any(n in text for n in needles)
                if op == "starts_with":
                    return text.startswith(needles)
                return text.endswith(needles)

            self._static = _memo(_any_element(text_test))
        elif op == "exists":
            self._static = (lambda v: not is_missing(v)) if arg else is_missing
        elif op == "is":
            for name in arg:
                self.flag_mask |= CHECKS[name]
            mask = self.flag_mask
            self._static = lambda v: bool(checker.flags(v) & mask)
        elif op in ("within_days", "older_than_days"):
            self.days = arg
        else:  # pragma: no cover - the parser only produces the ops above
            raise AssertionError(op)

    def scalar(self, value: Any, now_us: int) -> bool:
        static = self._static
        if static is not None:
            return static(value)
        if is_multi(value):
            return any(self._date(v, now_us) for v in value)
        return self._date(value, now_us)

    def _date(self, value: Any, now_us: int) -> bool:
        """``within_days: N``: at most N calendar days old (the future counts as today);
        ``older_than_days: N``: more than N calendar days old."""
        micros = to_micros(value)
        if micros is None:
            return False
        age = age_days(now_us, micros)
        return age <= self.days if self.test.op == "within_days" else age > self.days

    def vector(self, col: Column, now_us: int, flags: Callable[[Column], Any]) -> Bools:
        op = self.test.op
        if op == "range" and not col.has_multi():
            return _range_mask(self.test.arg, col.numbers())
        if op in ("within_days", "older_than_days") and not col.has_multi():
            micros, ok = col.micros()
            age = np.maximum(now_us // DAY_US - micros // DAY_US, 0)
            return ok & ((age <= self.days) if op == "within_days" else (age > self.days))
        if op == "is":
            result: Bools = (flags(col) & self.flag_mask) != 0
            return result
        if op == "exists":
            missing = col.missing()
            return ~missing if self.test.arg else missing.copy()
        return col.map_unique(lambda v: self.scalar(v, now_us))


class CompiledCondition:
    """A condition tree compiled once for both paths. ``getter(name)`` gives the row-path accessor of an
    attribute; at evaluation time the columnar path passes ``column(name)``."""

    def __init__(self, cond: Cond, checker: EmailChecker, getter: Callable[[str], Getter]) -> None:
        self.cond = cond
        self._checker = checker
        self._tests: dict[Test, CompiledTest] = {}
        self.row: RowPredicate = self._row(cond, getter)

    def compiled(self, test: Test) -> CompiledTest:
        found = self._tests.get(test)
        if found is None:
            found = self._tests[test] = CompiledTest(test, self._checker)
        return found

    def _row(self, cond: Cond, getter: Callable[[str], Getter]) -> RowPredicate:
        if isinstance(cond, Test):
            compiled = self.compiled(cond)
            get = getter(cond.attribute)
            static = compiled._static
            if static is not None:
                return lambda obj, now_us: static(get(obj))
            scalar = compiled.scalar
            return lambda obj, now_us: scalar(get(obj), now_us)
        if isinstance(cond, NotOf):
            inner = self._row(cond.item, getter)
            return lambda obj, now_us: not inner(obj, now_us)
        parts = tuple(self._row(c, getter) for c in cond.items)
        if isinstance(cond, AllOf):
            if len(parts) == 2:
                a, b = parts
                return lambda obj, now_us: a(obj, now_us) and b(obj, now_us)
            return lambda obj, now_us: all(p(obj, now_us) for p in parts)
        if len(parts) == 2:
            a, b = parts
            return lambda obj, now_us: a(obj, now_us) or b(obj, now_us)
        return lambda obj, now_us: any(p(obj, now_us) for p in parts)

    def vector(self, column: Callable[[str], Column], now_us: int, flags: Callable[[Column], Any]) -> Bools:
        return self._vector(self.cond, column, now_us, flags)

    def _vector(
        self, cond: Cond, column: Callable[[str], Column], now_us: int, flags: Callable[[Column], Any]
    ) -> Bools:
        if isinstance(cond, Test):
            return self.compiled(cond).vector(column(cond.attribute), now_us, flags)
        if isinstance(cond, NotOf):
            return ~self._vector(cond.item, column, now_us, flags)
        masks = [self._vector(c, column, now_us, flags) for c in cond.items]
        out = masks[0].copy()
        for mask in masks[1:]:
            if isinstance(cond, AllOf):
                out &= mask
            else:
                out |= mask
        return out
