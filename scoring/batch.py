"""Evaluating compiled rules on columns: a whole ``LeadBatch`` at once with numpy, into ``ScoreColumns``.

Rule-major integer matrices (points and counts per rule and lead), groups, part caps, totals, grades and
qualification are computed as arrays; one lead's full ``Score`` (hits, values, reasons) is built only when
asked for, by the same ``explain.ScoreBuilder`` as the single-lead path, so both give the same result.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ._values import MAX_COUNT, UNIT, as_aware
from .columns import F64, I64, Bools, LeadBatch
from .compiler import Result
from .contexts import BatchView
from .model import QualificationState, Score, TGrade
from .rules import PARTS

if TYPE_CHECKING:
    from .engine import CompiledRules

_GRADES: tuple[TGrade, ...] = ("cold", "warm", "hot")

_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
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


def _whole_points(units: I64) -> I64:
    """Units to whole points, rounding halves up (``_values.round_units`` for arrays)."""
    result: I64 = (units + UNIT // 2) // UNIT
    return result


def _reasons_text(pieces: list[str], ids: list[int], max_length: int) -> str:
    """The pieces joined as ``ScoreBuilder._reasons`` joins them (-1 ends the list)."""
    text = ""
    for pid in ids:
        if pid < 0:
            break
        piece = pieces[pid]
        candidate = piece if not text else f"{text}; {piece}"
        if len(candidate) > max_length:
            if not text:
                text = piece[: max_length - 1] + "…"
            break
        text = candidate
    return text


def score_columns(compiled: CompiledRules, batch: LeadBatch, now: datetime, now_us: int) -> ScoreColumns:
    """Evaluate every rule of ``compiled`` on ``batch`` (``now_us``: ``now`` in microseconds, checked)."""
    cols = BatchView(batch, now_us, compiled._env)
    n, r = batch.n, len(compiled._rules)
    # rule-major: units[j] is rule j's points (in 1/10,000) for every lead
    units = np.zeros((r, n), dtype=np.int64)
    counts = np.zeros((r, n), dtype=np.int64)
    for rule in compiled._rules:
        u, c = rule.vec(cols)
        np.multiply(u, c > 0, out=units[rule.index])
        counts[rule.index] = c
    for idx in compiled._groups.values():
        strength = np.abs(units[idx]) * 2 + (counts[idx] > 0)
        keep = strength.argmax(axis=0) == np.arange(len(idx))[:, None]
        units[idx] *= keep
        counts[idx] *= keep
    part_units = np.zeros((3, n), dtype=np.int64)
    cap_adjust = np.zeros((3, n), dtype=np.int64)
    for p, part in enumerate(PARTS):
        index = compiled._part_index[part]
        s = units[index].sum(axis=0) if index else np.zeros(n, dtype=np.int64)
        cap = compiled.caps[part]
        capped = s if cap is None else (np.maximum(s, -cap) if part == "penalties" else np.minimum(s, cap))
        part_units[p] = capped
        cap_adjust[p] = capped - s
    raw = part_units.sum(axis=0)
    total = np.clip(_whole_points(raw), 0, 100)
    grade = np.where(total >= compiled.hot_threshold, 2, np.where(total >= compiled.warm_threshold, 1, 0))
    prev = batch.previous_qualified
    qualified = np.where(prev, total >= compiled.release_threshold, total >= compiled.mql_threshold)
    qualified_at: list[datetime | None] = [None] * n
    for i in np.flatnonzero(qualified).tolist():
        before = batch.previous_qualified_at[i] if prev[i] else None
        qualified_at[i] = now if before is None else as_aware(before)
    return ScoreColumns(
        compiled=compiled,
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


class ScoreColumns:
    """The result of ``score_batch``: arrays for the whole batch, and ``score(i)`` for one lead's full
    ``Score`` (hits with values and the reasons text are built only when asked for)."""

    def __init__(
        self,
        *,
        compiled: CompiledRules,
        cols: BatchView,
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
        return _whole_points(self.part_units[0])

    @property
    def engagement(self) -> I64:
        return _whole_points(self.part_units[1])

    @property
    def penalties(self) -> I64:
        return _whole_points(self.part_units[2])

    @property
    def points(self) -> F64:
        """``Score.points`` of every lead: the unclamped total after part caps."""
        result: F64 = self.raw_units / UNIT
        return result

    @property
    def grades(self) -> list[TGrade]:
        return [_GRADES[g] for g in self.grade_codes.tolist()]

    def reasons(self) -> tuple[I64, list[str]]:
        """Every lead's ``Score.reasons`` text without building a ``Score``: (codes, texts), lead i's text is
        ``texts[codes[i]]``.

        The same text as ``explain.ScoreBuilder`` writes (the strongest hits by absolute points, then rule
        order, that round to at least one point; at most ``max_hits``, within ``max_length``), built once per
        distinct piece of each rule and once per distinct combination of pieces: leads share most of them.
        """
        compiled, n = self.compiled, len(self)
        rules = compiled._rules
        settings = compiled.rules.reasons
        half = UNIT // 2
        units, counts = self.units, self.counts
        ranked = (counts > 0) & ((units >= half) | (units <= -half))
        if n == 0 or not rules or not ranked.any():
            return np.zeros(n, dtype=np.int64), [""]
        piece_ids = np.full(units.shape, -1, dtype=np.int64)
        pieces: list[str] = []
        for rule in rules:
            j = rule.index
            leads = np.flatnonzero(ranked[j])
            if not len(leads):
                continue
            u, c = units[j, leads], counts[j, leads]
            whole = np.where(u > 0, (u + half) // UNIT, -((half - u) // UNIT))
            counted = rule.type not in ("condition", "table")
            shown = np.where(c > 1, c, 1) if counted else np.ones(len(leads), dtype=np.int64)
            values: list[str] = [""]
            value_codes = np.zeros(len(leads), dtype=np.int64)
            if rule.label_varies:
                found = rule.values_vec(self._cols, leads)
                index = {v: k for k, v in enumerate(dict.fromkeys(found))}
                values = list(index)
                value_codes = np.fromiter(map(index.__getitem__, found), dtype=np.int64, count=len(found))
            key = (value_codes * (MAX_COUNT + 1) + shown) * 2 + (whole < 0)
            key = key * (np.abs(whole).max() + 1) + np.abs(whole)
            _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            piece_ids[j, leads] = len(pieces) + inverse.reshape(-1)
            for w, k, v in zip(whole[first].tolist(), shown[first].tolist(), value_codes[first].tolist(), strict=True):
                label = rule.hit_label(values[v])
                pieces.append(f"{'-' if w < 0 else '+'}{abs(w)} {label}" + (f" x{k}" if k > 1 else ""))
        order_key = np.where(ranked, -np.abs(units), np.iinfo(np.int64).max)
        k = min(settings.max_hits, len(rules))
        order = np.argsort(order_key, axis=0, kind="stable")[:k]  # ties: rule order
        top = np.take_along_axis(piece_ids, order, axis=0)
        combo = top[0] + 1
        for row in top[1:]:
            combo = np.unique(combo * (len(pieces) + 1) + row + 1, return_inverse=True)[1].reshape(-1)
        _, first, codes = np.unique(combo, return_index=True, return_inverse=True)
        texts = [_reasons_text(pieces, top[:, i].tolist(), settings.max_length) for i in first.tolist()]
        return codes.reshape(-1).astype(np.int64), texts

    def score(self, i: int) -> Score:
        """The full ``Score`` of lead i (hits, values, reasons)."""
        return self._scores(np.array([i], dtype=np.int64))[0]

    def scores(self) -> list[Score]:
        """Every lead's full ``Score``, built in bulk."""
        return self._scores(np.arange(len(self), dtype=np.int64))

    def __iter__(self) -> Iterator[Score]:
        return iter(self.scores())

    def _scores(self, leads: I64) -> list[Score]:
        with gc_paused():
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
