"""``leadsync rules fit --from-history``: the fit on the state store's leads, point in time.

The labeled rows are :func:`leadsync.training_data.training_rows` (what ``model train`` learns from): each
lead labelled as ``leadsync evaluate`` labels it, its cached attributes and its activity counts taken
**before** the moment it is judged at, and the attributes that leak by construction (lifecycle stage, lead
status, owner, dates, the outcome's own properties) never candidates. The candidates are then chosen,
binned and fitted exactly as for a CSV (:mod:`leadsync.fit_cmd`): attributes become lookup tables, and an
activity count (``email_open_30d``: opens in the 30 days before the moment) becomes an event rule whose
escalating points give each count the table's points (``points: [0, 4, 0]``: the 2nd open earns 4, so 2
or more opens earn 4). An event rule cannot take points back, so a count's table is made non-decreasing
(each count keeps the most points of any count up to it); the file says so when that changed a table.

The output is a rules file (``scoring:`` only: the CRM config keeps its mapping) for ``leadsync evaluate
--rules``, ``preview --rules`` or ``challenger.rules``. ``--until DATE`` fits on the leads whose window
opened before DATE only, so that the later ones are a holdout neither the fit nor its choices saw.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from leadsync.fit_cmd import (
    Candidate,
    FitInputError,
    FitResult,
    FitSettings,
    LabeledRows,
    check_counts,
    choose_candidates,
    column_list,
    features_of,
    screen_candidates,
)
from mappings import FieldSpec, LeadMapping
from scoring.fit import FitOptions, fit_scorecard
from scoring.fit.scorecard import FitError, Table
from scoring.predictive.leads import WINDOWS

#: FeatureTable columns that are not the lead's own values (the rules' total and hits, a model-only flag)
_NOT_CANDIDATES = ("score", "email_type")
_COUNT = re.compile(r"^(?P<kind>[a-z_]+?)_(?:(?P<days>\d+)d|count)$")


@dataclass(frozen=True)
class EventRule:
    """An activity count's table as an event rule: ``points[k]`` is what the (k+1)-th activity adds."""

    name: str
    kind: str
    within_days: int | None
    points: tuple[int, ...]
    #: the table had to be made non-decreasing (a count can only add points)
    flattened: bool


