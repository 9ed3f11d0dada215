"""``leadsync rules fit``: points fitted from outcomes, written as a config that ``score`` runs as it is.

The labeled CSV is read as ``leadsync score`` reads it (:func:`leadsync.scorefile.csv_records`) and every
value goes through the mapping's own conversion, so that a fitted table looks up exactly the values the
engine will see. Columns the config does not map are mapped in the output (custom attributes, snake_case
names, ``float`` when every value is a number, else text). The fit itself is :mod:`scoring.fit`; the file
is written by :mod:`leadsync.fit_yaml`. Bad input is one :class:`FitInputError` (exit 2), before anything
is written.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from leadsync.app import load_scoring
from leadsync.config import ConfigError, CsvFileConfig, load_rules_file, load_sections, split_csv_section
from leadsync.csv_dialect import CsvDialect, DialectError, likely_placeholders, resolve
from leadsync.evaluate_cmd import parse_label
from leadsync.scorefile import csv_records
from mappings import FieldSpec, LeadMapping, MappingError, load_mapping
from scoring import CompiledRules, Lead, RulesError
from scoring.evaluation import AucResult, Comparison, bootstrap_auc, compare
from scoring.fit import FitOptions, Scorecard, column_auc, fit_scorecard
from scoring.fit.binning import BinOptions, Feature, bin_feature, categorical_feature, numeric_feature
from scoring.fit.scorecard import FitError
from scoring.rules import DERIVED_ATTRIBUTES, PARTS

#: placeholder tokens are looked for in this many rows (as ``check --input`` samples)
SAMPLE_ROWS = 10_000
#: the fewest labeled rows, and converted (or not) rows, a fit is attempted on
MIN_ROWS = 100
MIN_CLASS = 20
#: a column that alone ranks the outcome above this AUC was almost surely filled in after it
LEAKY_AUC = 0.97
#: a text column whose 50 most frequent values cover less than this share of its rows is free text
FREE_TEXT_TOP = 50
FREE_TEXT_COVER = 0.8
#: mapped types a table cannot look up (a date's points depend on when you score: a rule of your own)
_NOT_TABLES = {"datetime": "a date", "list": "a list", "present": "a presence flag"}
_NUMERIC_TYPES = ("int", "float", "range")


class FitInputError(Exception):
    """The data or options cannot give a fit; the message names the file, the column or the option."""


@dataclass(frozen=True)
class FitSettings:
    label: str
    max_rules: int = 30
    exclude: tuple[str, ...] = ()
    allow_leaky: tuple[str, ...] = ()
    objective: str = "f1"
    seed: int = 0
    folds: int = 5


@dataclass(frozen=True)
class Candidate:
    column: str
    attribute: str
    spec: FieldSpec
    #: not mapped by the config: the fitted file maps it
    added: bool


@dataclass
class LabeledRows:
    source: Path
    sha256: str
    header: list[str]
    rows: list[dict[str, str]]
    lines: list[int]
    outcomes: npt.NDArray[np.bool_]
    read: int = 0
    unlabeled: int = 0
    rejected: list[str] = field(default_factory=list)


@dataclass
class FitResult:
    """Everything the YAML file, the text summary and ``--json`` are made of."""

    settings: FitSettings
    data: LabeledRows
    config_source: str
    mapping: LeadMapping
    csv_section: dict[str, Any]
    candidates: list[Candidate]
    excluded: dict[str, str]
    leaky: dict[str, float]
    scorecard: Scorecard
    #: locked rules as written in --config, by part
    locked: dict[str, list[dict[str, Any]]]
    #: the config's effective settings the locked rules depend on (emails, activity, reasons, decay)
    settings_kept: dict[str, Any]
    threshold: int
    grades: dict[str, int]
    bad_values: dict[str, int]
    text: str = ""
    against: dict[str, Any] | None = None
    #: placeholder tokens found in the data (no ``csv.null_values`` in the config) and read as missing
    placeholders: dict[str, list[str]] = field(default_factory=dict)
    #: ``--from-history``: the cutoff, the activity counts written as event rules, the leaky attributes left out
    history: dict[str, Any] | None = None

    @property
    def rules(self) -> int:
        return len(self.scorecard.tables)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_labeled(
    source: Path,
    label: str,
    on_problem: Callable[[str], None] | None = None,
    dialect: CsvDialect | None = None,
) -> LabeledRows:
    """Every labeled row of ``source`` read as ``score`` reads it (the dialect's delimiter, encoding and null
    tokens: a null token is read as blank): broken records and rows with extra cells are skipped and
    reported (as ``score`` does), an unreadable label stops everything (it is what the fit learns from)."""
    if not source.is_file():
        raise FitInputError(f"--input: {source} is not a file")
    dialect = dialect or CsvDialect()
    nulls = dialect.nulls
    data = LabeledRows(source, file_sha256(source), [], [], [], np.zeros(0, dtype=np.bool_))
    outcomes: list[bool] = []
    with csv_records(source, dialect=dialect) as (header, records):
        if label not in header:
            raise FitInputError(
                f"{source}: no column '{label}' for --label{_close(label, header)} (columns: {', '.join(header)})"
            )
        data.header = header
        for record in records:
            data.read += 1
            problem = None
            if record.broken is not None:
                problem = f"line {record.line}: broken record: {record.broken}"
            elif len(record.cells) > len(header):
                problem = f"line {record.line}: {len(record.cells) - len(header)} more cells than header columns"
            if problem is not None:
                data.rejected.append(problem)
                if on_problem is not None:
                    on_problem(problem)
                continue
            row = {k: ("" if v.strip() in nulls else v) for k, v in zip(header, record.cells, strict=False)}
            try:
                outcome = parse_label(row.get(label))
            except ValueError as exc:
                raise FitInputError(f"{source}: line {record.line}: column '{label}': {exc}") from None
            if outcome is None:
                data.unlabeled += 1
                continue
            data.rows.append(row)
            data.lines.append(record.line)
            outcomes.append(outcome)
    data.outcomes = np.asarray(outcomes, dtype=np.bool_)
    return data


def blank_placeholders(data: LabeledRows, placeholders: Collection[str]) -> None:
    """Read ``placeholders`` (see :func:`leadsync.csv_dialect.likely_placeholders`) as missing, as the fitted
    config's ``csv.null_values`` makes ``score`` read them."""
    if not placeholders:
        return
    tokens = set(placeholders)
    for row in data.rows:
        for key, value in row.items():
            if value and value.strip() in tokens:
                row[key] = ""


