"""The engine: ``CompiledRules``, which scores one lead, many leads or a columnar batch.

``compile_rules(rules)`` turns validated rules into one ``CompiledRules``: a list of compiled rule objects
(``compiler``: conditions compiled to closures, per-rule lookups precomputed). Each rule object evaluates in
two ways over the SAME compiled conditions, point tables and decay tables (``points``):

* ``vec``: column by column over a ``LeadBatch`` with numpy (``score_batch``, ``score_many``: ``batch``):
  every bulk entry point (``leadsync score``, the sync pipeline, the rescore of the cache, ``preview``,
  ``evaluate``, ``explain``) goes through it, whatever the number of leads;
* ``row``: one lead as of its own moment (``score``, on a ``contexts.LeadRow``): the features of training
  rows and the evaluation from the store score each lead as of a different "now", which a batch (one
  "now") cannot; property tests hold it to the batch path.

Both paths compute points as integers of 1/10,000 point (``_values.UNIT``), with the same coercions, the
same fixed-point decay table and one rounding per rule, so they agree exactly (property tests check it on
random rule sets and inputs); the final ``Score`` objects of both paths are built by the same
``explain.ScoreBuilder``.

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

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from ._values import UNIT, micros_of_datetime
from .batch import ScoreColumns, gc_paused, score_columns
from .columns import LeadBatch
from .compiler import ConditionRule, Result, compile_rule
from .contexts import Env, LeadRow
from .errors import ScoringError
from .explain import ScoreBuilder
from .model import Activity, Lead, QualificationState, Score, TPart
from .rules import PARTS, Rules, rules_version

__all__ = ["CompiledRules", "ScoreColumns"]


# -- the compiled rule set ---------------------------------------------------------------------------------


class CompiledRules:
    """Rules compiled once; score one lead (``score``), many (``score_many``) or a columnar batch
    (``score_batch``). All three share the same compiled rule objects."""

    def __init__(self, rules: Rules, *, mapping_version: str | None = None) -> None:
        self.rules = rules
        #: the rules' content hash, combined with the mapping's when given: a mapping change (a field, a
        #: transform) rescores the cache exactly as a rules change does
        self.version: str = rules_version(rules)
        if mapping_version is not None:
            self.version = hashlib.sha256(f"{self.version}|{mapping_version}".encode()).hexdigest()[:12]
        self.mql_threshold: float = rules.qualification.threshold
        self.release_threshold: float = rules.qualification.release_level
        self.hot_threshold: float = rules.grades.hot
        self.warm_threshold: float = rules.grades.warm
        self.grade_thresholds: dict[str, float] = {"hot": self.hot_threshold, "warm": self.warm_threshold}
        self._env = Env(rules)
        self._rules: list[ConditionRule] = []
        for part, _, spec in rules.iter_rules():
            self._rules.append(compile_rule(len(self._rules), part, spec, rules, self._env))
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
        thresholds = (self.mql_threshold, self.release_threshold, self.hot_threshold, self.warm_threshold)
        builder = ScoreBuilder(
            self._rules, caps=self.caps, thresholds=thresholds, reasons=rules.reasons, version=self.version
        )
        self._assemble = builder.assemble

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
        now_us = check_now(now)
        return self._score_row(lead, activities, now, now_us, previous)

    def _score_row(
        self,
        lead: Lead,
        activities: Sequence[Activity],
        now: datetime,
        now_us: int,
        previous: QualificationState | None,
    ) -> Score:
        row = LeadRow(lead, activities, now_us, self._env)
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
        computed chunk by chunk on the columnar path (also for a handful of leads: one engine)."""
        return list(self.iter_scores(items, now, chunk_size=chunk_size))

    def iter_scores(
        self,
        items: Iterable[tuple[Lead, Sequence[Activity], QualificationState | None]],
        now: datetime,
        *,
        chunk_size: int = 4096,
    ) -> Iterator[Score]:
        """Like ``score_many`` but lazy: consumes ``items`` ``chunk_size`` at a time (streaming)."""
        now_us = check_now(now)
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
        with gc_paused():
            return self.score_batch(LeadBatch.from_items(chunk), now).scores()

    # -- columnar batch ------------------------------------------------------------------------------------

    def score_batch(self, batch: LeadBatch, now: datetime) -> ScoreColumns:
        """Score a columnar batch with numpy; ``ScoreColumns.score(i)`` gives the same ``Score`` as
        ``score`` would for lead i."""
        now_us = check_now(now)
        with gc_paused():
            return score_columns(self, batch, now, now_us)


def check_now(now: datetime) -> int:
    """``now`` in microseconds; a naive or non-datetime ``now`` is the caller's mistake, said plainly."""
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ScoringError(f"`now` must be a timezone-aware datetime, got {now!r}")
    return micros_of_datetime(now)


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
