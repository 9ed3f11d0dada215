"""``leadsync evaluate`` / ``report`` from the state store: outcomes, score history and the lead cache.

The honesty rule: a lead is judged by the score it had *before* its outcome, as of ``converted_at -
lead_time_days`` for converters and ``anchor + window_days - lead_time_days`` for the others, taken from
the score history. A score taken after a sale includes the sales cycle's own meetings, calls and replies and
flatters any model. Leads without a history row before that moment are left out (and counted), never
scored after the fact; with ``--backfill`` (explicit, and labelled in the output) they are rescored from the
cache as of that moment instead, like a candidate. A ``--rules`` candidate has no history: it is rescored
from the cache as of the same moments (activities after the moment dropped, ``now`` set to it; see the
README for what can still leak).

The result is the same :class:`~leadsync.evaluate_cmd.LabeledData` the CSV path builds, so the metrics
(``scoring.evaluation``) and the report are shared, not forked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from leadsync.config import OutcomesConfig
from leadsync.evaluate_cmd import MIN_POSITIVES, EvaluationRun, LabeledData, RuleSetScores, run_evaluation
from mappings import LeadMapping
from scoring import Activity, CompiledRules, Lead
from scoring.evaluation import Comparison, auc_score, compare
from sync.pipeline import CHALLENGER, written_arm
from sync.scoring_step import activities_from_dicts
from sync.state import HistoryRow, StateStore
from sync.state.history import HistoryColumns

POSITIVE, NEGATIVE = True, False


@dataclass
class StoreLabels:
    """Who counts as converted, as of which moment, with the score of that moment (champion history)."""

    leads: int = 0
    pending: int = 0
    #: no history row at or before the moment the lead is judged at (first scored too late)
    no_history: int = 0
    #: no usable creation date (window_from: created)
    no_anchor: int = 0
    #: converted before the window opened (e.g. already a customer when first scored)
    converted_before_anchor: int = 0
    lead_ids: list[str] = field(default_factory=list)
    outcomes: list[bool] = field(default_factory=list)
    moments: list[datetime] = field(default_factory=list)
    anchors: list[datetime] = field(default_factory=list)
    scores: list[int] = field(default_factory=list)
    grades: list[str] = field(default_factory=list)
    oldest_anchor: datetime | None = None
    #: with ``--backfill``: indexes (into the lists above) of leads without a history row before their moment,
    #: whose score is rescored from the cache as of that moment instead (see :func:`backfill_scores`)
    backfilled: list[int] = field(default_factory=list)

    @property
    def positives(self) -> int:
        return sum(self.outcomes)

    @property
    def score_source(self) -> str:
        """Where the evaluated champion scores come from: ``history``, ``backfill`` or ``mixed``."""
        if not self.backfilled:
            return "history"
        return "backfill" if len(self.backfilled) == len(self.outcomes) else "mixed"

    def first_window_closes_at(self, window: timedelta) -> datetime | None:
        return None if self.oldest_anchor is None else self.oldest_anchor + window

    def counts(self) -> dict[str, int]:
        return {
            "leads": self.leads,
            "evaluated": len(self.outcomes),
            "positives": self.positives,
            "negatives": len(self.outcomes) - self.positives,
            "pending": self.pending,
            "excluded_no_history": self.no_history,
            "excluded_no_anchor": self.no_anchor,
            "excluded_converted_before_window": self.converted_before_anchor,
            "backfilled": len(self.backfilled),
        }


def _grouped(pages: Iterator[list[HistoryRow]]) -> Iterator[tuple[str, list[HistoryRow]]]:
    """Consecutive rows of one lead (the store orders by lead, then time; a lead may span two pages)."""
    lead: str | None = None
    rows: list[HistoryRow] = []
    for page in pages:
        for row in page:
            if row.lead_id != lead:
                if lead is not None:
                    yield lead, rows
                lead, rows = row.lead_id, []
            rows.append(row)
    if lead is not None:
        yield lead, rows


def _as_of(rows: list[HistoryRow], moment: datetime) -> HistoryRow | None:
    found = None
    for row in rows:
        if row.at > moment:
            break
        found = row
    return found


class _Labeler:
    def __init__(
        self, settings: OutcomesConfig, now: datetime, outcomes: dict[str, datetime], backfill: bool = False
    ) -> None:
        self.backfill = backfill
        self.window = timedelta(days=settings.window_days)
        self.lead_time = timedelta(days=settings.lead_time_days)
        self.now = now
        self.outcomes = outcomes
        self.labels = StoreLabels()

    def add(self, lead_id: str, anchor: datetime | None, rows: list[HistoryRow]) -> None:
        out = self.labels
        out.leads += 1
        if anchor is None:
            out.no_anchor += 1
            return
        if out.oldest_anchor is None or anchor < out.oldest_anchor:
            out.oldest_anchor = anchor
        converted = self.outcomes.get(lead_id)
        closes = anchor + self.window
        if converted is not None and converted < anchor:
            out.converted_before_anchor += 1
            return
        if converted is not None and converted <= closes:
            label, moment = POSITIVE, converted - self.lead_time
        elif closes > self.now:
            out.pending += 1  # may still convert within its window: never a negative
            return
        else:
            label, moment = NEGATIVE, closes - self.lead_time
        row = _as_of(rows, moment)
        if row is None and not self.backfill:
            out.no_history += 1
            return
        if row is None:  # scored later by backfill_scores, from the cache as of the moment
            out.backfilled.append(len(out.outcomes))
        out.lead_ids.append(lead_id)
        out.outcomes.append(label)
        out.moments.append(moment)
        out.anchors.append(anchor)
        out.scores.append(row.total if row is not None else 0)
        out.grades.append(row.grade if row is not None else "")


def label_from_store(
    store: StateStore,
    mapping: LeadMapping,
    settings: OutcomesConfig,
    *,
    now: datetime,
    arm: str = "champion",
    backfill: bool = False,
) -> StoreLabels:
    """Label every cached lead from the outcomes and take its score as of its moment from the history.

    Columnar (issue 10: a million leads in seconds): history, outcomes and anchors are read as plain columns,
    each page of whole leads is labelled with numpy; equals :func:`label_from_rows` (tested). Holds one anchor
    per cached lead, one page of history and the evaluated arrays.
    With ``backfill``, leads without a history row before their moment are kept (``labels.backfilled``)
    for :func:`backfill_scores` instead of being left out (through the row path).
    """
    if backfill:  # an explicit one-off: the row path, which keeps the leads to rescore (labels.backfilled)
        return label_from_rows(store, mapping, settings, now=now, arm=arm, backfill=True)
    converted: dict[str, int] = {}
    for ids, at in store.iter_outcome_columns():
        converted.update(zip(ids, at, strict=True))
    labeler = _Columnar(settings, now, converted)
    created = settings.window_from == "created"
    anchors = _Anchors.read(store, mapping) if created else None
    for page in store.iter_history_columns(arm=arm):
        labeler.add_page(page, anchors)
    if anchors is not None:
        unseen = ~anchors.seen  # cached but never scored
        ids = [lead for lead, seen in zip(anchors.position, anchors.seen.tolist(), strict=True) if not seen]
        labeler.add_unscored(ids, anchors.us[unseen], anchors.ok[unseen])
    return labeler.finish()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _to_us(value: datetime) -> int:
    return (value - _EPOCH) // _US


def _from_us(values: np.ndarray) -> list[datetime]:
    return [_EPOCH + timedelta(microseconds=v) for v in values.tolist()]


@dataclass
class _Anchors:
    """Each cached lead's creation date as microseconds (``ok`` False: none usable), by position of its id."""

    position: dict[str, int]
    us: np.ndarray
    ok: np.ndarray
    seen: np.ndarray

    @classmethod
    def read(cls, store: StateStore, mapping: LeadMapping) -> _Anchors:
        position: dict[str, int] = {}
        us: list[int] = []
        spec = mapping.fields.get("created_at")
        if spec is not None:
            for page in store.iter_lead_values(spec.property, chunk_size=100_000):
                for lead_id, raw in page:
                    anchor = _created(mapping, lead_id, raw)
                    position[lead_id] = len(us)
                    us.append(_MISSING if anchor is None else _to_us(anchor))
        values = np.array(us, dtype=np.int64)
        return cls(position, values, values != _MISSING, np.zeros(len(values), dtype=np.bool_))


