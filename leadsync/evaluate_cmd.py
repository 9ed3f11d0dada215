"""``leadsync evaluate`` / ``report`` from a labeled CSV: score each row with the configured rules (and a
candidate), read its outcome label, and hand the arrays to ``scoring.evaluation``.

Rows go through the same CSV mapping and bulk scoring API as ``leadsync score``; a row whose values the
mapping cannot read is skipped and reported (like ``score``), while a bad label stops everything, because a
label is the thing being evaluated against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from leadsync.app import load_scoring
from leadsync.config import CsvFileConfig, load_rules_file
from leadsync.csv_dialect import CsvDialect
from leadsync.input_error import InputError
from mappings import FieldSpec, LeadMapping
from scoring import CompiledRules, Lead, LeadBatch, ScoreColumns
from scoring._values import UNIT
from scoring.evaluation import Comparison, Evaluation, RuleContribution, compare, evaluate, rule_contributions
from scoring.rules import PARTS

TRUE = frozenset({"1", "true", "yes"})
FALSE = frozenset({"0", "false", "no"})
#: fewer converters than this and an AUC or a threshold is noise
MIN_POSITIVES = 30
CHUNK = 5_000
#: what ``--rank-by`` may rank leads by: the 0..100 score, or the unclamped points (``Score.points``)
RANK_BY = ("score", "points")


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

    def add_scores(self, scores: ScoreColumns, rows: npt.NDArray[np.int64]) -> None:
        """The scores of some leads of a scored batch, with each rule's points (and the part caps') as their
        ``Score.hits`` give them: a rule gets a column once it has fired for some lead."""
        start = len(self.scores)
        self.scores.extend(scores.total[rows].tolist())
        grades = ("cold", "warm", "hot")
        self.grades.extend(grades[g] for g in scores.grade_codes[rows].tolist())
        self.totals.extend(scores.points[rows].tolist())
        named: list[tuple[str, npt.NDArray[np.int64], npt.NDArray[np.bool_]]] = []
        for rule in self.compiled._rules:
            fired = scores.counts[rule.index, rows] > 0
            named.append((rule.name, scores.units[rule.index, rows], fired))
        for p, part in enumerate(PARTS):
            adjust = scores.cap_adjust[p, rows]
            named.append((f"{part} cap", adjust, adjust != 0))
        for name, units, fired in named:
            if not fired.any() and name not in self.points:
                continue
            column = self.points.setdefault(name, [])
            column.extend([0.0] * (start - len(column)))
            column.extend(np.where(fired, units / UNIT, 0.0).tolist())
        for column in self.points.values():
            column.extend([0.0] * (len(self.scores) - len(column)))

    def add(self, leads: list[Lead], now: datetime) -> None:
        """Score ``leads`` (no activities) on the columnar path and add them."""
        batch = LeadBatch.from_items((lead, [], None) for lead in leads)
        self.add_scores(self.compiled.score_batch(batch, now), np.arange(len(leads), dtype=np.int64))

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


def date_column_of(
    source: str, header: list[str], mapping: LeadMapping, date_column: str | None
) -> tuple[str | None, FieldSpec | None]:
    """The column that dates each labeled row (``--date``, else the mapping's ``created_at`` when the file
    has it), for the time-ordered holdout; a ``--date`` the file lacks is an input error."""
    created = mapping.fields.get("created_at")
    if date_column is None and created is not None and created.property in header:
        date_column = created.property
    elif date_column is not None and date_column not in header:
        raise InputError(f"{source}: no column '{date_column}' for --date (columns: {', '.join(header)})")
    return date_column, FieldSpec(property=date_column, type="datetime") if date_column else None


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


def _labels(source: Path, label: str, cells: Any, lines: npt.NDArray[np.int64]) -> npt.NDArray[np.int8]:
    """The label of each row: 1 converted, 0 not, -1 unlabeled; a bad label stops everything (its line named)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(cells)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    table = np.zeros(len(encoded.dictionary), dtype=np.int8)
    for k, raw in enumerate(encoded.dictionary.to_pylist()):
        try:
            found = parse_label(raw)
        except ValueError as exc:
            line = int(lines[np.flatnonzero(codes == k)[0]])
            raise InputError(f"{source}: line {line}: column '{label}': {exc}") from None
        table[k] = -1 if found is None else int(found)
    labels: npt.NDArray[np.int8] = table[codes]
    return labels


