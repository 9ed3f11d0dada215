"""The rules compiler and the engine.

``compile_rules(rules)`` turns validated rules into one ``CompiledRules``: a list of compiled rule objects
(conditions compiled to closures, per-rule lookups precomputed). Each rule object evaluates in two ways over
the SAME compiled conditions, point tables and decay tables:

* ``row``: one lead at a time (``score``, explanations, small batches);
* ``vec``: column by column over a ``LeadBatch`` with numpy (``score_batch``, big batches).

Both paths compute points as integers of 1/10,000 point (``_values.UNIT``), with the same coercions, the
same fixed-point decay table and one rounding per rule, so they agree exactly (property tests check it on
random rule sets and inputs); the final ``Score`` objects of both paths are assembled by the same function.

Semantics worth knowing (also in the README reference):

* Event rule, points ``[a, b, c]``: k matching activities earn the first k values of the sequence
  a, b, c, c, c, ... With decay, the largest of these values go to the most recent activities (so adding
  an activity never lowers a score and an older activity never counts more than a newer one).
* Ages are counted in UTC calendar days (0 = today, the future counts as today), so scores change at most
  once a day, at 00:00 UTC.
* Decay: an occurrence ``age`` days old earns ``points * 0.5 ** (age / half_life_days)``.
* Per-rule ``cap`` bounds the rule's points after decay; a ``group`` keeps only its strongest rule.
* Part caps are explained by a synthetic hit named ``"<part> cap"`` (negative for fit / engagement, positive
  for penalties), so the points of all hits add up to ``Score.raw_total``; ``total`` is that sum rounded
  (halves up) and clamped to 0..100.
"""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal

import numpy as np

from . import emails
from ._values import (
    DAY_US,
    MAX_COUNT,
    UNIT,
    age_days,
    datetime_of_micros,
    display,
    is_missing,
    micros_of_datetime,
    to_micros,
    to_number,
)
from .columns import I64, Bools, Column, LeadBatch
from .conditions import attributes
from .emails import EmailChecker
from .errors import ScoringError
from .model import Activity, Lead, QualificationState, RuleHit, Score, TGrade, TPart
from .predicates import CompiledCondition, Getter
from .rules import DERIVED_ATTRIBUTES, PARTS, Rules, RuleSpec, rules_version

_NO_TIME = np.iinfo(np.int64).min
_FACTOR_SHIFT = 16
_FACTOR_ONE = 1 << _FACTOR_SHIFT
#: below this many leads, ``score_many`` uses the row path (numpy's per-call overhead would dominate)
_SMALL_BATCH = 32
_HIT_CACHE = 4096
_LEAD_FIELDS = frozenset(Lead.__dataclass_fields__) - {"attributes"}
_GRADES: tuple[TGrade, ...] = ("cold", "warm", "hot")

Result = tuple["_Rule", int, int, str]  # rule, units, count, value


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch builds millions of acyclic objects (arrays,
    hits, scores): its passes over the caller's live objects would otherwise dominate. Nested and
    thread-safe; the collector's previous state is restored when the outermost pause ends."""
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


def _check_now(now: datetime) -> int:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ScoringError(f"`now` must be a timezone-aware datetime, got {now!r}")
    return micros_of_datetime(now)


# -- evaluation contexts ---------------------------------------------------------------------------------


class _Env:
    """What every compiled rule shares: the email checker and the settings of derived attributes."""

    def __init__(self, rules: Rules) -> None:
        e = rules.emails
        self.checker = EmailChecker(
            role_local_parts=e.role_local_parts,
            competitor_domains=e.competitor_domains,
            extra_free_domains=e.extra_free_domains,
            extra_disposable_domains=e.extra_disposable_domains,
        )
        self.email_attributes = ("email", *[a for a in e.secondary_attributes if a != "email"])
        self.timestamp_attributes = rules.activity.timestamp_attributes
        self.ignore_kinds = frozenset(rules.activity.ignore_kinds)
        self.used_kinds: set[str] = set()

    def lead_getter(self, name: str) -> Getter:
        if name == "email_domain":
            return _Row.email_domain
        if name == "company_email":
            return _Row.company_email
        if name == "last_engaged_at":
            return _Row.last_engaged_at
        if name in _LEAD_FIELDS:
            get = attrgetter(name)
            return lambda row: get(row.lead)
        return lambda row: row.lead.attributes.get(name)

    @staticmethod
    def activity_getter(name: str) -> Getter:
        if name == "kind":
            return attrgetter("kind")
        if name == "timestamp":
            return attrgetter("timestamp")
        return lambda activity: activity.attributes.get(name)