_MISSING = np.iinfo(np.int64).min


class _Columnar:
    """:class:`_Labeler`'s rules on arrays: one call per page of whole leads instead of one per lead."""

    def __init__(self, settings: OutcomesConfig, now: datetime, converted: dict[str, int]) -> None:
        self.window = timedelta(days=settings.window_days) // _US
        self.lead_time = timedelta(days=settings.lead_time_days) // _US
        self.now = _to_us(now)
        self.converted = converted
        self.labels = StoreLabels()
        self.oldest: int | None = None
        self.parts: list[tuple[np.ndarray, ...]] = []

    def _judge(self, anchor: np.ndarray, ok: np.ndarray, conv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which leads are judged (the rest counted), their label and the moment they are judged at."""
        out = self.labels
        out.leads += len(anchor)
        out.no_anchor += int((~ok).sum())
        if ok.any():
            oldest = int(anchor[ok].min())
            self.oldest = oldest if self.oldest is None else min(self.oldest, oldest)
        has = ok & (conv != _MISSING)
        closes = np.where(ok, anchor, 0) + self.window
        before = has & (conv < anchor)
        positive = has & ~before & (conv <= closes)
        rest = ok & ~before & ~positive
        pending = rest & (closes > self.now)
        out.converted_before_anchor += int(before.sum())
        out.pending += int(pending.sum())
        judged = positive | (rest & ~pending)
        moment = np.where(positive, conv, closes) - self.lead_time
        return judged, positive, moment

    def _conv(self, lead_ids: list[str]) -> np.ndarray:
        get = self.converted.get
        return np.array([get(i, _MISSING) for i in lead_ids], dtype=np.int64)

    def add_page(self, page: HistoryColumns, anchors: _Anchors | None) -> None:
        ids = np.array(page.lead_ids, dtype=object)
        at = np.array(page.at_us, dtype=np.int64)
        starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        lengths = np.diff(np.append(starts, len(ids)))
        leads = ids[starts].tolist()
        if anchors is None:  # window_from: first_scored
            keep = np.ones(len(starts), dtype=np.bool_)
            anchor, ok = at[starts], keep
        else:  # only cached leads count (history of a lead no longer cached is skipped)
            found = np.array([anchors.position.get(i, -1) for i in leads], dtype=np.int64)
            keep = found >= 0
            anchors.seen[found[keep]] = True
            anchor, ok = anchors.us[found[keep]], anchors.ok[found[keep]]
        rows = np.flatnonzero(np.repeat(keep, lengths))
        starts, lengths = starts[keep], lengths[keep]
        kept = [lead for lead, k in zip(leads, keep.tolist(), strict=True) if k]
        judged, positive, moment = self._judge(anchor, ok, self._conv(kept))
        # the last row at or before the moment (rows are in time order within a lead): count the prefix
        before = (at[rows] <= np.repeat(moment, lengths)).astype(np.int64)
        counts = np.add.reduceat(before, np.cumsum(lengths) - lengths) if len(rows) else before
        found_row = judged & (counts > 0)
        self.labels.no_history += int((judged & ~found_row).sum())
        pick = (starts + counts - 1)[found_row]
        self.parts.append(
            (
                np.array(kept, dtype=object)[found_row],
                positive[found_row],
                moment[found_row],
                anchor[found_row],
                np.array(page.totals, dtype=np.int64)[pick],
                np.array(page.grades, dtype=object)[pick],
            )
        )

    def add_unscored(self, lead_ids: list[str], anchor: np.ndarray, ok: np.ndarray) -> None:
        """Cached leads without history: counted; the judged ones have no score before their moment."""
        judged, _, _ = self._judge(anchor, ok, self._conv(lead_ids))
        self.labels.no_history += int(judged.sum())

    def finish(self) -> StoreLabels:
        out = self.labels
        if self.parts:
            ids, positive, moment, anchor, totals, grades = (np.concatenate(c) for c in zip(*self.parts, strict=True))
            out.lead_ids = ids.tolist()
            out.outcomes = positive.tolist()
            out.moments = _from_us(moment)
            out.anchors = _from_us(anchor)
            out.scores = totals.tolist()
            out.grades = grades.tolist()
        if self.oldest is not None:
            out.oldest_anchor = _EPOCH + timedelta(microseconds=self.oldest)
        return out


def label_from_rows(
    store: StateStore,
    mapping: LeadMapping,
    settings: OutcomesConfig,
    *,
    now: datetime,
    arm: str = "champion",
    backfill: bool = False,
) -> StoreLabels:
    """The row-at-a-time labelling :func:`label_from_store` vectorises: the reference its result must equal.

    Builds a :class:`HistoryRow` per history row: clear, but about 70 s for a million leads.
    """
    outcomes = {o.lead_id: o.converted_at for page in store.iter_outcomes() for o in page}
    labeler = _Labeler(settings, now, outcomes, backfill)
    history = _grouped(store.iter_history(arm=arm))
    if settings.window_from == "first_scored":
        for lead_id, rows in history:
            labeler.add(lead_id, rows[0].at, rows)
        return labeler.labels
    spec = mapping.fields.get("created_at")
    anchors: dict[str, datetime | None] = {}
    if spec is not None:
        for page in store.iter_lead_values(spec.property):
            for lead_id, raw in page:
                anchors[lead_id] = _created(mapping, lead_id, raw)
    for lead_id, rows in history:
        if lead_id in anchors:
            labeler.add(lead_id, anchors.pop(lead_id), rows)
    for lead_id, anchor in anchors.items():  # cached but never scored
        labeler.add(lead_id, anchor, [])
    return labeler.labels


def _created(mapping: LeadMapping, lead_id: str, raw: str | None) -> datetime | None:
    if raw is None or raw == "":
        return None
    value = mapping.convert(lead_id, "created_at", raw, None)
    return value if isinstance(value, datetime) else None


def rescore_as_of(
    store: StateStore, mapping: LeadMapping, rules: CompiledRules, labels: StoreLabels, name: str
) -> RuleSetScores:
    """Scores of ``rules`` for the labeled leads as of each lead's moment, from the cache.

    Activities after the moment are dropped and ``now`` is the moment; lifecycle stage and lead status are
    cleared for every lead (their cached values are today's, which for converters say "customer").
    """
    scored = RuleSetScores(name, rules)
    cached = store.get_leads(labels.lead_ids)
    for k, (lead_id, moment) in enumerate(zip(labels.lead_ids, labels.moments, strict=True)):
        hit = cached.get(lead_id)
        lead = (
            mapping.to_lead(lead_id, hit.properties, object_type=hit.object_type) if hit is not None else Lead(lead_id)
        )
        lead = dataclasses.replace(lead, lifecycle_stage=None, lead_status=None)
        activities: list[Activity] = []
        if hit is not None:
            activities = [a for a in activities_from_dicts(lead_id, hit.activities) if a.timestamp < moment]
        score = rules.score(lead, activities, moment)
        scored.scores.append(score.total)
        scored.grades.append(score.grade)
        scored.totals.append(score.points)
        for rule_hit in score.hits:
            column = scored.points.setdefault(rule_hit.rule, [])
            column.extend([0.0] * (k - len(column)))
            column.append(rule_hit.points)
    return scored


def backfill_scores(store: StateStore, mapping: LeadMapping, rules: CompiledRules, labels: StoreLabels) -> None:
    """Fill in the champion's score of the ``backfilled`` leads, rescored as of each one's moment from the cache.

    Exactly the candidate path (:func:`rescore_as_of`): activities before the moment only, ``now`` the moment,
    lifecycle stage and lead status cleared. What can still leak: the cache holds today's attribute values
    (a job title or company size updated during the sales cycle) and any CRM-kept counter the rules read as a
    property (page views, form submissions), which include what happened after the moment.
    """
    if not labels.backfilled:
        return
    subset = StoreLabels(
        lead_ids=[labels.lead_ids[i] for i in labels.backfilled],
        moments=[labels.moments[i] for i in labels.backfilled],
    )
    scored = rescore_as_of(store, mapping, rules, subset, "backfill")
    for i, total, grade in zip(labels.backfilled, scored.scores, scored.grades, strict=True):
        labels.scores[i] = total
        labels.grades[i] = grade


@dataclass(frozen=True)
class ArmConversion:
    """One arm of a split: the evaluated leads its score was written for, and how many converted."""

    arm: str
    leads: int
    converted: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.leads if self.leads else None


@dataclass
class ShadowComparison:
    """The shadow challenger against the champion on the same leads, each judged by its score as of the same
    moment (history before the outcome); with a split, each arm's conversion among the leads it was written for."""

    #: evaluated leads with a challenger score at their moment (the comparison is on these)
    leads: int
    positives: int
    #: evaluated leads without one (the challenger started after their moment)
    missing: int
    champion_auc: float | None
    challenger_auc: float | None
    comparison: Comparison | None
    split: float = 0.0
    arms: list[ArmConversion] = field(default_factory=list)
    #: two-proportion z-test of the arms' conversion rates (pooled), two-sided
    z: float | None = None
    p_value: float | None = None
    alpha: float = 0.05

    def summary(self) -> list[str]:
        """What the CLI prints: the AUC comparison, then the split's arms when there is one."""
        if self.comparison is not None:
            lines = [f"shadow challenger on {self.leads} leads: {self.comparison.summary}"]
        else:
            lines = [
                f"shadow challenger: {self.leads} evaluated leads have a challenger score before their moment "
                f"({self.positives} converted); comparing AUCs needs at least two of each class"
            ]
        if self.split > 0 and len(self.arms) == 2:
            shown = ", ".join(
                f"{a.arm} written for {a.leads} leads, {a.converted} converted"
                + (f" ({a.rate:.1%})" if a.rate is not None else "")
                for a in self.arms
            )
            if self.p_value is None:
                lines.append(f"split {self.split:g}: {shown}; no test (an arm without leads or no variation)")
            else:
                verdict = "significant" if self.p_value < self.alpha else "not significant"
                lines.append(
                    f"split {self.split:g}: {shown}; difference {verdict} "
                    f"(two-proportion z = {self.z:.2f}, p = {self.p_value:.3g})"
                )
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "leads": self.leads,
            "positives": self.positives,
            "excluded_no_challenger_history": self.missing,
            "champion_auc": self.champion_auc,
            "challenger_auc": self.challenger_auc,
            "comparison": self.comparison.as_dict() if self.comparison is not None else None,
            "split": self.split,
            "arms": [{"arm": a.arm, "leads": a.leads, "converted": a.converted, "rate": a.rate} for a in self.arms],
            "split_test": None
            if self.p_value is None
            else {"method": "two-proportion z-test", "z": self.z, "p_value": self.p_value, "alpha": self.alpha},
            "summary": self.summary(),
        }


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float] | None:
    """(z, two-sided p) of the pooled two-proportion z-test of x2/n2 vs x1/n1; None when it is undefined."""
    if n1 == 0 or n2 == 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (x2 / n2 - x1 / n1) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def compare_challenger(store: StateStore, labels: StoreLabels, split: float = 0.0) -> ShadowComparison | None:
    """Champion vs the shadow challenger from the history (None when the challenger never ran).

    Each labeled lead is judged by the challenger's history row as of the lead's own moment, exactly as the
    champion is; leads without one are left out of the paired comparison (DeLong) and counted. With
    ``split``, the arms are the leads the stable hash sent to each (the pipeline's ``written_arm``).
    """
    if store.count_history(CHALLENGER) == 0:
        return None
    index = {lead_id: k for k, lead_id in enumerate(labels.lead_ids)}
    found: list[int] = []
    shadow: list[int] = []
    for lead_id, rows in _grouped(store.iter_history(arm=CHALLENGER)):
        k = index.get(lead_id)
        if k is None:
            continue
        row = _as_of(rows, labels.moments[k])
        if row is not None:
            found.append(k)
            shadow.append(row.total)
    y = np.array([labels.outcomes[k] for k in found], dtype=np.bool_)
    champ = np.array([labels.scores[k] for k in found], dtype=np.float64)
    chall = np.array(shadow, dtype=np.float64)
    positives = int(y.sum())
    both = positives >= 2 and len(found) - positives >= 2
    result = ShadowComparison(
        leads=len(found),
        positives=positives,
        missing=len(labels.lead_ids) - len(found),
        champion_auc=auc_score(champ, y) if both else None,
        challenger_auc=auc_score(chall, y) if both else None,
        comparison=compare(champ, chall, y, names=("champion", "challenger")) if both else None,
        split=split,
    )
    if split > 0:
        counts = {"champion": [0, 0], CHALLENGER: [0, 0]}
        for lead_id, converted in zip(labels.lead_ids, labels.outcomes, strict=True):
            cell = counts[written_arm(lead_id, split)]
            cell[0] += 1
            cell[1] += int(converted)
        result.arms = [ArmConversion(arm, n, x) for arm, (n, x) in counts.items()]
        test = two_proportion_test(
            counts["champion"][1], counts["champion"][0], counts[CHALLENGER][1], counts[CHALLENGER][0]
        )
        if test is not None:
            result.z, result.p_value = test
    return result


