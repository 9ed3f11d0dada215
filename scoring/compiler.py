"""The rules compiler: one compiled object per rule, evaluating it on one lead's row or on a batch's columns.

``compile_rule`` turns a validated ``RuleSpec`` into a ``ConditionRule``, ``EventRule`` or ``CounterRule``:
conditions compiled to closures (``predicates``), points in integer units, decay and point tables
precomputed (``points``). Each object evaluates in two ways over the SAME compiled pieces: ``row`` for one
``LeadRow`` and ``vec`` for a whole ``BatchView``, giving the same units, counts and explanation values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._values import DAY_US, MAX_COUNT, UNIT, age_days, display, is_missing, to_micros, to_number
from .columns import I64, Bools, Column
from .conditions import attributes
from .contexts import BatchView, Env, LeadRow
from .model import Activity, RuleHit, TPart
from .points import FACTOR_ONE, Decay, PointTable, scaled, scaled_vec, sum_by_lead
from .predicates import CompiledCondition
from .rules import PARTS, Rules, RuleSpec, effective_half_life
from .tables import RangeTable, ValueTable

Result = tuple["ConditionRule", int, int, str]  # rule, units, count, value


class ConditionRule:
    """A ``when`` / ``unless`` rule, and the base of every rule type: identity, the lead-level gate, points, cap."""

    type: str = "condition"

    def __init__(self, index: int, part: TPart, spec: RuleSpec, rules: Rules, env: Env) -> None:
        self.index = index
        self.part: TPart = part
        self.part_no = PARTS.index(part)
        self.spec = spec
        self.name = spec.name
        self.label = spec.display_label
        self.group = spec.group
        self.env = env
        self.when = CompiledCondition(spec.when, env.checker, env.lead_getter) if spec.when else None
        self.unless = CompiledCondition(spec.unless, env.checker, env.lead_getter) if spec.unless else None
        self._gate = self._compose_gate()
        self.value_attributes = tuple(attributes(spec.when)) if spec.when is not None else ()
        self._value_getters = tuple(env.lead_getter(a) for a in self.value_attributes)
        points = spec.points if isinstance(spec.points, tuple) else (spec.points or 0.0,)
        self.points: tuple[int, ...] = tuple(round(p * UNIT) for p in points)
        self.scalar_points = not isinstance(spec.points, tuple)
        self.cap = None if spec.cap is None else round(spec.cap * UNIT)
        self.negative = part == "penalties"
        self.hit_cache: dict[tuple[int, int, str], RuleHit] = {}
        self.piece_cache: dict[tuple[int, int, str], str] = {}
        #: whether the text of a hit (``hit_label``) depends on its value (lookup tables name it)
        self.label_varies = False

    def hit_label(self, value: str) -> str:
        """The short text of a hit with this value, as the reasons show it."""
        return self.label

    # gate ----------------------------------------------------------------------------------------------

    def _compose_gate(self) -> Callable[[Any, int], bool] | None:
        when = self.when.row if self.when is not None else None
        unless = self.unless.row if self.unless is not None else None
        if when is not None and unless is not None:
            return lambda row, now_us: when(row, now_us) and not unless(row, now_us)
        if unless is not None:
            return lambda row, now_us: not unless(row, now_us)
        return when

    def gate_row(self, row: LeadRow) -> bool:
        gate = self._gate
        return gate is None or gate(row, row.now_us)

    def gate_vec(self, cols: BatchView) -> Bools | None:
        mask: Bools | None = None
        if self.when is not None:
            mask = self.when.vector(cols.lead_column, cols.now_us, cols.flags)
        if self.unless is not None:
            lifted = self.unless.vector(cols.lead_column, cols.now_us, cols.flags)
            mask = ~lifted if mask is None else mask & ~lifted
        return mask

    # caps ----------------------------------------------------------------------------------------------

    def capped(self, units: int) -> int:
        if self.cap is None:
            return units
        return max(units, -self.cap) if self.negative else min(units, self.cap)

    def capped_vec(self, units: I64) -> I64:
        if self.cap is None:
            return units
        return np.maximum(units, -self.cap) if self.negative else np.minimum(units, self.cap)

    # explanation value -----------------------------------------------------------------------------------

    def value_row(self, row: LeadRow) -> str:
        for get in self._value_getters:
            value = get(row)
            if not is_missing(value):
                return display(value)
        return ""

    def values_vec(self, cols: BatchView, leads: I64) -> list[str]:
        """The explanation values of this rule for the given (fired) leads."""
        return first_present([cols.lead_column(a) for a in self.value_attributes], leads, None)

    # evaluation ------------------------------------------------------------------------------------------

    def row(self, row: LeadRow) -> tuple[int, int, str] | None:
        gate = self._gate
        if gate is not None and not gate(row, row.now_us):
            return None
        return self.points[0], 1, self.value_row(row)

    def vec(self, cols: BatchView) -> tuple[I64, I64]:
        gate = self.gate_vec(cols)
        fired = np.ones(cols.n, dtype=np.bool_) if gate is None else gate
        counts = fired.astype(np.int64)
        return counts * self.points[0], counts


class _RepeatedRule(ConditionRule):
    """What event and counter rules share: points that repeat (a ``PointTable``) and decay by age."""

    def __init__(self, index: int, part: TPart, spec: RuleSpec, rules: Rules, env: Env) -> None:
        super().__init__(index, part, spec, rules, env)
        half_life = effective_half_life(rules, spec)
        self.decay = Decay(half_life) if half_life else None
        self.table = PointTable(self.points)


class EventRule(_RepeatedRule):
    type = "event"

    def __init__(self, index: int, part: TPart, spec: RuleSpec, rules: Rules, env: Env) -> None:
        super().__init__(index, part, spec, rules, env)
        event = spec.event
        assert event is not None
        self.kinds = event.kind
        env.used_kinds.update(self.kinds)
        self.window = event.within_days  # in calendar days
        self.where = CompiledCondition(event.where, env.checker, env.activity_getter) if event.where else None
        self.where_attributes = tuple(attributes(event.where)) if event.where is not None else ()
        self._where_getters = tuple(env.activity_getter(a) for a in self.where_attributes)

    def row(self, row: LeadRow) -> tuple[int, int, str] | None:
        if not self.gate_row(row):
            return None
        window = self.window
        where = self.where
        now_us = row.now_us
        days: list[int] = []
        best: tuple[int, int] | None = None
        best_activity: Activity | None = None
        for kind in self.kinds:
            for idx, ts, age, activity in row.by_kind.get(kind, ()):
                if window is not None and age > window:
                    continue
                if where is not None and not where.row(activity, now_us):
                    continue
                days.append(age)
                if best is None or (ts, idx) > best:
                    best, best_activity = (ts, idx), activity
        if not days:
            return None
        return self.capped(self._units(days)), len(days), self._value_of(best_activity)

    def _units(self, days: list[int]) -> int:
        decay = self.decay
        if self.scalar_points:
            p = self.points[0]
            if decay is None:
                return p * len(days)
            return scaled(p * sum(decay.factor(d) for d in days))
        if decay is None:
            return self.table.total(len(days))
        ranked = self.table.ranked(len(days))
        days.sort()
        return scaled(sum(p * decay.factor(d) for p, d in zip(ranked, days, strict=True)))

    def _value_of(self, activity: Activity | None) -> str:
        if activity is None:
            return ""
        for get in self._where_getters:
            value = get(activity)
            if not is_missing(value):
                return display(value)
        return display(activity.kind)

    def vec(self, cols: BatchView) -> tuple[I64, I64]:
        batch = cols.batch
        n = cols.n
        sel = cols.kind_mask(self.kinds).copy()
        if self.window is not None:
            sel &= cols.act_days <= self.window
        if self.where is not None and sel.any():
            sel &= self.where.vector(cols.activity_column, cols.now_us, cols.flags)
        gate = self.gate_vec(cols)
        if gate is not None:
            sel &= gate[batch.activity_lead]
        cols.event_sel[self.index] = sel
        idx = np.flatnonzero(sel)
        leads = batch.activity_lead[idx]
        counts = np.bincount(leads, minlength=n).astype(np.int64)
        decay = self.decay
        if self.scalar_points and decay is None:
            return self.capped_vec(counts * self.points[0]), counts
        if not self.scalar_points and decay is None:
            return self.capped_vec(self.table.total_vec(counts)), counts
        assert decay is not None
        days = cols.act_days[idx]
        factors = decay.factors(days)
        if self.scalar_points:
            summed = sum_by_lead(leads, factors, n, FACTOR_ONE * len(leads))
            units = scaled_vec(summed * self.points[0])
        else:
            order = np.lexsort((days, leads))
            leads, factors = leads[order], factors[order]
            starts = np.cumsum(counts) - counts
            ranks = np.arange(len(leads), dtype=np.int64) - starts[leads]
            products = self.table.ranked_vec(counts[leads], ranks) * factors
            bound = self.table.largest * FACTOR_ONE * len(leads)
            units = scaled_vec(sum_by_lead(leads, products, n, bound))
        return self.capped_vec(units), counts

    def values_vec(self, cols: BatchView, leads: I64) -> list[str]:
        """For each lead, the value of the most recent matching activity (latest timestamp; on a tie the
        later one in the input), as ``_value_of`` does on the row path."""
        batch = cols.batch
        sel = cols.event_sel.get(self.index)
        if sel is None or not len(leads):
            return [""] * len(leads)
        idx = np.flatnonzero(sel)
        owner = batch.activity_lead[idx]
        order = np.lexsort((idx, batch.activity_micros[idx], owner))
        owner_sorted = owner[order]
        last = np.flatnonzero(np.append(owner_sorted[1:] != owner_sorted[:-1], True))
        latest = np.full(cols.n, -1, dtype=np.int64)
        latest[owner_sorted[last]] = idx[order][last]
        chosen = latest[leads]
        columns = [cols.activity_column(a) for a in self.where_attributes]
        return first_present(columns, chosen, batch.activity_kind)


class CounterRule(_RepeatedRule):
    type = "counter"

    def __init__(self, index: int, part: TPart, spec: RuleSpec, rules: Rules, env: Env) -> None:
        super().__init__(index, part, spec, rules, env)
        assert spec.counter is not None
        self.counter = spec.counter
        self._get = env.lead_getter(spec.counter)
        self.threshold = spec.at_least if spec.at_least is not None else (1.0 if spec.once else None)
        self.once = spec.once
        self.per = spec.per
        self.anchor = spec.decay_from or "last_engaged_at"
        self._get_anchor = env.lead_getter(self.anchor)

    def row(self, row: LeadRow) -> tuple[int, int, str] | None:
        if not self.gate_row(row):
            return None
        raw = self._get(row)
        x = to_number(raw)
        if x is None or (self.threshold is not None and x < self.threshold):
            return None
        if self.once:
            units, count = self.points[0], 1
        else:
            q = x / self.per
            if q < 1:
                return None
            count = MAX_COUNT if q >= MAX_COUNT else math.floor(q)
            units = self.table.total(count)
        if self.decay is not None:
            # decays from the anchor date; with no date at all it counts as fully decayed (so that
            # learning of any engagement date can only raise the score)
            anchor = to_micros(self._get_anchor(row))
            units = 0 if anchor is None else scaled(units * self.decay.factor(age_days(row.now_us, anchor)))
        return self.capped(units), count, display(raw)

    def vec(self, cols: BatchView) -> tuple[I64, I64]:
        x = cols.lead_column(self.counter).numbers()
        ok = ~np.isnan(x)
        gate = self.gate_vec(cols)
        if gate is not None:
            ok &= gate
        if self.threshold is not None:
            ok &= x >= self.threshold
        if self.once:
            count = ok.astype(np.int64)
            units = count * self.points[0]
        else:
            with np.errstate(invalid="ignore"):
                q = x / self.per
                ok &= q >= 1
                floored = np.where(ok, np.minimum(np.floor(np.where(ok, q, 1.0)), MAX_COUNT), 0.0)
            count = floored.astype(np.int64)
            units = np.where(ok, self.table.total_vec(count), 0)
        if self.decay is not None:
            micros, has = cols.lead_column(self.anchor).micros()
            has = has & ok
            decayed = np.zeros(cols.n, dtype=np.int64)
            if has.any():
                days = np.maximum(cols.now_us // DAY_US - micros[has] // DAY_US, 0)
                decayed[has] = scaled_vec(units[has] * self.decay.factors(days))
            units = decayed
        return self.capped_vec(units), count

    def values_vec(self, cols: BatchView, leads: I64) -> list[str]:
        return first_present([cols.lead_column(self.counter)], leads, None)


class TableRule(ConditionRule):
    """``points_by_value`` / ``points_by_range``: points looked up from one attribute's value, once.

    Both paths find the table entry of a value with the same ``tables`` lookup and read its points from
    one array (entries in the order written, then ``missing``, then ``default``: a lookup's ``MISSING``
    (-2) and ``DEFAULT`` (-1) index it from the end). A lookup worth 0 points is not a hit.
    """

    type = "table"

    def __init__(self, index: int, part: TPart, spec: RuleSpec, rules: Rules, env: Env) -> None:
        super().__init__(index, part, spec, rules, env)
        assert spec.attribute is not None
        self.attribute = spec.attribute
        self._get = env.lead_getter(spec.attribute)
        self.value_attributes = (spec.attribute,)
        default = spec.default or 0.0
        missing = default if spec.missing is None else spec.missing
        self.ranges: RangeTable | None = None
        self.table: ValueTable | RangeTable
        if spec.points_by_value is not None:
            self.table = ValueTable(spec.points_by_value)
            entries = [p for _, p in spec.points_by_value]
        else:
            assert spec.points_by_range is not None
            self.table = self.ranges = RangeTable(spec.points_by_range)
            entries = [b.points for b in spec.points_by_range]
        self.lookup = self.table.lookup
        self.units_list = [round(p * UNIT) for p in (*entries, missing, default)]
        self.units_arr = np.array(self.units_list, dtype=np.int64)
        subject = spec.label or spec.attribute.replace("_", " ").strip()
        self.subject = subject[:1].upper() + subject[1:]
        self.label = self.subject
        self.label_varies = True

    def hit_label(self, value: str) -> str:
        """``Lead origin = Lead Add Form``, ``Time on site s = 750 (500 to 1000)``, ``Lead origin missing``."""
        return f"{self.subject} = {value}" if value else f"{self.subject} missing"

    def describe(self, found: int, value: Any) -> str:
        """The hit's value: the lead's value, and for a range the band it fell in."""
        text = display(value)
        if self.ranges is not None and found >= 0 and text:
            return f"{text} ({self.ranges.bands[found].describe()})"
        return text

    def row(self, row: LeadRow) -> tuple[int, int, str] | None:
        if not self.gate_row(row):
            return None
        raw = self._get(row)
        found = self.lookup(raw)
        units = self.units_list[found]
        if units == 0:
            return None
        return units, 1, self.describe(found, raw)

    def lookups_vec(self, col: Column) -> I64:
        if self.ranges is not None and not col.has_multi():
            return self.ranges.lookup_vec(col.numbers(), col.missing())
        return col.map_unique_int(self.lookup)

    def vec(self, cols: BatchView) -> tuple[I64, I64]:
        units = self.units_arr[self.lookups_vec(cols.lead_column(self.attribute))]
        fired = units != 0
        gate = self.gate_vec(cols)
        if gate is not None:
            fired &= gate
        counts = fired.astype(np.int64)
        return units * counts, counts

    def values_vec(self, cols: BatchView, leads: I64) -> list[str]:
        codes, cats = cols.lead_column(self.attribute).codes()
        texts: dict[int, str] = {}
        out: list[str] = []
        for code in codes[leads].tolist():
            text = texts.get(code)
            if text is None:
                value = cats[code]
                text = texts[code] = self.describe(self.lookup(value), value)
            out.append(text)
        return out


_RULE_TYPES: dict[str, type[ConditionRule]] = {
    "event": EventRule,
    "counter": CounterRule,
    "value_table": TableRule,
    "range_table": TableRule,
    "condition": ConditionRule,
}


def compile_rule(index: int, part: TPart, spec: RuleSpec, rules: Rules, env: Env) -> ConditionRule:
    """The compiled object of rule number ``index`` (its position in ``rules.iter_rules()``)."""
    return _RULE_TYPES[spec.kind](index, part, spec, rules, env)


def first_present(columns: list[Column], rows: I64, fallback: Column | None) -> list[str]:
    """For each row, the display text of the first column whose value there is not missing; else the
    fallback column's text, else "" (rows of -1 give "")."""
    out: list[str] = [""] * len(rows)
    todo = np.flatnonzero(rows >= 0)
    for col in [*columns, fallback] if fallback is not None else columns:
        if not len(todo):
            break
        at = rows[todo]
        present = ~col.missing()[at] if col is not fallback else np.ones(len(at), dtype=np.bool_)
        for k, text in zip(todo[present].tolist(), col.display_at(at[present]), strict=True):
            out[k] = text
        todo = todo[~present]
    return out
