"""Does the score predict anything? Scores against outcomes: AUC, lift, thresholds, champion vs candidate.

Pure numpy, no I/O: callers bring arrays (a score per lead, 0..100, fractional allowed; a 0/1 outcome; optionally
a grade and the date of the lead's event) and get frozen result objects with ``as_dict()`` / ``to_json()``.
Everything is O(n log n) at most (one sort), so that a million leads evaluate in a couple of seconds:

- AUC is the Mann-Whitney statistic on midranks, which is exactly what ``sklearn.metrics.roc_auc_score``
  computes (ties count one half), without building the ROC curve;
- its 95% interval is a seeded percentile bootstrap over leads, vectorised by drawing the resampled counts of
  each (distinct score, outcome) cell from one multinomial instead of resampling a million rows 1,000 times;
- a "MQL" is a lead whose score is >= the threshold (the engine's hysteresis needs a previous state, which an
  evaluation of one snapshot does not have).

The scores must be the ones leads had *before* their outcome: a score taken after conversion includes the
engagement of the sales cycle itself (meetings, calls, replies) and flatters every model.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .errors import ScoringError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: the order grades are shown in (others, if any, follow alphabetically)
GRADE_ORDER = ("hot", "warm", "cold")
#: at most this many cells for the bootstrap: finer score differences than 1/10,000 of the range are merged
_MAX_CELLS = 2_001
#: bootstrap replicates drawn at once (bounds memory to chunk x cells floats)
_BOOT_CHUNK = 100
#: points kept in the ROC and threshold curves of the result (the plots need no more)
_CURVE_POINTS = 201
_DAYS_PER = {"day": 1.0, "week": 7.0, "month": 365.25 / 12}


class EvaluationError(ScoringError):
    """The data cannot be evaluated (one class only, mismatched lengths, a bad objective...)."""


class _Json:
    """``as_dict()`` (JSON-ready: NaN becomes None) and ``to_json()`` for the frozen result dataclasses."""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _clean(asdict(self))  # type: ignore[call-overload]
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict())


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


# -- result objects ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AucResult(_Json):
    """AUC with its 95% percentile bootstrap interval (``n_boot`` replicates, ``seed``)."""

    value: float
    ci_low: float
    ci_high: float
    n_boot: int
    seed: int


@dataclass(frozen=True)
class GroupRow(_Json):
    """One grade or decile: its leads, converters, conversion rate and lift over the overall rate.

    ``capture`` is the share of all converters found in this group and the ones above it (deciles: the top
    ``k`` tenths; grades: this grade and the better ones).
    """

    label: str
    n: int
    positives: int
    rate: float
    lift: float
    min_score: float
    max_score: float
    capture: float


@dataclass(frozen=True)
class ThresholdStats(_Json):
    """What "MQL = score >= threshold" gives: volume, precision (their conversion), recall, F1.

    ``mqls_per_week`` is None when the leads have no dates to tell the span they cover.
    """

    threshold: float
    mqls: int
    mqls_per_week: float | None
    converted_mqls: int
    precision: float | None
    recall: float
    f1: float


@dataclass(frozen=True)
class Change(_Json):
    """Moving the threshold from the configured one to the recommended one: what sales would see."""

    from_threshold: float
    to_threshold: float
    direction: Literal["more", "fewer", "same"]
    mqls_delta: int
    mqls_per_week_delta: float | None
    #: the leads between the two thresholds (added when lowering, removed when raising) and their conversion
    leads_between: int
    conversion_between: float | None
    #: the conversion of all MQLs before and after
    precision_before: float | None
    precision_after: float | None
    summary: str


@dataclass(frozen=True)
class Recommendation(_Json):
    """The threshold an objective picks; ``threshold`` is None (and ``reason`` says why) when none can."""

    objective: str
    threshold: float | None
    stats: ThresholdStats | None
    change: Change | None
    reason: str


@dataclass(frozen=True)
class CurvePoint(_Json):
    threshold: float
    mqls: int
    mqls_per_week: float | None
    precision: float | None
    recall: float


@dataclass(frozen=True)
class DriftRow(_Json):
    """One period (week or month) of leads by their date: volume, mean score, share >= threshold, conversion."""

    period: str
    n: int
    mean_score: float
    share_mql: float
    positives: int
    rate: float


@dataclass(frozen=True)
class Distribution(_Json):
    """Histogram of scores, converted and not converted, on the same bins."""

    edges: list[float]
    positives: list[int]
    negatives: list[int]


@dataclass(frozen=True)
class Evaluation(_Json):
    """Everything one rule set's scores say against the outcomes."""

    n: int
    positives: int
    negatives: int
    base_rate: float
    auc: AucResult
    threshold: ThresholdStats
    recommendation: Recommendation
    grades: list[GroupRow]
    deciles: list[GroupRow]
    date_span_days: float | None
    roc: dict[str, list[float]] = field(default_factory=dict)
    curve: list[CurvePoint] = field(default_factory=list)
    distribution: Distribution | None = None
    drift: list[DriftRow] = field(default_factory=list)
    drift_period: str | None = None


