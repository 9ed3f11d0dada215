"""The active model in the offline commands: the likelihood columns of ``leadsync score --input`` and the
factors ``leadsync explain`` shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.engine import make_url

from leadsync.config import (
    ConfigError,
    CsvFileConfig,
    ModelConfig,
    StateConfig,
    interpolate,
    load_sections,
    split_csv_section,
)
from mappings import LeadMapping
from scoring import CompiledRules, Lead
from sync.state import StateStore

if TYPE_CHECKING:  # scikit-learn and skops come with it: imported only when a store holds a model
    from sync.predict import ModelScorer

#: the columns ``leadsync score --input`` adds when a model is active
MODEL_COLUMNS: Final = ("likelihood", "priority", "model_version", "likelihood_reasons")
Annotator = Callable[[list[tuple[dict[str, str], Lead]]], list[dict[str, str]]]


def offline_settings(config: Path | None) -> tuple[ModelConfig, str]:
    """The ``model:`` settings and state URL of an offline command (no CRM section needed)."""
    source, sections = load_sections(config, ("model", "state"))
    try:
        settings = ModelConfig.model_validate(sections.get("model") or {})
        state = interpolate({"state": sections.get("state") or {}}, source)["state"]
        url = StateConfig.model_validate(state).url
    except ValueError as exc:
        raise ConfigError(source, "model", str(exc).splitlines()[-1].strip()) from None
    return settings, url


def csv_file_options(config: Path | None) -> CsvFileConfig:
    """How the config says its CSV exports are read (``csv.null_values``, delimiter, encoding)."""
    source, sections = load_sections(config, ("csv",))
    return split_csv_section(sections.get("csv"), source)[1]


def offline_annotator(
    config: Path | None, rules: CompiledRules, mapping: LeadMapping, now: datetime
) -> Annotator | None:
    """The likelihood columns for ``leadsync score --input`` when the config's store has an active model."""
    settings, url = offline_settings(config)
    scorer = active_scorer(url, rules, settings.exclude, settings.enabled)
    if scorer is None:
        return None
    return csv_annotator(scorer, mapping, now, settings.exclude, csv_file_options(config).nulls())


def _existing_store(url: str) -> StateStore | None:
    """The store at ``url``, or None for a SQLite file that does not exist (``score`` never creates one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or not Path(database).expanduser().is_file():
            return None
    return StateStore.open(url)


def active_scorer(url: str, rules: CompiledRules, exclude: list[str], enabled: bool = True) -> ModelScorer | None:
    """The active model of the store at ``url`` (None: none, disabled, or no store yet)."""
    if not enabled:
        return None
    store = _existing_store(url)
    if store is None:
        return None
    try:
        from sync.predict import ModelScorer

        return ModelScorer.from_store(store, rules, exclude)
    finally:
        store.close()


def csv_annotator(
    scorer: ModelScorer, mapping: LeadMapping, now: datetime, skip: list[str], nulls: frozenset[str] = frozenset()
) -> Annotator:
    """Likelihood, priority, version and reasons of chunks of (CSV row, mapped lead), as output cells.

    ``nulls``: cells read as missing in the unmapped columns as well (mapped ones arrive blank already).
    """
    from sync.predict import csv_feature_row, raw_columns

    extra: list[str] | None = None

    def annotate(chunk: list[tuple[dict[str, str], Lead]]) -> list[dict[str, str]]:
        nonlocal extra
        if not chunk:
            return []
        if extra is None:
            extra = raw_columns(list(chunk[0][0]), mapping, skip=set(skip))
        rows = [csv_feature_row(row, lead, scorer.features, now, extra, nulls) for row, lead in chunk]
        likelihood, priority, reasons = scorer.predict_rows(rows)
        return [
            {"likelihood": str(round(p * 100)), "priority": t, "model_version": scorer.version, "likelihood_reasons": r}
            for p, t, r in zip(likelihood, priority, reasons, strict=True)
        ]

    return annotate


def explain_likelihood(
    store: StateStore, rules: CompiledRules, mapping: LeadMapping, lead_id: str, now: datetime, exclude: list[str]
) -> dict[str, Any] | None:
    """The active model's likelihood of one cached lead with the factors pushing it up and down (None: no model)."""
    from sync.predict import ModelScorer
    from sync.scoring_step import activities_from_dicts

    scorer = ModelScorer.from_store(store, rules, exclude)
    cached = store.get_leads([lead_id]).get(lead_id)
    if scorer is None or cached is None:
        return None
    lead = mapping.to_lead(lead_id, cached.properties, object_type=cached.object_type)
    row = scorer.features.row(lead, activities_from_dicts(lead_id, cached.activities), now)
    from scoring.predictive import FeatureTable

    x = scorer.model.matrix(FeatureTable.from_rows([row]))
    p = float(scorer.model.probabilities(x)[0])
    up, down = scorer.model.factors(x, 0)
    return {
        "likelihood": round(p * 100),
        "priority": scorer.model.priority(scorer.model.probabilities(x))[0],
        "model_version": scorer.version,
        "up": up,
        "down": down,
        "reasons": scorer.model.reasons(x)[0],
    }


def print_factors(console: Any, model: dict[str, Any]) -> None:
    """``leadsync explain``'s model part: the likelihood, then the factors up and down (log-odds)."""
    from rich.table import Table

    console.print(
        f"likelihood to close [bold]{model['likelihood']}%[/], priority {model['priority']} "
        f"(model {model['model_version']})",
        highlight=False,
    )
    for title, rows in (("pushing the likelihood up", model["up"]), ("pushing it down", model["down"])):
        if rows:
            table = Table("feature", "value", "log-odds", title=title, title_justify="left")
            for f in rows:
                table.add_row(f["feature"], f["value"], f"{f['contribution']:+.2f}")
            console.print(table)


def active_model_section(config: Path | None) -> str | None:
    """The report's model section for the config's active model (None: no store or no active model)."""
    from leadsync.report_model import model_section

    _, url = offline_settings(config)
    store = _existing_store(url)
    if store is None:
        return None
    try:
        stored = store.active_model()
    finally:
        store.close()
    return None if stored is None else model_section(stored.version, stored.card)
