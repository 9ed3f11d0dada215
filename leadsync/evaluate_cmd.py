"""``leadsync evaluate`` / ``report`` from a labeled CSV: score each row with the configured rules (and a
candidate), read its outcome label, and hand the arrays to ``scoring.evaluation``.

Rows go through the same CSV mapping and bulk scoring API as ``leadsync score``; a row whose values the
mapping cannot read is skipped and reported (like ``score``), while a bad label stops everything, because a
label is the thing being evaluated against.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from leadsync.app import load_scoring
from leadsync.config import load_rules_file
from mappings import FieldSpec, LeadMapping
from scoring import CompiledRules, Lead
from scoring.evaluation import Comparison, Evaluation, RuleContribution, compare, evaluate, rule_contributions

TRUE = frozenset({"1", "true", "yes"})
FALSE = frozenset({"0", "false", "no"})
#: fewer converters than this and an AUC or a threshold is noise
MIN_POSITIVES = 30
CHUNK = 5_000
#: what ``--rank-by`` may rank leads by: the 0..100 score, or the unclamped points (``Score.points``)
RANK_BY = ("score", "points")


class InputError(Exception):
    """The labeled CSV cannot be evaluated; the message names the file, the column and the row or value."""


@dataclass
class RuleSetScores:
    """One rule set's scores of the labeled rows, with each rule's points (from the score explanations)."""

    name: str
    compiled: CompiledRules
    scores: list[int] = field(default_factory=list)
    grades: list[str] = field(default_factory=list)
    points: dict[str, list[float]] = field(default_factory=dict)
    #: each lead's ``Score.points`` (the unclamped total), for ``--rank-by points``
    totals: list[float] = field(default_factory=list)

    def add(self, leads: list[Lead], now: datetime) -> None:
        start = len(self.scores)
        for k, score in enumerate(self.compiled.iter_scores(((lead, [], None) for lead in leads), now)):
            self.scores.append(score.total)
            self.grades.append(score.grade)
            self.totals.append(score.points)
            for hit in score.hits:
                column = self.points.setdefault(hit.rule, [])
                column.extend([0.0] * (start + k - len(column)))
                column.append(hit.points)

    def ranked(self, rank_by: str) -> npt.NDArray[np.float64]:
        """What the evaluation ranks leads by: the scores (0..100) or the points (unclamped)."""
        return np.asarray(self.totals if rank_by == "points" else self.scores, dtype=np.float64)

    def points_matrix(self) -> tuple[list[str], npt.NDArray[np.float64]]:
        names = [n for n in self.compiled.rule_names if n in self.points] + sorted(
            n for n in self.points if n not in self.compiled.rule_names
        )
        matrix = np.zeros((len(names), len(self.scores)))
        for i, name in enumerate(names):
            values = self.points[name]
            matrix[i, : len(values)] = values
        return names, matrix


@dataclass
class LabeledData:
    source: Path
    label: str
    rows: int
    unlabeled: int
    rejected: list[str]
    outcomes: npt.NDArray[np.bool_]
    dates: npt.NDArray[np.datetime64] | None
    date_column: str | None
    champion: RuleSetScores
    candidate: RuleSetScores | None


def load_candidate(path: Path, mapping: LeadMapping) -> CompiledRules:
    """A candidate rule set, read and checked exactly as ``preview --rules`` reads one."""
    if not path.is_file():
        raise InputError(f"--rules: {path} is not a file")
    source, section = load_rules_file(path)
    return load_scoring(section, mapping, source=source)


def parse_label(raw: str | None) -> bool | None:
    """0/1/true/false/yes/no in any case -> bool; empty -> None (unlabeled); else ValueError saying what was
    expected (every reader of a label column prefixes it with the file, line and column)."""
    text = (raw or "").strip().lower()
    if not text:
        return None
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"expected 0/1, true/false or yes/no (empty = unlabeled), got {raw!r}")


def _rows(handle: Any) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(handle)
    for row in reader:
        yield reader.line_num, row


def load_labeled(
    source: Path,
    label: str,
    rules: CompiledRules,
    mapping: LeadMapping,
    *,
    candidate: CompiledRules | None = None,
    date_column: str | None = None,
    now: datetime | None = None,
    on_problem: Any = None,
) -> LabeledData:
    """Score every labeled row of ``source`` with ``rules`` (and ``candidate``); validate the labels."""
    now = now or datetime.now(UTC)
    if not source.is_file():
        raise InputError(f"--input: {source} is not a file")
    champion = RuleSetScores("champion", rules)
    challenger = RuleSetScores("candidate", candidate) if candidate is not None else None
    outcomes: list[bool] = []
    dates: list[datetime | None] = []
    rejected: list[str] = []
    rows = unlabeled = 0
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
            if not header:
                raise InputError(f"{source}: the file is empty (expected a header row)")
            handle.seek(0)
            if label not in header:
                raise InputError(f"{source}: no column '{label}' for --label (columns: {', '.join(header)})")
            created = mapping.fields.get("created_at")
            if date_column is None and created is not None and created.property in header:
                date_column = created.property
            elif date_column is not None and date_column not in header:
                raise InputError(f"{source}: no column '{date_column}' for --date (columns: {', '.join(header)})")
            date_spec = FieldSpec(property=date_column, type="datetime") if date_column else None
            chunk: list[Lead] = []

            def flush() -> None:
                champion.add(chunk, now)
                if challenger is not None:
                    challenger.add(chunk, now)
                chunk.clear()

            for line, row in _rows(handle):
                rows += 1
                try:
                    outcome = parse_label(row.get(label))
                except ValueError as exc:
                    raise InputError(f"{source}: line {line}: column '{label}': {exc}") from None
                if outcome is None:
                    unlabeled += 1
                    continue
                problems: list[str] = []

                def bad(_id: str, column: str, raw: Any, problem: str, line: int = line) -> None:
                    problems.append(f"line {line}: column '{column}': {problem}, got {raw!r}")  # noqa: B023

                lead = mapping.to_lead(row.get("id") or f"line-{line}", row, bad)
                when = None
                if date_spec is not None:
                    when = mapping.convert(lead.id, "date", row.get(date_spec.property), bad, date_spec)
                if None in row:
                    problems.append(f"line {line}: more cells than header columns")
                if problems:
                    rejected.extend(problems)
                    if on_problem is not None:
                        for problem in problems:
                            on_problem(problem)
                    continue
                outcomes.append(outcome)
                dates.append(when)
                chunk.append(lead)
                if len(chunk) >= CHUNK:
                    flush()
            if chunk:
                flush()
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{source}: not a readable CSV file ({exc})") from None
    y = np.array(outcomes, dtype=np.bool_)
    positives = int(y.sum())
    where = f"{source}: column '{label}'"
    if not len(y):
        raise InputError(f"{where}: no labeled rows ({unlabeled} unlabeled, {len(rejected)} unreadable)")
    if positives == 0 or positives == len(y):
        value = "1/true/yes (converted)" if positives else "0/false/no (not converted)"
        raise InputError(f"{where}: all {len(y)} labeled rows are {value}; evaluation needs both classes")
    if positives < MIN_POSITIVES:
        raise InputError(
            f"{where}: only {positives} converted rows (1/true/yes); evaluation needs at least {MIN_POSITIVES} "
            "for an AUC or a threshold that is not noise"
        )
    day_array = None
    if date_column is not None:
        day_array = np.array(
            [np.datetime64(d.astimezone(UTC).replace(tzinfo=None), "s") if d else np.datetime64("NaT") for d in dates],
            dtype="datetime64[s]",
        )
    return LabeledData(source, label, rows, unlabeled, rejected, y, day_array, date_column, champion, challenger)


@dataclass
class EvaluationRun:
    """Everything ``evaluate`` prints and ``report`` draws."""

    data: LabeledData
    objective: str
    champion: Evaluation
    contributions: list[RuleContribution]
    candidate: Evaluation | None = None
    comparison: Comparison | None = None
    #: ``score`` (0..100, what the CRM shows) or ``points`` (the unclamped total)
    rank_by: str = "score"

    def as_dict(self) -> dict[str, Any]:
        d = self.data
        out: dict[str, Any] = {
            "input": str(d.source),
            "label": d.label,
            "rows": d.rows,
            "labeled": len(d.outcomes),
            "unlabeled": d.unlabeled,
            "rows_rejected": len(d.rejected),
            "date_column": d.date_column,
            "rules_version": d.champion.compiled.version,
            "configured_threshold": d.champion.compiled.mql_threshold,
            "objective": self.objective,
            "rank_by": self.rank_by,
            **self.champion.as_dict(),
            "rules": [c.as_dict() for c in self.contributions],
            "candidate": None,
            "comparison": None,
        }
        if self.candidate is not None and d.candidate is not None:
            out["candidate"] = {
                "rules_version": d.candidate.compiled.version,
                "configured_threshold": d.candidate.compiled.mql_threshold,
                **self.candidate.as_dict(),
            }
        if self.comparison is not None:
            out["comparison"] = self.comparison.as_dict()
        return out


def run_evaluation(
    data: LabeledData, objective: str, *, n_boot: int = 1000, seed: int = 0, rank_by: str = "score"
) -> EvaluationRun:
    """``rank_by``: ``score`` or ``points`` (thresholds, deciles and AUC are then in points)."""

    def one(scored: RuleSetScores) -> Evaluation:
        return evaluate(
            scored.ranked(rank_by),
            data.outcomes,
            threshold=scored.compiled.mql_threshold,
            objective=objective,
            grades=scored.grades,
            dates=data.dates,
            n_boot=n_boot,
            seed=seed,
        )

    champion = one(data.champion)
    names, matrix = data.champion.points_matrix()
    contributions = rule_contributions(matrix, names, data.outcomes)
    run = EvaluationRun(data, objective, champion, contributions, rank_by=rank_by)
    if data.candidate is not None:
        run.candidate = one(data.candidate)
        run.comparison = compare(
            data.champion.ranked(rank_by),
            data.candidate.ranked(rank_by),
            data.outcomes,
            names=("configured rules", "candidate"),
        )
    return run
