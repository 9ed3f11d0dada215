"""``leadsync model train|list|show|activate``: the predictive model's command line.

Training reads the state store (outcomes, lead cache, point-in-time features: :mod:`leadsync.training_data`)
or a labeled CSV (``--input F --label COL``: every column is a candidate feature, mapped columns through the
CSV mapping as for ``leadsync score``), and saves the model with its card as a new version in the config's
state store. Guards (too few labeled leads, one class, a leaky feature, the label among the features) stop
with one message and exit 2.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from leadsync.input_error import InputError

# The CLI registers these commands at start-up: numpy, scikit-learn and the store are imported by the
# functions that use them, so that `leadsync --help` and every other command do not pay for them.
if TYPE_CHECKING:
    import numpy as np

    from leadsync.config import ModelConfig
    from leadsync.csv_dialect import CsvDialect
    from mappings import LeadMapping
    from scoring import CompiledRules
    from scoring.predictive import FeatureTable, TrainOptions, TrainResult
    from sync.state import StateStore

T = TypeVar("T")
model_app = typer.Typer(help="The predictive model: train on outcomes (or a labeled CSV), inspect, activate.")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: $LEADSYNC_CONFIG, else ./leadsync.yaml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


@dataclass
class LabeledCsv:
    table: FeatureTable
    y: np.ndarray
    dates: np.ndarray | None
    rules_scores: np.ndarray
    rows: int
    unlabeled: int
    rejected: int
    date_column: str | None
    #: feature names the file can give a value to (the card's dropped list names only these)
    possible: set[str] = field(default_factory=set)


def train_options(settings: ModelConfig, allow_leaky: list[str], label: str | None) -> TrainOptions:
    from scoring.predictive import TrainOptions

    return TrainOptions(
        min_labeled=settings.min_labeled,
        min_minority=settings.min_minority,
        holdout=settings.holdout,
        max_categories=settings.max_categories,
        allow_leaky=[*settings.allow_leaky, *allow_leaky],
        label=label,
    )


def read_labeled_csv(
    source: Path,
    label: str,
    rules: CompiledRules,
    mapping: LeadMapping,
    *,
    exclude: list[str],
    date_column: str | None,
    as_of: datetime,
    dialect: CsvDialect | None = None,
) -> LabeledCsv:
    """Feature rows and labels of a labeled CSV. :raises InputError: naming the file, column and row.

    ``dialect``: the delimiter, encoding and null tokens, as ``leadsync score --input`` reads the file; a
    null token (``csv.null_values``, e.g. a form's ``Select``) is missing in every column, mapped or not.
    """
    import numpy as np

    from leadsync.csv_dialect import CsvDialect
    from leadsync.evaluate_cmd import date_column_of, parse_label
    from scoring.predictive import FeatureTable, LeadFeatures
    from sync.predict import csv_feature_row, csv_possible_features, raw_columns

    if not source.is_file():
        raise InputError(f"--input: {source} is not a file")
    dialect = dialect or CsvDialect()
    nulls = dialect.nulls
    features = LeadFeatures(rules, exclude=exclude)
    rows: list[dict[str, Any]] = []
    labels: list[bool] = []
    dates: list[float] = []
    scores: list[float] = []
    total = unlabeled = rejected = 0
    try:
        with source.open(newline="", encoding=dialect.encoding) as handle:
            reader = csv.DictReader(handle, delimiter=dialect.delimiter)
            header = list(reader.fieldnames or [])
            if not header:
                raise InputError(f"{source}: the file is empty (expected a header row)")
            if label not in header:
                raise InputError(f"{source}: no column '{label}' for --label (columns: {', '.join(header)})")
            mapped = {spec.property: name for name, spec in mapping.fields.items()}
            if label in mapped and mapped[label] not in exclude:
                raise InputError(
                    f"{source}: the label column '{label}' is also the feature '{mapped[label]}' (csv mapping); "
                    "a model would learn the answer: map another column, or pick another label"
                )
            date_column, date_spec = date_column_of(source, header, mapping, date_column)
            extra = raw_columns(
                header, mapping, skip={label, *(exclude or ()), *([date_column] if date_column else [])}
            )
            for row in reader:
                total += 1
                try:
                    outcome = parse_label(row.get(label))
                except ValueError as exc:
                    raise InputError(f"{source}: line {reader.line_num}: column '{label}': {exc}") from None
                if outcome is None:
                    unlabeled += 1
                    continue
                row = {k: "" if isinstance(v, str) and v and v.strip() in nulls else v for k, v in row.items()}
                problems: list[str] = []
                lead = mapping.to_lead(
                    f"line-{reader.line_num}", row, lambda *a, found=problems: found.append(str(a[1]))
                )
                when = None
                if date_spec is not None:
                    when = mapping.convert(lead.id, "date", row.get(date_spec.property), None, date_spec)
                if problems or None in row:
                    rejected += 1
                    continue
                features_row = csv_feature_row(row, lead, features, as_of, extra, nulls)
                rows.append(features_row)
                scores.append(float(features_row["score"]))
                labels.append(outcome)
                dates.append(when.timestamp() if isinstance(when, datetime) else np.nan)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{source}: not a readable CSV file ({exc})") from None
    return LabeledCsv(
        FeatureTable.from_rows(rows),
        np.array(labels, dtype=np.bool_),
        np.array(dates) if date_spec is not None else None,
        np.array(scores),
        total,
        unlabeled,
        rejected,
        date_column,
        csv_possible_features(header, mapping, extra),
    )


def _offline(config: Path | None) -> tuple[str, CompiledRules, LeadMapping, ModelConfig, str]:
    """Rules, CSV mapping, ``model:`` settings and state URL of the offline path (no CRM section needed)."""
    from leadsync.app import load_csv_scoring
    from leadsync.model_apply import offline_settings

    source, rules, mapping = load_csv_scoring(config)
    settings, url = offline_settings(config)
    return source, rules, mapping, settings, url


def _save(url: str, result: TrainResult, source: str, activate: bool) -> tuple[str, bool]:
    from sync.state import StateStore

    store = StateStore.open(url)
    try:
        body = result.model.to_bytes()
        result.card["file_bytes"] = len(body)
        version = store.save_model(body, result.card, source, activate=activate)
        return version, activate
    finally:
        store.close()


def train_from_csv(
    config: Path | None, input_path: Path, label: str, allow_leaky: list[str], date: str | None, as_of: datetime
) -> dict[str, Any]:
    from leadsync.csv_dialect import DialectError, resolve
    from leadsync.model_apply import csv_file_options
    from scoring.predictive import train_model

    _, rules, mapping, settings, url = _offline(config)
    try:
        dialect = resolve(input_path, csv_file_options(config)) if input_path.is_file() else None
    except DialectError as exc:
        raise InputError(str(exc)) from None
    data = read_labeled_csv(
        input_path, label, rules, mapping, exclude=settings.exclude, date_column=date, as_of=as_of, dialect=dialect
    )
    result = train_model(
        data.table,
        data.y,
        dates=data.dates,
        baseline=data.rules_scores,
        options=train_options(settings, allow_leaky, label),
        source="csv",
    )
    dropped = result.card["dropped"]
    result.card["dropped"] = {k: v for k, v in dropped.items() if _could_exist(k, v, data.possible)}
    result.card.update(
        {
            "not_in_input": len(dropped) - len(result.card["dropped"]),
            "source": "csv",
            "input": str(input_path),
            "label": label,
            "input_rows": data.rows,
            "unlabeled": data.unlabeled,
            "rows_rejected": data.rejected,
            "date_column": data.date_column,
            "rules_version": rules.version,
            "trained_at": datetime.now(UTC).isoformat(),
        }
    )
    version, active = _save(url, result, "csv", True)
    return {"version": version, "active": active, **result.card}


def _could_exist(name: str, reason: str, possible: set[str]) -> bool:
    """Whether a dropped feature is worth naming for a CSV: a column of the file, or a rule that did fire."""
    if name in possible:
        return True
    return (name == "score" or name.startswith("rule:")) and reason not in ("empty", "constant")


def train_from_store(config: Path | None, allow_leaky: list[str], now: datetime | None = None) -> dict[str, Any]:
    from leadsync.app import build_app
    from leadsync.config import load_config
    from leadsync.training_data import training_rows
    from scoring.predictive import train_model

    app = build_app(load_config(config))
    store = app.store()
    try:
        rows = training_rows(
            store, app.mapping, app.rules, app.config.outcomes, now=now, exclude=app.config.model.exclude
        )
    finally:
        store.close()
    result = train_model(
        rows.table,
        rows.outcomes,
        dates=rows.anchor_seconds(),
        baseline=rows.rules_scores,
        options=train_options(app.config.model, allow_leaky, None),
        source="store",
    )
    result.card.update(store_card(rows, app.config.outcomes.window_days, app.rules.version))
    version, active = _save(app.config.state.url, result, "store", True)
    return {"version": version, "active": active, **result.card}


def store_card(rows: Any, window_days: int, rules_version: str) -> dict[str, Any]:
    """What the store path adds to the card: the window, the counts left out, the exclusions, the caveat."""
    return {
        "source": "store",
        "label": f"converted within {window_days} days",
        "data_window": rows.window(),
        "counts": rows.labels.counts(),
        "excluded_attributes": rows.excluded,
        "rules_version": rules_version,
        "trained_at": datetime.now(UTC).isoformat(),
        "caveat": (
            "features are taken as of each lead's outcome moment (activities before it, rules scored as of it); "
            "cached attribute values and CRM-kept counters are the CRM's latest and may include later changes"
        ),
    }


def _summary(card: dict[str, Any]) -> list[str]:
    m = card["metrics"]
    lines = [
        f"model {card['version']} ({'active' if card.get('active') else 'inactive'}): {card['rows']} labeled leads, "
        f"{card['positives']} converted; {len(card['features'])} features ({len(card['dropped'])} columns dropped)",
        f"holdout ({card['holdout']}, {m['leads']} leads): AUC {m['auc']:.3f}, Brier {m['brier']:.3f}, "
        f"log loss {m['log_loss']:.3f}; calibration {card['calibration']['method']}",
    ]
    if m.get("rules_auc") is not None:
        lines.append(f"the rules' score on the same holdout: AUC {m['rules_auc']:.3f}")
    top = ", ".join(i["feature"] for i in card["importance"][:5])
    lines.append(f"strongest features: {top}")
    return lines


def _as_of(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@model_app.command("train")
def train(
    config: ConfigOption = None,
    input_path: Annotated[
        Path | None, typer.Option("--input", "-i", help="A labeled CSV instead of the state store.")
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="The CSV column saying who converted.")] = None,
    allow_leaky: Annotated[
        list[str] | None, typer.Option("--allow-leaky", help="A feature the leakage guard lets through (repeatable).")
    ] = None,
    date: Annotated[str | None, typer.Option("--date", help="CSV date column ordering the holdout.")] = None,
    as_of: Annotated[datetime | None, typer.Option("--as-of", help="When the CSV's columns were taken.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a model on outcomes (or a labeled CSV), save it as a new version and make it active."""
    from leadsync.cli import clean_errors, fail
    from mappings import MappingError

    with clean_errors():
        try:
            if input_path is not None:
                if label is None:
                    fail("--input needs --label COL (the column saying who converted)", 2)
                card = train_from_csv(config, input_path, label, list(allow_leaky or []), date, _as_of(as_of))
            else:
                if label is not None or date is not None:
                    fail("--label and --date apply to a labeled CSV (--input)", 2)
                card = train_from_store(config, list(allow_leaky or []))
        except (InputError, MappingError) as exc:
            fail(str(exc), 2)
    if as_json:
        sys.stdout.write(json.dumps(card) + "\n")
        return
    for line in _summary(card):
        typer.echo(line)


def _open_store(config: Path | None) -> StateStore:
    from leadsync.config import ConfigError, load_config
    from sync.state import StateStore

    try:
        url = load_config(config).state.url
    except ConfigError:
        _, _, _, _, url = _offline(config)
    return StateStore.open(url)


@model_app.command("list")
def list_models(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Every saved model version, oldest first, with its holdout metrics; * marks the active one."""
    from leadsync.cli import clean_errors

    with clean_errors():
        store = _open_store(config)
        try:
            models = store.list_models()
        finally:
            store.close()
    rows = [
        {
            "version": m.version,
            "active": m.active,
            "created_at": m.created_at.isoformat(),
            "source": m.source,
            "rows": m.card.get("rows"),
            "positives": m.card.get("positives"),
            "auc": m.card.get("metrics", {}).get("auc"),
            "brier": m.card.get("metrics", {}).get("brier"),
        }
        for m in models
    ]
    if as_json:
        sys.stdout.write(json.dumps({"models": rows}) + "\n")
        return
    if not rows:
        typer.echo("no model yet: run `leadsync model train`")
    for r in rows:
        typer.echo(
            f"{'*' if r['active'] else ' '} {r['version']}  {r['created_at'][:19]}  {r['source']:5}  "
            f"{r['rows']} leads, {r['positives']} converted  AUC {r['auc']}  Brier {r['brier']}"
        )


def _with_version(config: Path | None, version: str, act: Callable[[StateStore, str], T]) -> T:
    """Open the config's store, resolve a version (or unique prefix) and run ``act``; unknown: exit 2."""
    from leadsync.cli import clean_errors, fail

    with clean_errors():
        store = _open_store(config)
        try:
            found = store.find_model_version(version)
            if len(found) != 1:
                known = ", ".join(m.version for m in store.list_models()) or "none yet"
                problem = "no model version" if not found else "more than one model version starts with"
                fail(f"{problem} '{version}' (versions: {known})", 2)
            return act(store, found[0])
        finally:
            store.close()
    raise AssertionError("unreachable")  # clean_errors exits on every error


VersionArgument = Annotated[str, typer.Argument(metavar="VERSION", help="A version (or a unique prefix).")]


@model_app.command("show")
def show(version: VersionArgument, config: ConfigOption = None) -> None:
    """The model card of one version as JSON: data, features, holdout metrics, library versions."""
    found = _with_version(config, version, lambda store, v: store.get_model(v))
    assert found is not None
    card = {"version": found.version, "active": found.active, "created_at": found.created_at.isoformat(), **found.card}
    sys.stdout.write(json.dumps(card, indent=2) + "\n")


@model_app.command("activate")
def activate(version: VersionArgument, config: ConfigOption = None) -> None:
    """Make VERSION the model that scores leads (sync and ``score --input``)."""
    resolved = _with_version(config, version, lambda store, v: store.activate_model(v) and v)
    typer.echo(f"model {resolved} is active")