def labeled_dialect(config: Path | None, source: Path, delimiter: str | None = None) -> CsvDialect:
    """How the labeled CSV is read: the config's ``csv:`` delimiter, encoding and null tokens, as ``score``."""
    from leadsync.config import load_sections, split_csv_section
    from leadsync.csv_dialect import DialectError, resolve

    if not source.is_file():
        raise InputError(f"--input: {source} is not a file")
    origin, sections = load_sections(config, ("csv",))
    try:
        return resolve(source, split_csv_section(sections.get("csv"), origin)[1], delimiter=delimiter)
    except DialectError as exc:
        raise InputError(str(exc)) from None


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
    dialect: CsvDialect | None = None,
) -> LabeledData:
    """Score every labeled row of ``source`` with ``rules`` (and ``candidate``); validate the labels.

    The file is read as ``leadsync score`` reads it (``csv_reader``: its delimiter, encoding and null tokens
    from ``dialect``, else detected with the default null tokens; a malformed record is reported with its line
    and skipped) and scored on the columnar path, chunk by chunk.
    """
    from leadsync.csv_columns import chunk_batch, typed_column
    from leadsync.csv_dialect import resolve
    from leadsync.csv_reader import csv_chunks
    from leadsync.scorefile import MAX_RECORD_LINES

    now = now or datetime.now(UTC)
    if not source.is_file():
        raise InputError(f"--input: {source} is not a file")
    if dialect is None:
        try:
            dialect = resolve(source, CsvFileConfig())
        except ValueError as exc:  # DialectError: undecodable text
            raise InputError(str(exc)) from None
    champion = RuleSetScores("champion", rules)
    challenger = RuleSetScores("candidate", candidate) if candidate is not None else None
    outcomes: list[npt.NDArray[np.bool_]] = []
    days: list[npt.NDArray[np.datetime64]] = []
    rejected: list[str] = []
    rows = unlabeled = 0
    with csv_chunks(source, dialect, MAX_RECORD_LINES) as (header, chunks):
        if label not in header:
            raise InputError(f"{source}: no column '{label}' for --label (columns: {', '.join(header)})")
        date_column, date_spec = date_column_of(source, header, mapping, date_column)
        for chunk in chunks:
            rows += chunk.n + len(chunk.rejects)
            problems: list[tuple[int, int, str]] = [
                (record.line, 0, str(problem)) for record, found in chunk.rejects for problem in found
            ]
            if chunk.n:
                cells = dict(zip(header, chunk.cells, strict=True))
                labels = _labels(source, label, cells[label], chunk.lines)
                batch, bad = chunk_batch(cells, chunk.lines, mapping, dialect.nulls)
                when = None
                if date_spec is not None:
                    when, bad_date = typed_column(cells[date_spec.property], "date", date_spec, mapping, dialect.nulls)
                    bad = [*bad, *([bad_date] if bad_date is not None else [])]
                keep = labels >= 0
                unlabeled += int((labels < 0).sum())
                for order, found in enumerate(bad, start=1):
                    for row, raw in zip(found.rows.tolist(), found.raws, strict=True):
                        if keep[row]:
                            line = int(chunk.lines[row])
                            problems.append(
                                (line, order, f"line {line}: column '{found.column}': {found.problem}, got {raw!r}")
                            )
                    keep[found.rows] = False
                kept = np.flatnonzero(keep)
                champion.add_scores(rules.score_batch(batch, now), kept)
                if challenger is not None and candidate is not None:
                    challenger.add_scores(candidate.score_batch(batch, now), kept)
                outcomes.append(labels[kept] == 1)
                if when is not None:
                    micros, ok = when.micros()
                    stamps = np.where(ok, micros // 1_000_000, np.iinfo(np.int64).min)[kept]
                    days.append(stamps.astype("datetime64[s]"))
            for _, _, message in sorted(problems):
                rejected.append(message)
                if on_problem is not None:
                    on_problem(message)
    y = np.concatenate(outcomes) if outcomes else np.zeros(0, dtype=np.bool_)
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
        day_array = np.concatenate(days) if days else np.zeros(0, dtype="datetime64[s]")
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