def _raw_lead_value(lead: Lead, name: str) -> Any:
    return getattr(lead, name) if name in _LEAD_FIELDS else lead.attributes.get(name)


class _Row:
    """One lead being scored on the row path, with its activities grouped by kind."""

    __slots__ = ("_company", "_engaged", "by_kind", "env", "latest_activity", "lead", "now_us")

    def __init__(self, lead: Lead, activities: Sequence[Activity], now_us: int, env: _Env) -> None:
        self.lead = lead
        self.now_us = now_us
        self.env = env
        by_kind: dict[str, list[tuple[int, int, int, Activity]]] = {}
        latest: int | None = None
        used = env.used_kinds
        ignore = env.ignore_kinds
        today = now_us // DAY_US
        for idx, activity in enumerate(activities):
            kind = activity.kind
            ts = micros_of_datetime(activity.timestamp)
            if kind not in ignore and (latest is None or ts > latest):
                latest = ts
            if kind in used:
                age = today - ts // DAY_US  # calendar days, as _values.age_days
                group = by_kind.get(kind)
                if group is None:
                    group = by_kind[kind] = []
                group.append((idx, ts, age if age > 0 else 0, activity))
        self.by_kind = by_kind
        self.latest_activity = latest
        self._company: str | Literal[False] | None = False
        self._engaged: datetime | Literal[False] | None = False

    def email_domain(self) -> str | None:
        return self.env.checker.domain_of(self.lead.email)

    def company_email(self) -> str | None:
        if self._company is False:
            found: str | None = None
            for name in self.env.email_attributes:
                found = self.env.checker.first_company_address(_raw_lead_value(self.lead, name))
                if found is not None:
                    break
            self._company = found
        return self._company

    def last_engaged_at(self) -> datetime | None:
        """The latest of created_at, the configured timestamp attributes and the lead's own activities."""
        if self._engaged is False:
            best = self.latest_activity
            for name in ("created_at", *self.env.timestamp_attributes):
                micros = to_micros(_raw_lead_value(self.lead, name))
                if micros is not None and (best is None or micros > best):
                    best = micros
            self._engaged = None if best is None else datetime_of_micros(best)
        return self._engaged