@dataclass
class StoreEvaluation:
    """The store path's result: the counts always, the shared evaluation once there are enough outcomes."""

    labels: StoreLabels
    settings: OutcomesConfig
    now: datetime
    run: EvaluationRun | None
    where: str
    #: champion vs the shadow challenger (None: no challenger history)
    challenger: ShadowComparison | None = None

    @property
    def first_window_closes_at(self) -> datetime | None:
        return self.labels.first_window_closes_at(timedelta(days=self.settings.window_days))

    def message(self) -> str | None:
        """Why there is no evaluation yet (None when there is one)."""
        if self.run is not None:
            return None
        n = self.labels.positives
        if n == 0 and self.labels.no_history:
            return (
                f"nothing to evaluate yet: {self.labels.no_history} leads were first scored after the moment "
                "they are judged at (their score before the outcome is unknown, so they are left out); "
                "evaluation starts as leads scored now reach their outcome or the end of their window"
            )
        if n == 0:
            closes = self.first_window_closes_at
            if closes is None:
                return "no outcomes yet: no lead has a creation date or a score to start its window from"
            if closes > self.now:
                days = (closes - self.now).total_seconds() / 86400
                return (
                    f"no outcomes yet: the first {self.settings.window_days}-day window (from the oldest lead) "
                    f"closes on {closes:%Y-%m-%d}, in {days:.0f} days"
                )
            return "no outcomes yet: no lead converted within its window (is `outcomes:` reading the right stage?)"
        if len(self.labels.outcomes) == n:
            return f"{n} converted leads but no closed window without a conversion yet: nothing to compare with"
        return f"only {n} converted leads so far; evaluation needs at least {MIN_POSITIVES}"

    def as_dict(self) -> dict[str, Any]:
        s = self.settings
        closes = self.first_window_closes_at
        base: dict[str, Any] = {
            "source": "state",
            "state": self.where,
            "as_of": self.now.isoformat(),
            "window_days": s.window_days,
            "window_from": s.window_from,
            "lead_time_days": s.lead_time_days,
            "score_source": self.labels.score_source,
            **self.labels.counts(),
            "first_window_closes_at": closes.isoformat() if closes else None,
            "message": self.message(),
            "challenger": self.challenger.as_dict() if self.challenger is not None else None,
        }
        if self.run is None:
            return base
        full = self.run.as_dict()
        full.pop("input", None)
        for key in ("rows", "labeled", "unlabeled", "rows_rejected", "label"):
            full.pop(key, None)
        return {**full, **base}