@dataclass(frozen=True)
class Comparison(_Json):
    """Champion vs candidate on the same leads: AUC difference and DeLong's test for correlated ROC curves."""

    champion_auc: float
    candidate_auc: float
    difference: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    significant: bool
    alpha: float
    method: str
    summary: str


@dataclass(frozen=True)
class RuleContribution(_Json):
    """Average points of one rule among converted and not converted leads (who carries the converters)."""

    rule: str
    mean_converted: float
    mean_not_converted: float
    difference: float
    fired_converted: float
    fired_not_converted: float


# -- objectives --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """``f1``, ``precision:P`` (lowest threshold with precision >= P) or ``capacity:N/week`` (lowest threshold
    giving at most N MQLs a week; also ``/day`` and ``/month``)."""

    kind: Literal["f1", "precision", "capacity"]
    value: float = 0.0
    per: str = "week"

    def __str__(self) -> str:
        if self.kind == "f1":
            return "f1"
        if self.kind == "precision":
            return f"precision:{self.value:g}"
        return f"capacity:{self.value:g}/{self.per}"


_CAPACITY = re.compile(r"^capacity:\s*(\d+(?:\.\d+)?)\s*/\s*(day|week|month)$")
_PRECISION = re.compile(r"^precision:\s*(\d*\.?\d+)$")


def parse_objective(text: str) -> Objective:
    """Parse ``--objective``; a bad one raises ``EvaluationError`` saying what is expected."""
    spec = text.strip().lower()
    if spec == "f1":
        return Objective("f1")
    if m := _PRECISION.match(spec):
        value = float(m.group(1))
        if 0 < value <= 1:
            return Objective("precision", value)
    elif m := _CAPACITY.match(spec):
        value = float(m.group(1))
        if value > 0:
            return Objective("capacity", value, m.group(2))
    raise EvaluationError(
        f"--objective: expected f1, precision:P (0 < P <= 1, e.g. precision:0.4) or capacity:N/week "
        f"(N > 0, also /day or /month), got {text!r}"
    )


# -- core metrics ------------------------------------------------------------------------------------------------


def _arrays(scores: Any, outcomes: Any) -> tuple[F64, npt.NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(outcomes)
    if s.ndim != 1 or y.shape != s.shape:
        raise EvaluationError(f"scores and outcomes must be 1-d arrays of one length, got {s.shape} and {y.shape}")
    if not np.isfinite(s).all():
        raise EvaluationError("scores must be finite numbers (no NaN or infinity)")
    if y.dtype != np.bool_:
        if not np.isin(y, (0, 1)).all():
            raise EvaluationError("outcomes must be 0/1 or booleans")
        y = y.astype(np.bool_)
    return s, y


def midranks(values: F64) -> F64:
    """Ranks 1..n with ties sharing the mean of their ranks (what Mann-Whitney and sklearn's AUC use)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.concatenate([starts[1:], [len(values)]])
    group = np.cumsum(np.concatenate([[True], ordered[1:] != ordered[:-1]])) - 1
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def auc_score(scores: Any, outcomes: Any) -> float:
    """Area under the ROC curve, equal to ``sklearn.metrics.roc_auc_score`` (ties count one half)."""
    s, y = _arrays(scores, outcomes)
    p = int(y.sum())
    n = len(y) - p
    if p == 0 or n == 0:
        raise EvaluationError("AUC needs both converted and not converted leads (only one class present)")
    ranks = midranks(s)
    return float((ranks[y].sum() - p * (p + 1) / 2.0) / (p * n))


def _cells(s: F64, y: npt.NDArray[np.bool_]) -> tuple[F64, I64, I64]:
    """Distinct score values ascending with the number of positives and negatives at each."""
    values, inverse = np.unique(s, return_inverse=True)
    pos = np.bincount(inverse, weights=y, minlength=len(values)).astype(np.int64)
    tot = np.bincount(inverse, minlength=len(values)).astype(np.int64)
    return values, pos, tot - pos


def _auc_from_cells(pos: npt.NDArray[Any], neg: npt.NDArray[Any]) -> F64:
    """AUC of each row of cell counts (ascending score): pairs won plus half the ties, over all pairs."""
    neg_below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=-1)
    pairs = pos.sum(axis=-1) * neg.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: F64 = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)
    return result