def run_history_fit(
    settings: FitSettings,
    config: Path | None,
    *,
    against: Path | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> FitResult:
    """Fit on the configured store's labeled leads (see the module docstring); FitInputError on bad input."""
    from leadsync.app import build_app
    from leadsync.config import ConfigError, load_config
    from leadsync.fit_yaml import check_rendered, render
    from leadsync.training_data import training_rows
    from sync.state import StateStore

    now = now or datetime.now(UTC)
    if against is not None:
        raise FitInputError("--against compares on a CSV's rows; with --from-history use `leadsync evaluate --rules`")
    try:
        app = build_app(load_config(config))
    except ConfigError as exc:
        raise FitInputError(f"--from-history needs the CRM config whose store holds the outcomes: {exc}") from None
    store = StateStore.open(app.config.state.url)
    try:
        rows = training_rows(
            store, app.mapping, app.rules, app.config.outcomes, now=now, exclude=app.config.model.exclude
        )
        where = store.where
    finally:
        store.close()
    keep = np.arange(len(rows.lead_ids))
    if until is not None:
        anchors = rows.anchor_seconds()
        keep = np.flatnonzero(anchors < until.timestamp())
    data, specs = _labeled_rows(rows, keep, app.mapping, where)
    check_counts(data)
    settings = FitSettings(
        label=settings.label or "outcome",
        max_rules=settings.max_rules,
        exclude=column_list(settings.exclude, data.header),
        allow_leaky=column_list(settings.allow_leaky, data.header),
        objective=settings.objective,
        seed=settings.seed,
        folds=settings.folds,
    )
    mapping = LeadMapping(crm="csv", object_type="contact", fields=specs, objects={})
    candidates, excluded = choose_candidates(data, mapping, settings)
    candidates = [_named(c) for c in candidates]
    features, bad = features_of(
        data, LeadMapping("csv", "contact", {c.attribute: c.spec for c in candidates}, {}), candidates
    )
    y = data.outcomes
    options = FitOptions(
        max_rules=settings.max_rules, folds=settings.folds, seed=settings.seed, objective=settings.objective
    )
    kept_c, kept_f, leaky = screen_candidates(
        candidates, features, y, options, settings, excluded, where=where, rows="lead"
    )
    if not kept_f:
        raise FitInputError(f"{where}: no candidate attribute or activity count to fit")
    try:
        scorecard = fit_scorecard(kept_f, y, options=options)
    except FitError as exc:
        raise FitInputError(f"{where}: {exc}") from None
    rec = scorecard.evaluation.recommendation
    threshold = int(rec.threshold) if rec.threshold is not None else 50
    hot = min(100, round(threshold + 2 * scorecard.points_to_double_odds))
    events = {
        t.name: event_rule(t) for t in scorecard.tables if _COUNT.match(t.name) and t.name not in app.mapping.fields
    }
    result = FitResult(
        settings=settings,
        data=data,
        config_source=app.config.source,
        mapping=app.mapping,
        csv_section={},
        candidates=kept_c,
        excluded=excluded,
        leaky=leaky,
        scorecard=scorecard,
        locked={},
        settings_kept={},
        threshold=threshold,
        grades={"hot": max(hot, threshold), "warm": threshold},
        bad_values=bad,
        history={
            "until": until.isoformat() if until is not None else None,
            "events": events,
            "left_out": rows.excluded,
        },
    )
    result.text = render(result)
    check_rendered(result.text, app.mapping)
    return result


def _labeled_rows(
    rows: Any, keep: np.ndarray, mapping: LeadMapping, where: str
) -> tuple[LabeledRows, dict[str, FieldSpec]]:
    """The training rows as the CSV fit reads a file: text cells (blank = missing), one column per feature,
    with a spec per mapped attribute (its own type) or activity count (a number)."""
    table = rows.table
    names = [n for n in table.columns if n not in _NOT_CANDIDATES and not n.startswith("rule:")]
    specs: dict[str, FieldSpec] = {}
    for name in names:
        spec = mapping.fields.get(name)
        if spec is not None:
            specs[name] = FieldSpec(property=name, type=spec.type)
        elif _COUNT.match(name):
            specs[name] = FieldSpec(property=name, type="int")
    header = [n for n in names if n in specs]
    text_rows = []
    for i in keep.tolist():
        text_rows.append({n: _cell(table.columns[n][i]) for n in header})
    outcomes = rows.outcomes[keep]
    digest = hashlib.sha256()
    for i in keep.tolist():
        digest.update(f"{rows.lead_ids[i]}\t{int(rows.outcomes[i])}\t{rows.labels.moments[i].isoformat()}\n".encode())
    data = LabeledRows(
        source=Path(where),
        sha256=digest.hexdigest(),
        header=header,
        rows=text_rows,
        lines=[i + 1 for i in keep.tolist()],
        outcomes=outcomes,
        read=len(rows.lead_ids),
        unlabeled=rows.labels.pending + len(rows.lead_ids) - len(keep),
    )
    return data, specs


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _named(candidate: Candidate) -> Candidate:
    """Candidates keep the store's own attribute names (the column is the attribute)."""
    return Candidate(candidate.column, candidate.column, candidate.spec, added=False)


def event_rule(table: Table) -> EventRule:
    """The count table as escalating event points (see the module docstring)."""
    match = _COUNT.match(table.name)
    assert match is not None
    days = match.group("days")
    edges = [math.ceil(e) for e in table.bins.edges if e > 0]
    value_points = list(table.points[: table.bins.value_bins])
    # the bin of each count 0..last edge, then the table's points made non-decreasing from count 0
    last = edges[-1] if edges else 0
    counts = np.arange(last + 1, dtype=np.float64)
    bins = np.searchsorted(np.asarray(table.bins.edges, dtype=np.float64), counts, side="right")
    raw = np.asarray([value_points[b] for b in bins], dtype=np.int64)
    monotone = np.maximum.accumulate(raw) - raw[0]
    steps = (*(int(v) for v in np.diff(monotone)), 0)
    flattened = bool((np.maximum.accumulate(raw) != raw).any())
    return EventRule(table.name, match.group("kind"), int(days) if days else None, steps, flattened)


__all__ = ["WINDOWS", "EventRule", "event_rule", "run_history_fit"]