def evaluate_store(
    store: StateStore,
    mapping: LeadMapping,
    rules: CompiledRules,
    settings: OutcomesConfig,
    objective: str,
    *,
    candidate: CompiledRules | None = None,
    contributions: bool = False,
    now: datetime | None = None,
    n_boot: int = 1000,
    backfill: bool = False,
    challenger_split: float = 0.0,
    rank_by: str = "score",
) -> StoreEvaluation:
    """Label, take the as-of scores, and evaluate with the same code as the CSV path.

    ``backfill``: leads without history before their moment get the champion rescored from the cache as of
    it (a fresh install's past conversions); off by default, and said in the output when used.
    ``rank_by="points"``: the history keeps scores only, so the champion's points are rescored from the cache
    as of each lead's moment (as a candidate's are); said in the output.
    """
    now = now or datetime.now(UTC)
    labels = label_from_store(store, mapping, settings, now=now, backfill=backfill)
    if backfill:
        backfill_scores(store, mapping, rules, labels)
    n, positives = len(labels.outcomes), labels.positives
    if positives < MIN_POSITIVES or positives == n:
        return StoreEvaluation(labels, settings, now, None, store.where)
    champion = RuleSetScores("champion", rules, scores=labels.scores, grades=labels.grades)
    if contributions or rank_by == "points":
        # the rules' points as of the moment (history keeps totals only); the scores evaluated stay the history's
        rescored = rescore_as_of(store, mapping, rules, labels, "champion")
        champion.points, champion.totals = rescored.points, rescored.totals
    challenger = rescore_as_of(store, mapping, candidate, labels, "candidate") if candidate is not None else None
    dates = np.array([np.datetime64(a.astimezone(UTC).replace(tzinfo=None), "s") for a in labels.anchors])
    data = LabeledData(
        source=Path(store.where),
        label=f"converted within {settings.window_days} days",
        rows=labels.leads,
        unlabeled=labels.pending,
        rejected=[],
        outcomes=np.array(labels.outcomes, dtype=np.bool_),
        dates=dates,
        date_column="created" if settings.window_from == "created" else "first scored",
        champion=champion,
        candidate=challenger,
    )
    run = run_evaluation(data, objective, n_boot=n_boot, rank_by=rank_by)
    result = StoreEvaluation(labels, settings, now, run, store.where)
    result.challenger = compare_challenger(store, labels, challenger_split)
    return result


def evaluate_configured(
    config_path: Path | None,
    candidate_path: Path | None,
    objective: str,
    *,
    now: datetime | None = None,
    contributions: bool = False,
    backfill: bool = False,
    rank_by: str = "score",
) -> StoreEvaluation:
    """The store path of the CLI: the config's store, mapping, rules and ``outcomes:`` section.

    :raises ConfigError, InputError, StateStoreError: with a message naming the file or the store.
    """
    from leadsync.app import build_app
    from leadsync.config import load_config
    from leadsync.evaluate_cmd import load_candidate

    app = build_app(load_config(config_path))
    candidate = load_candidate(candidate_path, app.mapping) if candidate_path is not None else None
    store = StateStore.open(app.config.state.url)
    try:
        return evaluate_store(
            store,
            app.mapping,
            app.rules,
            app.config.outcomes,
            objective,
            candidate=candidate,
            contributions=contributions,
            now=now,
            backfill=backfill,
            challenger_split=app.config.challenger.split if app.config.challenger is not None else 0.0,
            rank_by=rank_by,
        )
    finally:
        store.close()