def check_counts(data: LabeledRows) -> None:
    y = data.outcomes
    positives = int(y.sum())
    n = len(y)
    where = f"{data.source}"
    if n and positives in (0, n):
        value = "1/true/yes (converted)" if positives else "0/false/no (not converted)"
        raise FitInputError(f"{where}: all {n} labeled rows are {value}; a fit needs leads of both outcomes")
    if n < MIN_ROWS:
        raise FitInputError(f"{where}: {n} labeled rows; a fit needs at least {MIN_ROWS}")
    smaller = min(positives, n - positives)
    if smaller < MIN_CLASS:
        kind = "converted" if positives <= n - positives else "not converted"
        raise FitInputError(f"{where}: only {smaller} {kind} rows; a fit needs at least {MIN_CLASS} of each outcome")


def column_list(values: Sequence[str], header: Sequence[str]) -> tuple[str, ...]:
    """``--exclude A --exclude "B,C"`` -> (A, B, C): repeated options and comma-separated names, trimmed, in
    order, each once; a value that is a column's whole name (commas included) is that column."""
    out: dict[str, None] = {}
    for value in values:
        names = [value] if value in header else [n.strip() for n in value.split(",")]
        out.update(dict.fromkeys(n for n in names if n))
    return tuple(out)


def attribute_name(column: str, taken: set[str]) -> str:
    """``Lead Source`` -> ``lead_source``; unique among ``taken`` (the mapping's and derived attributes)."""
    base = re.sub(r"[^0-9a-z]+", "_", column.casefold()).strip("_")[:56] or "column"
    if base[0].isdigit():
        base = f"c_{base}"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _is_date(text: str) -> bool:
    if _is_number(text):
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def choose_candidates(
    data: LabeledRows, mapping: LeadMapping, settings: FitSettings
) -> tuple[list[Candidate], dict[str, str]]:
    """Candidate columns and, for every other column, why it is left out."""
    by_property: dict[str, tuple[str, FieldSpec]] = {}
    for attribute in sorted(mapping.fields):
        by_property.setdefault(mapping.fields[attribute].property, (attribute, mapping.fields[attribute]))
    label = settings.label
    for option, names in (("--exclude", settings.exclude), ("--allow-leaky", settings.allow_leaky)):
        for name in names:
            if name not in data.header:
                raise FitInputError(f"{option} {name}: no such column in {data.source}{_close(name, data.header)}")
    if label in by_property and label not in settings.exclude:
        attribute = by_property[label][0]
        raise FitInputError(
            f"--label {label}: the config maps this column as attribute '{attribute}', so a fitted rule could "
            f"read the outcome itself; unmap it (csv: fields: {attribute}: null)"
        )
    taken = {*mapping.fields, *DERIVED_ATTRIBUTES}
    candidates: list[Candidate] = []
    excluded: dict[str, str] = {}
    n = len(data.rows)
    for column in data.header:
        if column == label:
            excluded[column] = "the label"
            continue
        if column in settings.exclude:
            excluded[column] = "--exclude"
            continue
        values = [row.get(column, "").strip() for row in data.rows]
        filled = [v for v in values if v]
        if not filled:
            excluded[column] = "always empty"
            continue
        mapped = by_property.get(column)
        if mapped is not None and mapped[1].type in _NOT_TABLES:
            excluded[column] = f"{_NOT_TABLES[mapped[1].type]} (type {mapped[1].type}): write a rule of your own"
            continue
        if mapped is None and all(_is_date(v) for v in filled):
            excluded[column] = "a date: write a rule of your own (within_days / older_than_days)"
            continue
        numeric = mapped[1].type in _NUMERIC_TYPES if mapped else all(_is_number(v) for v in filled)
        distinct = len(set(filled))
        integral = numeric and all(_is_number(v) and float(v).is_integer() for v in filled)
        if distinct == len(filled) and len(filled) >= n / 2 and (not numeric or integral):
            excluded[column] = "an id (a different value on every row)"
            continue
        if not numeric:
            counts = sorted(_count(v.casefold() for v in filled).values(), reverse=True)
            if sum(counts[:FREE_TEXT_TOP]) < FREE_TEXT_COVER * len(filled):
                excluded[column] = f"free text ({len(counts)} distinct values)"
                continue
        if mapped is not None:
            candidates.append(Candidate(column, mapped[0], mapped[1], added=False))
        else:
            spec = FieldSpec(property=column, type="float" if numeric else "str")
            candidates.append(Candidate(column, attribute_name(column, taken), spec, added=True))
    return candidates, excluded


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _close(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def features_of(
    data: LabeledRows, mapping: LeadMapping, candidates: Sequence[Candidate]
) -> tuple[list[Feature], dict[str, int]]:
    """Each candidate's values as the engine reads them (``LeadMapping.convert``); a value that does not
    read as its type is missing, counted per column."""
    features = []
    bad: dict[str, int] = {}
    for c in candidates:

        def count(_id: str, column: str, _raw: Any, _problem: str) -> None:
            bad[column] = bad.get(column, 0) + 1

        values = [mapping.convert("", c.attribute, row.get(c.column), count, c.spec) for row in data.rows]
        if c.spec.type in _NUMERIC_TYPES:
            features.append(numeric_feature(c.attribute, [None if v is None else float(v) for v in values]))
        else:
            texts = [None if v is None else (str(v).lower() if isinstance(v, bool) else str(v)) for v in values]
            features.append(categorical_feature(c.attribute, texts))
    return features, bad


@dataclass(frozen=True)
class CsvSettings:
    """The config's ``csv:`` section read by the loader every offline command uses
    (:func:`leadsync.config.split_csv_section`): as written, its mapping part, and how the file is read."""

    source: str
    written: dict[str, Any]
    mapping_section: dict[str, Any] | None
    options: CsvFileConfig


def csv_settings(config: Path | None) -> CsvSettings:
    source, sections = load_sections(config, ("scoring", "csv"))
    written = copy.deepcopy(sections.get("csv") or {})
    mapping_section, options = split_csv_section(written or None, source)
    return CsvSettings(source, written, copy.deepcopy(mapping_section), options)


def _fit_mapping(settings: CsvSettings, candidates: Sequence[Candidate]) -> tuple[str, dict[str, Any], LeadMapping]:
    """The config's ``csv:`` section as written, and its mapping with the added candidates mapped too."""
    section = copy.deepcopy(settings.mapping_section or {})
    fields = dict(section.get("fields") or {})
    for c in candidates:
        if c.added:
            fields[c.attribute] = {"property": c.column, "type": c.spec.type}
    if fields:
        section["fields"] = fields
    try:
        mapping = load_mapping("csv", section or None, source="csv")
    except MappingError as exc:
        raise ConfigError(settings.source, exc.where, exc.problem) from None
    return settings.source, settings.written, mapping


def _locked_rules(config: Path | None) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """The rules marked ``locked: true`` in the config's ``scoring:``, by part, and its scoring section."""
    _, sections = load_sections(config, ("scoring",))
    section = sections.get("scoring") or {}
    locked: dict[str, list[dict[str, Any]]] = {}
    for part in PARTS:
        for rule in section.get(part) or []:
            if isinstance(rule, dict) and rule.get("locked") is True:
                locked.setdefault(part, []).append(rule)
    return locked, section


def _leads(data: LabeledRows, mapping: LeadMapping) -> list[Lead]:
    return [mapping.to_lead(f"line-{line}", row) for line, row in zip(data.lines, data.rows, strict=True)]


def _scores(
    rules: CompiledRules, leads: Sequence[Lead], now: datetime
) -> tuple[npt.NDArray[np.float64], list[str], npt.NDArray[np.float64]]:
    """Totals, grades and the unclamped sum of the rules' points of each lead."""
    totals: list[int] = []
    grades: list[str] = []
    raw: list[float] = []
    for score in rules.iter_scores(((lead, [], None) for lead in leads), now):
        totals.append(score.total)
        grades.append(score.grade)
        raw.append(sum(h.points for h in score.hits))
    return np.asarray(totals, dtype=np.float64), grades, np.asarray(raw, dtype=np.float64)


def screen_candidates(
    candidates: list[Candidate],
    features: list[Any],
    y: Any,
    options: FitOptions,
    settings: FitSettings,
    excluded: dict[str, str],
    *,
    where: str,
    rows: str,
) -> tuple[list[Candidate], list[Any], dict[str, float]]:
    """The candidates worth fitting, and the leaky columns let in with their AUC. One-value columns go to
    ``excluded``; a column that alone separates the outcome (a post-sale field) stops the fit unless
    ``--allow-leaky`` names it. Shared by the CSV and the history fit: one guard, one message."""
    leaky: dict[str, float] = {}
    kept_candidates, kept_features = [], []
    for c, f in zip(candidates, features, strict=True):
        if len(bin_feature(f, y, options.bins)) < 2:
            excluded[c.column] = f"one value on (almost) every {rows}"
            continue
        auc = leak_auc(f, y, options.bins)
        if auc > LEAKY_AUC:
            leaky[c.column] = auc
            if c.column not in settings.allow_leaky:
                continue
        kept_candidates.append(c)
        kept_features.append(f)
    blocked = {c: a for c, a in leaky.items() if c not in settings.allow_leaky}
    if blocked:
        named = ", ".join(f"'{c}' (AUC {a:.3f})" for c, a in sorted(blocked.items()))
        first = sorted(blocked)[0]
        raise FitInputError(
            f"{where}: {'columns' if len(blocked) > 1 else 'column'} {named} alone "
            f"{'separate' if len(blocked) > 1 else 'separates'} the outcome (AUC above {LEAKY_AUC}, on every "
            f"{rows} or on the {rows}s where it is filled): "
            "almost surely filled in after it (like a 'closed by' tag); "
            f"leave it out with --exclude {_quote(first)}, or keep it with --allow-leaky {_quote(first)}"
        )
    return kept_candidates, kept_features, leaky


def run_fit(
    input_path: Path,
    settings: FitSettings,
    config: Path | None = None,
    *,
    against: Path | None = None,
    on_problem: Callable[[str], None] | None = None,
    now: datetime | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> FitResult:
    """Read, check, fit and render; raises :class:`FitInputError` (or ``ConfigError``) on bad input."""
    from leadsync.fit_yaml import check_rendered, render

    now = now or datetime.now(UTC)
    if settings.max_rules < 1:
        raise FitInputError(f"--max-rules: expected at least 1, got {settings.max_rules}")
    csv_config = csv_settings(config)
    try:
        dialect = resolve(input_path, csv_config.options, delimiter=delimiter, encoding=encoding)
    except DialectError as exc:
        raise FitInputError(str(exc)) from None
    data = read_labeled(input_path, settings.label, on_problem, dialect)
    placeholders: dict[str, list[str]] = {}
    if "null_values" not in csv_config.written:  # the config says which tokens are null: exactly those
        sample = [[row[c] for c in data.header] for row in data.rows[:SAMPLE_ROWS]]
        placeholders = likely_placeholders(data.header, sample, dialect.nulls)
        blank_placeholders(data, placeholders)
        if placeholders:
            written = {"null_values": sorted(placeholders), **csv_config.written}
            csv_config = dataclasses.replace(csv_config, written=written)
    check_counts(data)
    settings = dataclasses.replace(
        settings,
        exclude=column_list(settings.exclude, data.header),
        allow_leaky=column_list(settings.allow_leaky, data.header),
    )
    _, _, base_mapping = _fit_mapping(csv_config, [])
    candidates, excluded = choose_candidates(data, base_mapping, settings)
    config_source, csv_section, mapping = _fit_mapping(csv_config, candidates)
    features, bad = features_of(data, mapping, candidates)
    y = data.outcomes
    options = FitOptions(
        max_rules=settings.max_rules, folds=settings.folds, seed=settings.seed, objective=settings.objective
    )
    kept_candidates, kept_features, leaky = screen_candidates(
        candidates, features, y, options, settings, excluded, where=data.source, rows="row"
    )
    if not kept_features:
        raise FitInputError(f"{data.source}: no candidate column to fit (left out: {_why(excluded)})")
    locked, section = _locked_rules(config)
    locked_points, reserve, settings_kept = None, 0, {}
    if locked:
        try:
            locked_rules = load_scoring({"base": "none", **locked}, mapping, source=f"{config_source}: scoring")
        except RulesError as exc:
            raise ConfigError(config_source, exc.where, exc.problem) from None
        leads = _leads(data, mapping)
        _, _, locked_points = _scores(locked_rules, leads, now)
        reserve = math.ceil(max(0.0, float(_positive_sum(locked_rules, leads, now).max())))
        try:
            configured = load_scoring(section, mapping, source=f"{config_source}: scoring").rules
        except RulesError as exc:
            raise ConfigError(config_source, exc.where, exc.problem) from None
        settings_kept = {
            k: getattr(configured, k).model_dump(mode="json") for k in ("emails", "activity", "reasons", "decay")
        }
    try:
        scorecard = fit_scorecard(kept_features, y, locked=locked_points, reserve=reserve, options=options)
    except FitError as exc:
        raise FitInputError(f"{data.source}: {exc}") from None
    rec = scorecard.evaluation.recommendation
    threshold = int(rec.threshold) if rec.threshold is not None else 50
    hot = min(100, round(threshold + 2 * scorecard.points_to_double_odds))
    result = FitResult(
        settings=settings,
        data=data,
        config_source=config_source,
        mapping=mapping,
        csv_section=csv_section,
        candidates=kept_candidates,
        excluded=excluded,
        leaky=leaky,
        scorecard=scorecard,
        locked=locked,
        settings_kept=settings_kept,
        threshold=threshold,
        grades={"hot": max(hot, threshold), "warm": threshold},
        bad_values=bad,
        placeholders=placeholders,
    )
    result.text = render(result)
    fitted = check_rendered(result.text)
    if against is not None:
        result.against = compare_against(result, fitted, against, now)
    return result


def leak_auc(feature: Feature, y: npt.NDArray[np.bool_], options: BinOptions) -> float:
    """How well the column alone separates the outcome: on every row, and on the rows where it is filled
    when they are at least a fifth of them with :data:`MIN_CLASS` of each outcome (the larger). Why both: a
    post-sale field (a sales rep's tag) is blank until someone works the lead, so on all rows it ranks like
    a strong intake column (0.92 on a real export) while on its filled rows it all but decides (0.98)."""
    auc = column_auc(feature, y, options)
    filled = np.flatnonzero(~feature.missing())
    positives = int(y[filled].sum())
    if len(filled) < len(y) and len(filled) >= 0.2 * len(y) and min(positives, len(filled) - positives) >= MIN_CLASS:
        auc = max(auc, column_auc(feature.take(filled), y[filled], options))
    return auc


def _positive_sum(rules: CompiledRules, leads: Sequence[Lead], now: datetime) -> npt.NDArray[np.float64]:
    out = []
    for score in rules.iter_scores(((lead, [], None) for lead in leads), now):
        out.append(sum(h.points for h in score.hits if h.points > 0))
    return np.asarray(out or [0.0], dtype=np.float64)


def _quote(column: str) -> str:
    return f"'{column}'" if re.search(r"[^A-Za-z0-9_.-]", column) else column


def _why(excluded: dict[str, str]) -> str:
    return "; ".join(f"{c}: {why}" for c, why in excluded.items())


def compare_against(result: FitResult, fitted: CompiledRules, path: Path, now: datetime) -> dict[str, Any]:
    """Both rule sets on the training leads: AUCs with intervals (the fitted one cross-validated), the
    difference (DeLong), and how many leads change grade or cross the MQL line."""
    if not path.is_file():
        raise FitInputError(f"--against: {path} is not a file")
    source, section = load_rules_file(path)
    try:
        current = load_scoring(section, result.mapping, source=source)
    except RulesError as exc:
        raise ConfigError(source, exc.where, exc.problem) from None
    leads = _leads(result.data, result.mapping)
    y = result.data.outcomes
    cur_scores, cur_grades, _ = _scores(current, leads, now)
    new_scores, new_grades, _ = _scores(fitted, leads, now)
    cur_auc: AucResult = bootstrap_auc(cur_scores, y, seed=result.settings.seed)
    fit_auc = result.scorecard.cv_auc
    diff: Comparison = compare(cur_scores, result.scorecard.oof_scores, y, names=("current rules", "fitted rules"))
    changes = sum(a != b for a, b in zip(cur_grades, new_grades, strict=True))
    cur_mql = cur_scores >= current.mql_threshold
    new_mql = new_scores >= fitted.mql_threshold
    return {
        "against": str(path),
        "current": {
            "rules_version": current.version,
            "auc": cur_auc.as_dict(),
            "auc_kind": "all labeled rows (not fitted)",
            "rules": len(current.rule_names),
            "threshold": current.mql_threshold,
            "mqls": int(cur_mql.sum()),
        },
        "fitted": {
            "rules_version": fitted.version,
            "auc": fit_auc.as_dict(),
            "auc_kind": f"{len(result.scorecard.fold_aucs)}-fold cross-validated",
            "rules": len(fitted.rule_names),
            "threshold": fitted.mql_threshold,
            "mqls": int(new_mql.sum()),
        },
        "difference": diff.as_dict(),
        "grade_changes": int(changes),
        "leads": len(y),
        "newly_mql": int((new_mql & ~cur_mql).sum()),
        "no_longer_mql": int((cur_mql & ~new_mql).sum()),
    }


def as_dict(result: FitResult, output: Path | None) -> dict[str, Any]:
    sc = result.scorecard
    rec = sc.evaluation.recommendation
    data: dict[str, Any] = {
        "output": str(output) if output is not None else None,
        "input": str(result.data.source),
        "sha256": result.data.sha256,
        "label": result.settings.label,
        "rows": result.data.read,
        "labeled": len(result.data.outcomes),
        "unlabeled": result.data.unlabeled,
        "rows_rejected": len(result.data.rejected),
        "positives": int(result.data.outcomes.sum()),
        "candidates": [c.column for c in result.candidates],
        "excluded": result.excluded,
        "leaky": {c: round(a, 4) for c, a in sorted(result.leaky.items())},
        "values_unreadable": result.bad_values,
        "placeholders": result.placeholders,
        "rules": result.rules,
        "locked_rules": sum(len(v) for v in result.locked.values()),
        "cv_auc": sc.cv_auc.as_dict(),
        "fold_aucs": list(sc.fold_aucs),
        "points_to_double_odds": round(sc.points_to_double_odds, 3),
        "threshold": result.threshold,
        "objective": rec.objective,
        "grades": result.grades,
        "options": options_of(result),
        "against": result.against,
    }
    if output is None:
        data["config"] = result.text
    return data


def options_of(result: FitResult) -> dict[str, Any]:
    s = result.settings
    return {
        "max_rules": s.max_rules,
        "exclude": list(s.exclude),
        "allow_leaky": list(s.allow_leaky),
        "objective": s.objective,
        "seed": s.seed,
        "folds": s.folds,
        "bins": BinOptions().__dict__,
    }


def summary_lines(result: FitResult, output: Path | None) -> list[str]:
    """What ``rules fit`` prints (on stderr when the config goes to stdout)."""
    sc = result.scorecard
    auc = sc.cv_auc
    n, positives = len(result.data.outcomes), int(result.data.outcomes.sum())
    lines = [
        f"{n:,} labeled leads ({positives:,} converted, {positives / n:.1%}); {len(result.candidates)} candidate "
        f"columns, {len(result.excluded)} left out",
        f"{result.rules} fitted rules (at most {result.settings.max_rules}), integer points, totals 0..100; "
        f"{sc.points_to_double_odds:.1f} points double the odds",
        f"cross-validated AUC {auc.value:.3f} (95% CI {auc.ci_low:.3f} to {auc.ci_high:.3f}); "
        f"MQL threshold {result.threshold} ({sc.evaluation.recommendation.objective})",
    ]
    for token, columns in result.placeholders.items():
        lines.append(f"read {token!r} as missing: a placeholder frequent in {len(columns)} columns (csv.null_values)")
    if result.locked:
        lines.append(f"{sum(len(v) for v in result.locked.values())} locked rules kept with their points")
    a = result.against
    if a is not None:
        for key, title in (("current", f"current ({a['against']})"), ("fitted", "fitted")):
            side = a[key]
            r = side["auc"]
            lines.append(
                f"  {title}: AUC {r['value']:.3f} (95% CI {r['ci_low']:.3f} to {r['ci_high']:.3f}, "
                f"{side['auc_kind']}), "
                f"{side['rules']} rules, threshold {side['threshold']:g}, {side['mqls']:,} MQLs"
            )
        lines.append(
            f"  {a['grade_changes']:,} of {a['leads']:,} leads change grade; {a['newly_mql']:,} become MQL, "
            f"{a['no_longer_mql']:,} stop being MQL; {a['difference']['summary']}"
        )
    if output is not None:
        lines.append(f"wrote {output}; check it with `leadsync score --config {output} --input ...`")
    return lines