class _Cols:
    """One batch being scored on the columnar path."""

    def __init__(self, batch: LeadBatch, now_us: int, env: _Env) -> None:
        self.batch = batch
        self.n = batch.n
        self.now_us = now_us
        self.env = env
        # calendar-day ages, as _values.age_days
        self.act_days: I64 = np.maximum(now_us // DAY_US - batch.activity_micros // DAY_US, 0)
        self._derived: dict[str, Column] = {}
        self._flags: dict[int, tuple[Column, I64]] = {}
        self._kind_masks: dict[frozenset[str], Bools] = {}
        self.event_sel: dict[int, Bools] = {}

    def lead_column(self, name: str) -> Column:
        if name in DERIVED_ATTRIBUTES:
            col = self._derived.get(name)
            if col is None:
                col = self._derived[name] = getattr(self, "_derive_" + name)()
            return col
        return self.batch.lead_column(name)

    def activity_column(self, name: str) -> Column:
        return self.batch.activity_column(name)

    def flags(self, col: Column) -> I64:
        found = self._flags.get(id(col))
        if found is None:
            found = self._flags[id(col)] = (col, col.map_unique_int(self.env.checker.flags))
        return found[1]

    def kind_mask(self, kinds: Iterable[str]) -> Bools:
        key = frozenset(kinds)
        mask = self._kind_masks.get(key)
        if mask is None:
            codes, cats = self.batch.activity_kind.codes()
            table = np.array([isinstance(c, str) and c in key for c in cats], dtype=np.bool_)
            mask = self._kind_masks[key] = table[codes] if len(codes) else np.zeros(0, dtype=np.bool_)
        return mask

    def _derive_email_domain(self) -> Column:
        values = self.batch.lead_column("email").map_values(self.env.checker.domain_of)
        return Column.of(values)

    def _derive_company_email(self) -> Column:
        present = np.zeros(self.n, dtype=np.bool_)
        for name in self.env.email_attributes:
            present |= (self.flags(self.batch.lead_column(name)) & emails.COMPANY) != 0
        checker = self.env.checker
        batch = self.batch
        names = self.env.email_attributes

        def values() -> list[Any]:
            out: list[Any] = [None] * self.n
            for name in reversed(names):
                for i, found in enumerate(batch.lead_column(name).map_values(checker.first_company_address)):
                    if found is not None:
                        out[i] = found
            return out

        return Column.lazy(self.n, values, ~present)

    def _derive_last_engaged_at(self) -> Column:
        best = np.full(self.n, _NO_TIME, dtype=np.int64)
        for name in ("created_at", *self.env.timestamp_attributes):
            micros, ok = self.batch.lead_column(name).micros()
            np.maximum(best, np.where(ok, micros, _NO_TIME), out=best)
        if self.batch.m:
            counted = ~self.kind_mask(self.env.ignore_kinds)
            np.maximum.at(best, self.batch.activity_lead[counted], self.batch.activity_micros[counted])
        ok = best != _NO_TIME
        return Column.of_micros(np.where(ok, best, 0), ok)


# -- compiled rules ----------------------------------------------------------------------------------------


class _Decay:
    """Decay as a fixed-point factor: ``round(0.5 ** (age_days / half_life_days) * 2**16)``, per whole day.

    Points times factor are then exact integers, summed exactly and rounded once per rule
    (``_scaled``), so both paths agree bit for bit and the rearrangement inequality holds exactly (which
    is what makes "adding an activity never lowers a score" hold exactly, not just up to rounding).
    """

    def __init__(self, half_life_days: float) -> None:
        self.half_life_days = half_life_days
        self._memo: dict[int, int] = {}
        self._dense: I64 = np.zeros(0, dtype=np.int64)

    def factor(self, days: int) -> int:
        found = self._memo.get(days)
        if found is None:
            found = round(0.5 ** (days / self.half_life_days) * _FACTOR_ONE)
            if len(self._memo) > 500_000:
                self._memo.clear()
            self._memo[days] = found
        return found

    def factors(self, days: I64) -> I64:
        """``factor`` of each element, through a dense per-day table built from ``factor`` itself."""
        if not len(days):
            return np.zeros(0, dtype=np.int64)
        top = int(days.max())
        if top > 200_000:  # centuries ago: not worth a dense table
            uniq, inverse = np.unique(days, return_inverse=True)
            sparse = np.array([self.factor(d) for d in uniq.tolist()], dtype=np.int64)
            result: I64 = sparse[inverse.reshape(-1)]
            return result
        if len(self._dense) <= top:
            size = max(top + 1, 2 * len(self._dense))
            self._dense = np.array([self.factor(d) for d in range(size)], dtype=np.int64)
        dense: I64 = self._dense[days]
        return dense


def _scaled(total: int) -> int:
    """A sum of points x fixed-point factors back to units, rounding halves up."""
    return (total + _FACTOR_ONE // 2) >> _FACTOR_SHIFT


def _scaled_vec(total: I64) -> I64:
    result: I64 = (total + _FACTOR_ONE // 2) >> _FACTOR_SHIFT
    return result


def _sum_by_lead(leads: I64, values: I64, n: int, bound: int) -> I64:
    """Per-lead sums of int64 values, exactly (``bincount`` goes through float64: fine below 2**53)."""
    if bound < 2**53:
        result: I64 = np.bincount(leads, weights=values, minlength=n).astype(np.int64)
        return result
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, leads, values)
    return out


class _Rule:
    """What all rule types share: identity, the lead-level gate (when / unless), points, cap."""

    type: str = "condition"

    def __init__(self, index: int, part: TPart, spec: RuleSpec, rules: Rules, env: _Env) -> None:
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
        points = spec.points if isinstance(spec.points, tuple) else (spec.points,)
        self.points: tuple[int, ...] = tuple(round(p * UNIT) for p in points)
        self.scalar_points = not isinstance(spec.points, tuple)
        self.cap = None if spec.cap is None else round(spec.cap * UNIT)
        self.negative = part == "penalties"
        self.hit_cache: dict[tuple[int, int, str], RuleHit] = {}
        self.piece_cache: dict[tuple[int, int], str] = {}

    # gate ----------------------------------------------------------------------------------------------

    def _compose_gate(self) -> Callable[[Any, int], bool] | None:
        when = self.when.row if self.when is not None else None
        unless = self.unless.row if self.unless is not None else None
        if when is not None and unless is not None:
            return lambda row, now_us: when(row, now_us) and not unless(row, now_us)
        if unless is not None:
            return lambda row, now_us: not unless(row, now_us)
        return when

    def gate_row(self, row: _Row) -> bool:
        gate = self._gate
        return gate is None or gate(row, row.now_us)

    def gate_vec(self, cols: _Cols) -> Bools | None:
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

    def value_row(self, row: _Row) -> str:
        for get in self._value_getters:
            value = get(row)
            if not is_missing(value):
                return display(value)
        return ""

    def values_vec(self, cols: _Cols, leads: I64) -> list[str]:
        """The explanation values of this rule for the given (fired) leads."""
        return _first_present([cols.lead_column(a) for a in self.value_attributes], leads, None)

    # evaluation ------------------------------------------------------------------------------------------

    def row(self, row: _Row) -> tuple[int, int, str] | None:
        gate = self._gate
        if gate is not None and not gate(row, row.now_us):
            return None
        return self.points[0], 1, self.value_row(row)

    def vec(self, cols: _Cols) -> tuple[I64, I64]:
        gate = self.gate_vec(cols)
        fired = np.ones(cols.n, dtype=np.bool_) if gate is None else gate
        counts = fired.astype(np.int64)
        return counts * self.points[0], counts


class _PointTable:
    """The points earned by k occurrences of a sequence ``p0, p1, ..., pL-1, pL-1, ...`` (in units), the
    largest values going to the most recent occurrences (rank 0 = most recent)."""

    def __init__(self, points: tuple[int, ...]) -> None:
        self.points = points
        size = len(points)
        self.size = size
        self.last = points[-1]
        head = points[:-1]
        self.big = sorted((p for p in head if p > self.last), reverse=True)
        self.equal = sum(1 for p in head if p == self.last)
        self.small = sorted((p for p in head if p < self.last), reverse=True)
        self.prefix = [0]
        for p in points:
            self.prefix.append(self.prefix[-1] + p)
        # k < size: the sorted first k values
        table = np.zeros((size, max(size, 1)), dtype=np.int64)
        for k in range(size):
            for r, p in enumerate(sorted(points[:k], reverse=True)):
                table[k, r] = p
        self.short = table
        self.big_arr = np.array([*self.big, 0], dtype=np.int64)
        self.small_arr = np.array([*self.small, 0], dtype=np.int64)
        self.largest = max(abs(p) for p in points)
        self.prefix_arr = np.array(self.prefix, dtype=np.int64)

    def total(self, n: int) -> int:
        """Sum of the first n values (no decay)."""
        if n <= self.size:
            return self.prefix[n]
        return self.prefix[self.size] + (n - self.size) * self.last

    def total_vec(self, n: I64) -> I64:
        clipped = np.minimum(n, self.size)
        result: I64 = np.where(
            n <= self.size, self.prefix_arr[clipped], self.prefix[self.size] + (n - self.size) * self.last
        )
        return result

    def ranked(self, k: int) -> list[int]:
        """The k values sorted from largest to smallest."""
        values = [self.points[min(i, self.size - 1)] for i in range(k)]
        values.sort(reverse=True)
        return values

    def ranked_vec(self, k: I64, r: I64) -> I64:
        """The r-th largest of the first k values, for arrays of (k, r)."""
        out = np.zeros(len(k), dtype=np.int64)
        short = k < self.size
        if short.any():
            out[short] = self.short[k[short], r[short]]
        long_ = ~short
        if long_.any():
            kk, rr = k[long_], r[long_]
            n_big = len(self.big)
            n_last = kk - self.size + 1 + self.equal
            in_big = rr < n_big
            in_last = rr < n_big + n_last
            small_at = np.clip(rr - n_big - n_last, 0, max(len(self.small) - 1, 0))
            out[long_] = np.where(
                in_big,
                self.big_arr[np.minimum(rr, max(n_big - 1, 0))],
                np.where(in_last, self.last, self.small_arr[small_at]),
            )
        return out


class _EventRule(_Rule):
    type = "event"

    def __init__(self, index: int, part: TPart, spec: RuleSpec, rules: Rules, env: _Env) -> None:
        super().__init__(index, part, spec, rules, env)
        event = spec.event
        assert event is not None
        self.kinds = event.kind
        env.used_kinds.update(self.kinds)
        self.window = event.within_days  # in calendar days
        self.where = CompiledCondition(event.where, env.checker, env.activity_getter) if event.where else None
        self.where_attributes = tuple(attributes(event.where)) if event.where is not None else ()
        self._where_getters = tuple(env.activity_getter(a) for a in self.where_attributes)
        half_life = spec.half_life_days if spec.half_life_days is not None else rules.decay.half_life_days
        self.decay = _Decay(half_life) if half_life else None
        self.table = _PointTable(self.points)

    def row(self, row: _Row) -> tuple[int, int, str] | None:
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
            return _scaled(p * sum(decay.factor(d) for d in days))
        if decay is None:
            return self.table.total(len(days))
        ranked = self.table.ranked(len(days))
        days.sort()
        return _scaled(sum(p * decay.factor(d) for p, d in zip(ranked, days, strict=True)))

    def _value_of(self, activity: Activity | None) -> str:
        if activity is None:
            return ""
        for get in self._where_getters:
            value = get(activity)
            if not is_missing(value):
                return display(value)
        return display(activity.kind)

    def vec(self, cols: _Cols) -> tuple[I64, I64]:
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
            summed = _sum_by_lead(leads, factors, n, _FACTOR_ONE * len(leads))
            units = _scaled_vec(summed * self.points[0])
        else:
            order = np.lexsort((days, leads))
            leads, factors = leads[order], factors[order]
            starts = np.cumsum(counts) - counts
            ranks = np.arange(len(leads), dtype=np.int64) - starts[leads]
            products = self.table.ranked_vec(counts[leads], ranks) * factors
            bound = self.table.largest * _FACTOR_ONE * len(leads)
            units = _scaled_vec(_sum_by_lead(leads, products, n, bound))
        return self.capped_vec(units), counts

    def values_vec(self, cols: _Cols, leads: I64) -> list[str]:
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
        return _first_present(columns, chosen, batch.activity_kind)


class _CounterRule(_Rule):
    type = "counter"

    def __init__(self, index: int, part: TPart, spec: RuleSpec, rules: Rules, env: _Env) -> None:
        super().__init__(index, part, spec, rules, env)
        assert spec.counter is not None
        self.counter = spec.counter
        self._get = env.lead_getter(spec.counter)
        self.threshold = spec.at_least if spec.at_least is not None else (1.0 if spec.once else None)
        self.once = spec.once
        self.per = spec.per
        self.anchor = spec.decay_from or "last_engaged_at"
        self._get_anchor = env.lead_getter(self.anchor)
        half_life = spec.half_life_days if spec.half_life_days is not None else rules.decay.half_life_days
        self.decay = _Decay(half_life) if half_life else None
        self.table = _PointTable(self.points)

    def row(self, row: _Row) -> tuple[int, int, str] | None:
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
            units = 0 if anchor is None else _scaled(units * self.decay.factor(age_days(row.now_us, anchor)))
        return self.capped(units), count, display(raw)

    def vec(self, cols: _Cols) -> tuple[I64, I64]:
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
                decayed[has] = _scaled_vec(units[has] * self.decay.factors(days))
            units = decayed
        return self.capped_vec(units), count

    def values_vec(self, cols: _Cols, leads: I64) -> list[str]:
        return _first_present([cols.lead_column(self.counter)], leads, None)


# -- the compiled rule set ---------------------------------------------------------------------------------


class CompiledRules:
    """Rules compiled once; score one lead (``score``), many (``score_many``) or a columnar batch
    (``score_batch``). All three share the same compiled rule objects."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.version: str = rules_version(rules)
        self.mql_threshold: float = rules.qualification.threshold
        self.release_threshold: float = rules.qualification.release_level
        self.hot_threshold: float = rules.grades.hot
        self.warm_threshold: float = rules.grades.warm
        self.grade_thresholds: dict[str, float] = {"hot": self.hot_threshold, "warm": self.warm_threshold}
        self._env = _Env(rules)
        self._rules: list[_Rule] = []
        for part, _, spec in rules.iter_rules():
            cls = {"event": _EventRule, "counter": _CounterRule, "condition": _Rule}[spec.kind]
            self._rules.append(cls(len(self._rules), part, spec, rules, self._env))
        caps = rules.caps
        self.caps: dict[TPart, int | None] = {
            part: None if getattr(caps, part) is None else round(getattr(caps, part) * UNIT) for part in PARTS
        }
        self._part_index = {part: [r.index for r in self._rules if r.part == part] for part in PARTS}
        groups: dict[str, list[int]] = {}
        for r in self._rules:
            if r.group is not None:
                groups.setdefault(r.group, []).append(r.index)
        self._groups = {g: idx for g, idx in groups.items() if len(idx) > 1}
        self._max_hits = rules.reasons.max_hits
        self._max_length = rules.reasons.max_length

    @property
    def rule_names(self) -> list[str]:
        return [r.name for r in self._rules]

    # -- single lead -------------------------------------------------------------------------------------

    def score(
        self,
        lead: Lead,
        activities: Sequence[Activity],
        now: datetime,
        previous: QualificationState | None = None,
    ) -> Score:
        """Score one lead (its activities, the previous qualification state for hysteresis)."""
        now_us = _check_now(now)
        return self._score_row(lead, activities, now, now_us, previous)

    def _score_row(
        self,
        lead: Lead,
        activities: Sequence[Activity],
        now: datetime,
        now_us: int,
        previous: QualificationState | None,
    ) -> Score:
        row = _Row(lead, activities, now_us, self._env)
        results: list[Result] = []
        for rule in self._rules:
            found = rule.row(row)
            if found is not None:
                results.append((rule, *found))
        if self._groups:
            results = _keep_group_winners(results)
        return self._assemble(lead.id, results, previous, now)

    def score_many(
        self,
        items: Iterable[tuple[Lead, Sequence[Activity], QualificationState | None]],
        now: datetime,
        *,
        chunk_size: int = 4096,
    ) -> list[Score]:
        """Score many leads: the same ``Score`` as ``score`` gives for each (tests hold both paths to it),
        computed chunk by chunk on the columnar path."""
        return list(self.iter_scores(items, now, chunk_size=chunk_size))

    def iter_scores(
        self,
        items: Iterable[tuple[Lead, Sequence[Activity], QualificationState | None]],
        now: datetime,
        *,
        chunk_size: int = 4096,
    ) -> Iterator[Score]:
        """Like ``score_many`` but lazy: consumes ``items`` ``chunk_size`` at a time (streaming)."""
        now_us = _check_now(now)
        chunk: list[tuple[Lead, Sequence[Activity], QualificationState | None]] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= chunk_size:
                yield from self._score_chunk(chunk, now, now_us)
                chunk = []
        if chunk:
            yield from self._score_chunk(chunk, now, now_us)

    def _score_chunk(
        self,
        chunk: list[tuple[Lead, Sequence[Activity], QualificationState | None]],
        now: datetime,
        now_us: int,
    ) -> list[Score]:
        if len(chunk) < _SMALL_BATCH:
            return [self._score_row(lead, acts, now, now_us, prev) for lead, acts, prev in chunk]
        with _gc_paused():
            return self.score_batch(LeadBatch.from_items(chunk), now).scores()

    # -- columnar batch ------------------------------------------------------------------------------------

    def score_batch(self, batch: LeadBatch, now: datetime) -> ScoreColumns:
        """Score a columnar batch with numpy; ``ScoreColumns.score(i)`` gives the same ``Score`` as
        ``score`` would for lead i."""
        now_us = _check_now(now)
        with _gc_paused():
            return self._score_batch(batch, now, now_us)

    def _score_batch(self, batch: LeadBatch, now: datetime, now_us: int) -> ScoreColumns:
        cols = _Cols(batch, now_us, self._env)
        n, r = batch.n, len(self._rules)
        # rule-major: units[j] is rule j's points (in 1/10,000) for every lead
        units = np.zeros((r, n), dtype=np.int64)
        counts = np.zeros((r, n), dtype=np.int64)
        for rule in self._rules:
            u, c = rule.vec(cols)
            np.multiply(u, c > 0, out=units[rule.index])
            counts[rule.index] = c
        for idx in self._groups.values():
            strength = np.abs(units[idx]) * 2 + (counts[idx] > 0)
            keep = strength.argmax(axis=0) == np.arange(len(idx))[:, None]
            units[idx] *= keep
            counts[idx] *= keep
        part_units = np.zeros((3, n), dtype=np.int64)
        cap_adjust = np.zeros((3, n), dtype=np.int64)
        for p, part in enumerate(PARTS):
            index = self._part_index[part]
            s = units[index].sum(axis=0) if index else np.zeros(n, dtype=np.int64)
            cap = self.caps[part]
            capped = s if cap is None else (np.maximum(s, -cap) if part == "penalties" else np.minimum(s, cap))
            part_units[p] = capped
            cap_adjust[p] = capped - s
        raw = part_units.sum(axis=0)
        total = np.clip((raw + UNIT // 2) // UNIT, 0, 100)
        grade = np.where(total >= self.hot_threshold, 2, np.where(total >= self.warm_threshold, 1, 0))
        prev = batch.previous_qualified
        qualified = np.where(prev, total >= self.release_threshold, total >= self.mql_threshold)
        qualified_at: list[datetime | None] = [None] * n
        for i in np.flatnonzero(qualified).tolist():
            before = batch.previous_qualified_at[i] if prev[i] else None
            qualified_at[i] = now if before is None else _aware(before)
        return ScoreColumns(
            compiled=self,
            cols=cols,
            now=now,
            units=units,
            counts=counts,
            part_units=part_units,
            cap_adjust=cap_adjust,
            raw_units=raw,
            total=total.astype(np.int64),
            grade_codes=grade.astype(np.int8),
            qualified=qualified,
            qualified_at=qualified_at,
        )

    # -- shared assembly -------------------------------------------------------------------------------------

    def _assemble(
        self, lead_id: str, results: list[Result], previous: QualificationState | None, now: datetime
    ) -> Score:
        """The one place a ``Score`` is built, for both paths. ``results`` are in rule order."""
        hits: list[RuleHit] = []
        sums = [0, 0, 0]
        for rule, units, count, value in results:
            # identical hits are frequent (same title, same counter value...): share the frozen objects
            key = (units, count, value)
            found = rule.hit_cache.get(key)
            if found is None:
                if len(rule.hit_cache) >= _HIT_CACHE:
                    rule.hit_cache.clear()
                found = rule.hit_cache[key] = RuleHit(rule.name, rule.part, units / UNIT, value, count, rule.label)
            hits.append(found)
            sums[rule.part_no] += units
        for p, part in enumerate(PARTS):
            cap = self.caps[part]
            if cap is None:
                continue
            s = sums[p]
            capped = max(s, -cap) if p == 2 else min(s, cap)
            if capped != s:
                # after the part's last hit, so that hits stay grouped by part
                where = sum(1 for h in hits if PARTS.index(h.part) <= p)
                hits.insert(
                    where,
                    RuleHit(
                        f"{part} cap", part, (capped - s) / UNIT, f"capped at {_points_text(cap)}", 1, f"{part} cap"
                    ),
                )
                sums[p] = capped
        raw = sums[0] + sums[1] + sums[2]
        half = UNIT // 2
        total = min(max((raw + half) // UNIT, 0), 100)
        grade: TGrade = "hot" if total >= self.hot_threshold else "warm" if total >= self.warm_threshold else "cold"
        was = previous is not None and previous.qualified
        qualified = total >= (self.release_threshold if was else self.mql_threshold)
        qualified_at: datetime | None = None
        if qualified:
            kept = previous.qualified_at if (was and previous is not None) else None
            qualified_at = _aware(kept) if kept is not None else now
        return Score(
            lead_id,
            total,
            (sums[0] + half) // UNIT,
            (sums[1] + half) // UNIT,
            (sums[2] + half) // UNIT,
            grade,
            qualified,
            qualified_at,
            tuple(hits),
            self.version,
            self._reasons(results),
            raw_total=raw / UNIT,
        )

    def _reasons(self, results: list[Result]) -> str:
        """``+15 VP title; +10 pricing page x3; -10 free email``: the strongest hits (by absolute points,
        then rule order) that round to at least 1 point, at most ``max_hits``, within ``max_length``."""
        half = UNIT // 2
        ranked = [(-abs(u), r.index, u, c) for r, u, c, _ in results if u >= half or u <= -half]
        if not ranked:
            return ""
        ranked.sort()
        rules = self._rules
        text = ""
        for _, index, units, count in ranked[: self._max_hits]:
            rule = rules[index]
            whole = (units + half) // UNIT if units > 0 else -((half - units) // UNIT)
            shown = count if count > 1 and rule.type != "condition" else 1
            piece = rule.piece_cache.get((whole, shown))
            if piece is None:
                if len(rule.piece_cache) >= _HIT_CACHE:
                    rule.piece_cache.clear()
                piece = f"{'-' if whole < 0 else '+'}{abs(whole)} {rule.label}" + (f" x{shown}" if shown > 1 else "")
                rule.piece_cache[(whole, shown)] = piece
            candidate = piece if not text else f"{text}; {piece}"
            if len(candidate) > self._max_length:
                if not text:
                    text = piece[: self._max_length - 1] + "…"
                break
            text = candidate
        return text


def _first_present(columns: list[Column], rows: I64, fallback: Column | None) -> list[str]:
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


def _points_text(units: int) -> str:
    value = units / UNIT
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _keep_group_winners(results: list[Result]) -> list[Result]:
    best: dict[str, tuple[int, int]] = {}
    for i, (rule, units, _, _) in enumerate(results):
        if rule.group is not None:
            key = abs(units) * 2 + 1
            found = best.get(rule.group)
            if found is None or key > found[0]:
                best[rule.group] = (key, i)
    if not best:
        return results
    winners = {i for _, i in best.values()}
    return [r for i, r in enumerate(results) if r[0].group is None or i in winners]


class ScoreColumns:
    """The result of ``score_batch``: arrays for the whole batch, and ``score(i)`` for one lead's full
    ``Score`` (hits with values and the reasons text are built only when asked for)."""

    def __init__(
        self,
        *,
        compiled: CompiledRules,
        cols: _Cols,
        now: datetime,
        units: I64,
        counts: I64,
        part_units: I64,
        cap_adjust: I64,
        raw_units: I64,
        total: I64,
        grade_codes: np.ndarray[Any, np.dtype[np.int8]],
        qualified: Bools,
        qualified_at: list[datetime | None],
    ) -> None:
        self.compiled = compiled
        self._cols = cols
        self.now = now
        self.units = units
        self.counts = counts
        self.part_units = part_units
        self.cap_adjust = cap_adjust
        self.raw_units = raw_units
        self.total = total
        self.grade_codes = grade_codes
        self.qualified = qualified
        self.qualified_at = qualified_at
        self.ids = cols.batch.ids

    def __len__(self) -> int:
        return len(self.total)

    @property
    def fit(self) -> I64:
        result: I64 = (self.part_units[0] + UNIT // 2) // UNIT
        return result

    @property
    def engagement(self) -> I64:
        result: I64 = (self.part_units[1] + UNIT // 2) // UNIT
        return result

    @property
    def penalties(self) -> I64:
        result: I64 = (self.part_units[2] + UNIT // 2) // UNIT
        return result

    @property
    def grades(self) -> list[TGrade]:
        return [_GRADES[g] for g in self.grade_codes.tolist()]

    def score(self, i: int) -> Score:
        """The full ``Score`` of lead i (hits, values, reasons)."""
        return self._scores(np.array([i], dtype=np.int64))[0]

    def scores(self) -> list[Score]:
        """Every lead's full ``Score``, built in bulk."""
        return self._scores(np.arange(len(self), dtype=np.int64))

    def __iter__(self) -> Iterator[Score]:
        return iter(self.scores())

    def _scores(self, leads: I64) -> list[Score]:
        with _gc_paused():
            return self._build_scores(leads)

    def _build_scores(self, leads: I64) -> list[Score]:
        compiled = self.compiled
        cols = self._cols
        batch = cols.batch
        counts_t = self.counts[:, leads].T
        lead_pos, rule_idx = np.nonzero(counts_t)  # ordered by lead, then rule
        units = self.units[:, leads].T[lead_pos, rule_idx].tolist()
        counts = counts_t[lead_pos, rule_idx].tolist()
        values: list[str] = [""] * len(lead_pos)
        by_rule = np.argsort(rule_idx, kind="stable")
        bounds = np.searchsorted(rule_idx[by_rule], np.arange(len(compiled._rules) + 1))
        for j, rule in enumerate(compiled._rules):
            at = by_rule[bounds[j] : bounds[j + 1]]
            if len(at):
                for k, text in zip(at.tolist(), rule.values_vec(cols, leads[lead_pos[at]]), strict=True):
                    values[k] = text
        starts = np.searchsorted(lead_pos, np.arange(len(leads) + 1)).tolist()
        rules = compiled._rules
        rule_list = rule_idx.tolist()
        out: list[Score] = []
        prev_q = batch.previous_qualified
        for p, i in enumerate(leads.tolist()):
            results: list[Result] = [
                (rules[rule_list[k]], units[k], counts[k], values[k]) for k in range(starts[p], starts[p + 1])
            ]
            before = batch.previous_qualified_at[i]
            previous = QualificationState(True, before) if prev_q[i] else None
            out.append(compiled._assemble(batch.ids[i], results, previous, self.now))
        return out