def bootstrap_auc(scores: Any, outcomes: Any, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> AucResult:
    """AUC with a percentile bootstrap interval over leads, vectorised.

    Resampling n leads with replacement gives each (distinct score, outcome) cell a count, and the counts of
    all cells are jointly multinomial(n, cell shares): drawing those counts is the same bootstrap as
    resampling rows, at the cost of the number of distinct scores instead of n per replicate. With more than
    2,001 distinct scores, scores are merged into 2,001 even steps of their range for the bootstrap only (the
    AUC itself is exact) and the replicates are shifted by the AUC that merging lost, so the interval stays
    centred on the exact AUC.
    """
    s, y = _arrays(scores, outcomes)
    value = auc_score(s, y)
    span = float(s.max() - s.min())
    _, pos, neg = _cells(s, y)
    shift = 0.0
    if len(pos) > _MAX_CELLS and span > 0:
        _, pos, neg = _cells(np.round((s - s.min()) / span * (_MAX_CELLS - 1)), y)
        shift = value - float(_auc_from_cells(pos, neg))
    shares = np.concatenate([pos, neg]).astype(np.float64) / len(y)
    k = len(pos)
    rng = np.random.default_rng(seed)
    aucs: list[F64] = []
    for start in range(0, n_boot, _BOOT_CHUNK):
        draws = rng.multinomial(len(y), shares, size=min(_BOOT_CHUNK, n_boot - start))
        aucs.append(_auc_from_cells(draws[:, :k], draws[:, k:]))
    boot = np.concatenate(aucs) + shift if aucs else np.array([value])
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(boot, [tail, 100 - tail])
    return AucResult(value, float(low), float(high), n_boot, seed)


def _placements(s: F64, y: npt.NDArray[np.bool_]) -> tuple[F64, F64]:
    """DeLong's structural components: for each positive the share of negatives it beats (ties one half),
    for each negative the share of positives that beat it; O(n log n) by midranks (Sun & Xu 2014)."""
    p, n = int(y.sum()), int((~y).sum())
    all_ranks = midranks(s)
    v10 = (all_ranks[y] - midranks(s[y])) / n
    v01 = 1.0 - (all_ranks[~y] - midranks(s[~y])) / p
    return v10, v01


def compare(
    champion: Any,
    candidate: Any,
    outcomes: Any,
    *,
    alpha: float = 0.05,
    names: tuple[str, str] = ("champion", "candidate"),
) -> Comparison:
    """Is the candidate's AUC different from the champion's on the same leads? DeLong's test.

    Why DeLong and not a paired bootstrap: both scores rank the same leads, so the two AUCs are correlated and
    the test must use their covariance; DeLong gives it in closed form from one sort per score (exact,
    deterministic, a million leads in well under a second), where a paired bootstrap has to re-rank the joint
    (champion, candidate) pairs in every replicate, which cannot be reduced to cell counts and costs ~1,000
    sorts of n. DeLong's normal approximation is sound at the sizes this is meant for (>= 30 converters).
    """
    a, y = _arrays(champion, outcomes)
    b, _ = _arrays(candidate, outcomes)
    if a.shape != b.shape:
        raise EvaluationError("champion and candidate must score the same leads")
    p, n = int(y.sum()), int((~y).sum())
    if p < 2 or n < 2:
        raise EvaluationError("comparing AUCs needs at least two converted and two not converted leads")
    (a10, a01), (b10, b01) = _placements(a, y), _placements(b, y)
    v10, v01 = np.vstack([a10, b10]), np.vstack([a01, b01])
    auc_a, auc_b = float(v10[0].mean()), float(v10[1].mean())
    s10, s01 = np.cov(v10), np.cov(v01)
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / p + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    diff = auc_b - auc_a
    sd = math.sqrt(max(float(var), 0.0))
    if sd == 0:
        z, pval = 0.0, 1.0
    else:
        z = diff / sd
        pval = math.erfc(abs(z) / math.sqrt(2))
    half = 1.959963984540054 * sd
    significant = pval < alpha
    first, second = names
    shown = f"p = {pval:.3g}" if pval >= 1e-16 else "p < 1e-16"
    if not significant:
        verdict = f"no significant difference ({shown}): keep the {first} or collect more outcomes"
    elif diff > 0:
        verdict = f"the {second} ranks converters significantly better ({shown})"
    else:
        verdict = f"the {second} ranks converters significantly worse ({shown})"
    summary = f"AUC {first} {auc_a:.3f} vs {second} {auc_b:.3f} (difference {diff:+.3f}): {verdict}"
    return Comparison(auc_a, auc_b, diff, diff - half, diff + half, z, pval, significant, alpha, "DeLong", summary)


# -- thresholds --------------------------------------------------------------------------------------------------


class _Ladder:
    """Counts of leads and converters at or above each distinct score: every threshold in O(log K)."""

    def __init__(self, s: F64, y: npt.NDArray[np.bool_], weeks: float | None) -> None:
        self.values, pos, neg = _cells(s, y)
        self.at_or_above = np.concatenate([np.cumsum((pos + neg)[::-1])[::-1], [0]])
        self.pos_at_or_above = np.concatenate([np.cumsum(pos[::-1])[::-1], [0]])
        self.positives = int(pos.sum())
        self.weeks = weeks

    def stats(self, threshold: float) -> ThresholdStats:
        i = int(np.searchsorted(self.values, threshold, side="left"))
        return self._at(i, threshold)

    def _at(self, i: int, threshold: float) -> ThresholdStats:
        mqls, tp = int(self.at_or_above[i]), int(self.pos_at_or_above[i])
        precision = tp / mqls if mqls else None
        recall = tp / self.positives if self.positives else 0.0
        f1 = 2 * tp / (mqls + self.positives) if (mqls + self.positives) else 0.0
        per_week = mqls / self.weeks if self.weeks else None
        return ThresholdStats(float(threshold), mqls, per_week, tp, precision, recall, f1)

    def candidates(self) -> tuple[F64, I64, I64]:
        """Each distinct score as a threshold, with MQLs and converted MQLs at it (ascending thresholds)."""
        return self.values, self.at_or_above[:-1], self.pos_at_or_above[:-1]


def _recommend(ladder: _Ladder, objective: Objective, configured: float) -> Recommendation:
    values, mqls, tp = ladder.candidates()
    label = str(objective)
    pick: int | None = None
    reason = ""
    if objective.kind == "f1":
        f1 = 2 * tp / (mqls + ladder.positives)
        best = f1.max()
        pick = int(np.flatnonzero(f1 == best)[-1])  # the highest threshold among equals: fewer MQLs, same F1
        reason = f"the threshold with the best F1 ({best:.3f}) of precision and recall"
    elif objective.kind == "precision":
        precision = tp / np.maximum(mqls, 1)
        ok = np.flatnonzero(precision >= objective.value)
        if len(ok):
            pick = int(ok[0])
            reason = f"the lowest threshold whose MQLs convert at >= {objective.value:.0%}"
        else:
            reason = (
                f"no threshold gives MQLs that convert at >= {objective.value:.0%} "
                f"(the best is {precision.max():.1%}): lower the target or improve the rules"
            )
    else:
        if ladder.weeks is None:
            return Recommendation(
                label,
                None,
                None,
                None,
                f"{label} needs the leads' dates to know how many arrive a {objective.per}: "
                "give a date column (--date COL), or use --objective f1 or precision:P",
            )
        per_unit = mqls / ladder.weeks * _DAYS_PER[objective.per] / 7.0
        ok = np.flatnonzero(per_unit <= objective.value)
        if len(ok):
            pick = int(ok[0])
            reason = f"the lowest threshold giving at most {objective.value:g} MQLs a {objective.per}"
        else:  # even the top score alone is too many: only "no MQL at all" fits
            reason = (
                f"even the highest score ({values[-1]:g}) gives more than {objective.value:g} MQLs a "
                f"{objective.per}: no threshold on these scores fits the capacity"
            )
    if pick is None:
        return Recommendation(label, None, None, None, reason)
    chosen = ladder._at(pick, float(values[pick]))
    return Recommendation(label, chosen.threshold, chosen, _change(ladder, configured, chosen), reason)


def _change(ladder: _Ladder, configured: float, to: ThresholdStats) -> Change:
    before = ladder.stats(configured)
    delta = to.mqls - before.mqls
    between = abs(delta)
    conv_between = abs(to.converted_mqls - before.converted_mqls) / between if between else None
    per_week = (
        (to.mqls_per_week - before.mqls_per_week)
        if to.mqls_per_week is not None and before.mqls_per_week is not None
        else None
    )
    direction: Literal["more", "fewer", "same"] = "more" if delta > 0 else "fewer" if delta < 0 else "same"
    volume = f"{abs(per_week):.1f} {direction} MQLs a week" if per_week is not None else f"{between} {direction} MQLs"
    if direction == "same":
        summary = f"threshold {to.threshold:g} gives the same MQLs as the configured {configured:g}"
    else:
        conv = f"{conv_between:.1%}" if conv_between is not None else "n/a"
        what = "added" if direction == "more" else "dropped"
        summary = (
            f"moving the threshold from {configured:g} to {to.threshold:g}: {volume}; the {between} leads "
            f"{what} convert at {conv}; MQL conversion {_pct(before.precision)} -> {_pct(to.precision)}"
        )
    return Change(
        configured,
        to.threshold,
        direction,
        delta,
        per_week,
        between,
        conv_between,
        before.precision,
        to.precision,
        summary,
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


# -- tables ------------------------------------------------------------------------------------------------------


def _group(label: str, s: F64, y: npt.NDArray[np.bool_], base: float, captured: int, total_pos: int) -> GroupRow:
    n, pos = len(s), int(y.sum())
    rate = pos / n if n else 0.0
    return GroupRow(
        label,
        n,
        pos,
        rate,
        rate / base if base else 0.0,
        float(s.min()) if n else math.nan,
        float(s.max()) if n else math.nan,
        captured / total_pos if total_pos else 0.0,
    )


def deciles(s: F64, y: npt.NDArray[np.bool_], ranks: F64 | None = None) -> list[GroupRow]:
    """Ten groups by score, top first; tied scores always share a group (so groups may differ in size)."""
    ranks = midranks(s) if ranks is None else ranks
    n = len(s)
    position = n - ranks + 1  # 1 = highest score (midrank from the top)
    decile = np.minimum(((position - 0.5) * 10 // n).astype(np.int64), 9)
    base = float(y.mean())
    total_pos = int(y.sum())
    order = np.argsort(decile, kind="stable")
    bounds = np.searchsorted(decile[order], np.arange(11))
    rows: list[GroupRow] = []
    captured = 0
    for d in range(10):
        at = order[bounds[d] : bounds[d + 1]]
        if not len(at):
            continue
        captured += int(y[at].sum())
        rows.append(_group(f"D{d + 1}", s[at], y[at], base, captured, total_pos))
    return rows


def by_grade(s: F64, y: npt.NDArray[np.bool_], grades: Sequence[str] | npt.NDArray[Any]) -> list[GroupRow]:
    g = np.asarray(grades).astype(str)
    if g.shape != s.shape:
        raise EvaluationError(f"grades must have one per lead, got {g.shape} for {s.shape}")
    names = list(np.unique(g))
    ordered = [x for x in GRADE_ORDER if x in names] + sorted(x for x in names if x not in GRADE_ORDER)
    base, total_pos = float(y.mean()), int(y.sum())
    rows: list[GroupRow] = []
    captured = 0
    for name in ordered:
        mask = g == name
        captured += int(y[mask].sum())
        rows.append(_group(name, s[mask], y[mask], base, captured, total_pos))
    return rows


def _curve(ladder: _Ladder) -> list[CurvePoint]:
    """Precision, recall and volume at up to ~200 thresholds across the scores (for tables and plots)."""
    values = ladder.values
    grid = values if len(values) <= _CURVE_POINTS else np.unique(np.quantile(values, np.linspace(0, 1, _CURVE_POINTS)))
    points = []
    for t in grid.tolist():
        st = ladder.stats(t)
        points.append(CurvePoint(st.threshold, st.mqls, st.mqls_per_week, st.precision, st.recall))
    return points


def _roc(s: F64, y: npt.NDArray[np.bool_]) -> dict[str, list[float]]:
    """ROC points (false and true positive rates), thinned to ~200 points for plotting."""
    _, pos, neg = _cells(s, y)
    tpr = np.concatenate([[0.0], np.cumsum(pos[::-1]) / max(pos.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(neg[::-1]) / max(neg.sum(), 1)])
    if len(fpr) > _CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, _CURVE_POINTS).round().astype(np.int64))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def _distribution(s: F64, y: npt.NDArray[np.bool_]) -> Distribution:
    low, high = (0.0, 100.0) if s.min() >= 0 and s.max() <= 100 else (float(s.min()), float(s.max()) or 1.0)
    edges = np.linspace(low, high, 21)
    return Distribution(edges.tolist(), np.histogram(s[y], edges)[0].tolist(), np.histogram(s[~y], edges)[0].tolist())


def _drift(
    s: F64, y: npt.NDArray[np.bool_], days: npt.NDArray[np.datetime64], threshold: float
) -> tuple[str, list[DriftRow]]:
    """Leads by week (spans up to half a year) or by month of their date: is the score moving?"""
    known = ~np.isnat(days)
    d, s, y = days[known], s[known], y[known]
    span = int((d.max() - d.min()) // np.timedelta64(1, "D")) if len(d) else 0
    if span <= 183:
        period = "week"
        day_no = d.astype("datetime64[D]").astype(np.int64)
        monday = day_no - (day_no + 3) % 7  # 1970-01-01 was a Thursday
        keys = monday
        label = [str(np.datetime64(int(k), "D")) for k in np.unique(keys)]
    else:
        period = "month"
        keys = d.astype("datetime64[M]").astype(np.int64)
        label = [str(np.datetime64(int(k), "M")) for k in np.unique(keys)]
    uniq, inverse = np.unique(keys, return_inverse=True)
    n = np.bincount(inverse, minlength=len(uniq))
    total = np.bincount(inverse, weights=s, minlength=len(uniq))
    mql = np.bincount(inverse, weights=s >= threshold, minlength=len(uniq))
    pos = np.bincount(inverse, weights=y, minlength=len(uniq)).astype(np.int64)
    rows = [
        DriftRow(label[i], int(n[i]), float(total[i] / n[i]), float(mql[i] / n[i]), int(pos[i]), float(pos[i] / n[i]))
        for i in range(len(uniq))
    ]
    return period, rows


def rule_contributions(points: npt.NDArray[Any], rules: Sequence[str], outcomes: Any) -> list[RuleContribution]:
    """Per rule (rows of ``points``, one column per lead): mean points and share fired among converted vs not,
    strongest difference first: the rules that carry the converters, and the ones that carry nobody."""
    pts = np.asarray(points, dtype=np.float64)
    y = np.asarray(outcomes).astype(np.bool_)
    if pts.ndim != 2 or pts.shape != (len(rules), len(y)):
        raise EvaluationError(f"points must be rules x leads, got {pts.shape} for {len(rules)} rules, {len(y)} leads")
    if y.all() or not y.any():
        raise EvaluationError("rule contributions need both converted and not converted leads")
    conv, rest = pts[:, y], pts[:, ~y]
    rows = [
        RuleContribution(
            name,
            float(conv[i].mean()),
            float(rest[i].mean()),
            float(conv[i].mean() - rest[i].mean()),
            float((conv[i] != 0).mean()),
            float((rest[i] != 0).mean()),
        )
        for i, name in enumerate(rules)
    ]
    return sorted(rows, key=lambda r: (-abs(r.difference), r.rule))


# -- the whole evaluation ----------------------------------------------------------------------------------------


def evaluate(
    scores: Any,
    outcomes: Any,
    *,
    threshold: float,
    objective: Objective | str = "f1",
    grades: Sequence[str] | npt.NDArray[Any] | None = None,
    dates: npt.NDArray[np.datetime64] | Sequence[Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> Evaluation:
    """Evaluate one rule set's scores against outcomes (see the module docstring for the definitions).

    ``threshold`` is the configured MQL threshold; ``dates`` (numpy datetime64, NaT for unknown) give the
    span the leads cover, needed for MQLs per week, the capacity objective and the drift table.
    """
    s, y = _arrays(scores, outcomes)
    p = int(y.sum())
    if p == 0 or p == len(y):
        raise EvaluationError(
            f"every one of the {len(y)} leads is {'converted' if p else 'not converted'}: "
            "evaluation needs both converted and not converted leads"
        )
    goal = parse_objective(objective) if isinstance(objective, str) else objective
    days: npt.NDArray[np.datetime64] | None = None
    weeks: float | None = None
    span_days: float | None = None
    if dates is not None:
        days = np.asarray(dates, dtype="datetime64[s]")
        if days.shape != s.shape:
            raise EvaluationError(f"dates must have one per lead, got {days.shape} for {s.shape}")
        known = days[~np.isnat(days)]
        if len(known):
            span_days = float((known.max() - known.min()).astype(np.int64)) / 86_400.0
            weeks = span_days / 7.0 if span_days >= 1.0 else None
    ranks = midranks(s)
    ladder = _Ladder(s, y, weeks)
    drift_period, drift = _drift(s, y, days, threshold) if days is not None and weeks is not None else (None, [])
    return Evaluation(
        n=len(y),
        positives=p,
        negatives=len(y) - p,
        base_rate=p / len(y),
        auc=bootstrap_auc(s, y, n_boot=n_boot, seed=seed),
        threshold=ladder.stats(threshold),
        recommendation=_recommend(ladder, goal, threshold),
        grades=by_grade(s, y, grades) if grades is not None else [],
        deciles=deciles(s, y, ranks),
        date_span_days=span_days,
        roc=_roc(s, y),
        curve=_curve(ladder),
        distribution=_distribution(s, y),
        drift=drift,
        drift_period=drift_period,
    )
