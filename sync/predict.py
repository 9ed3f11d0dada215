"""Scoring with the active predictive model: likelihood, priority and reasons on each lead's ``Score``.

The model is read from the state store once per pass (:meth:`ModelScorer.from_store`); until one is trained
and active, or when its file cannot be read, scoring is the rules' alone and the reason is logged once.
Features are built by :class:`scoring.predictive.LeadFeatures` exactly as for training, as of ``now``.
Rules may use the likelihood (``when: {likelihood: {gte: 60}}``): when they do, the page is scored a second
time with ``likelihood`` and ``priority`` among the lead's attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from mappings import LeadMapping
from scoring import Activity, CompiledRules, Lead, QualificationState, Score
from scoring.predictive import FeatureTable, LeadFeatures, ModelError, PredictiveModel
from scoring.predictive.leads import MODEL_ATTRIBUTES
from sync.state import StateStore, StoredModel
from sync.state.models import NO_MODEL

log = structlog.get_logger("leadsync.model")


def raw_columns(header: Sequence[str], mapping: LeadMapping, skip: Collection[str]) -> list[str]:
    """CSV columns that are features as they are: neither mapped to an attribute nor skipped."""
    mapped = {spec.property for spec in mapping.fields.values()}
    return [c for c in header if c and c not in mapped and c not in skip and c != "id"]


def csv_feature_row(
    row: Mapping[str, Any],
    lead: Lead,
    features: LeadFeatures,
    as_of: datetime,
    extra: Sequence[str],
    nulls: Collection[str] = (),
) -> dict[str, Any]:
    """A CSV row's features: the mapped lead's (as for a cached lead) plus the unmapped columns as read.

    ``nulls`` (the config's ``csv.null_values`` and the defaults) read as missing in the unmapped columns too,
    so that training and ``score --input`` see a form's ``Select`` placeholder the same way.
    """
    out = features.row(lead, [], as_of)
    for column in extra:
        value = row.get(column)
        if isinstance(value, str) and value and value.strip() in nulls:
            value = None
        out.setdefault(column, value)
    return out


def csv_possible_features(header: Sequence[str], mapping: LeadMapping, extra: Sequence[str]) -> set[str]:
    """Feature names a CSV can give a value to: its unmapped columns and the attributes mapped from its header
    (activity aggregates never exist for a file; rule hits are judged by whether they fire)."""
    present = set(header)
    out = set(extra) | {name for name, spec in mapping.fields.items() if spec.property in present}
    if "email" in out:
        out.add("email_type")
    return out


def uses_likelihood(rules: CompiledRules) -> bool:
    """Whether any rule condition names ``likelihood`` or ``priority`` (then the model scores before them)."""
    text = rules.rules.model_dump_json()
    return any(f'"{name}"' in text for name in MODEL_ATTRIBUTES)


class ModelScorer:
    """The active model with the feature builder it needs; applies to a page of leads."""

    def __init__(self, model: PredictiveModel, version: str, rules: CompiledRules, exclude: Collection[str] = ()):
        self.model = model
        self.version = version
        self.rules = rules
        self.features = LeadFeatures(rules, exclude=exclude)
        self.second_pass = uses_likelihood(rules)

    @classmethod
    def from_store(cls, store: StateStore, rules: CompiledRules, exclude: Collection[str] = ()) -> ModelScorer | None:
        """The active model, or None (rules alone) with the reason logged."""
        stored = store.active_model()
        if stored is None:
            log.info("model.none", reason=NO_MODEL)
            return None
        return cls.from_stored(stored, rules, exclude)

    @classmethod
    def from_stored(
        cls, stored: StoredModel, rules: CompiledRules, exclude: Collection[str] = ()
    ) -> ModelScorer | None:
        """The model of a stored row, or None (rules alone) when its file cannot be read."""
        try:
            model = PredictiveModel.from_bytes(stored.body, stored.card)
        except ModelError as exc:
            log.warning("model.unusable", version=stored.version, reason=str(exc))
            return None
        return cls(model, stored.version, rules, exclude)

    def predict_rows(self, rows: list[dict[str, Any]]) -> tuple[list[float], list[str], list[str]]:
        """(likelihood 0..1, priority, reasons) of feature rows."""
        table = FeatureTable.from_rows(rows)
        x = self.model.matrix(table)
        p = self.model.probabilities(x)
        return [float(v) for v in p], self.model.priority(p), self.model.reasons(x)

    def apply(
        self,
        leads: Sequence[Lead],
        activities: Mapping[str, Sequence[Activity]],
        scores: Sequence[Score],
        now: datetime,
        previous: Iterable[QualificationState | None] | None = None,
    ) -> tuple[list[Score], list[str]]:
        """The scores with likelihood, priority and model version set, and the reasons text of each lead.

        When the rules use the likelihood, they are scored again with it among the lead's attributes.
        """
        rows = self.features.rows(((lead, activities.get(lead.id, ())) for lead in leads), now)
        likelihood, priority, reasons = self.predict_rows(rows)
        if self.second_pass:
            with_model = [
                dataclasses.replace(lead, attributes={**lead.attributes, "likelihood": round(p * 100), "priority": t})
                for lead, p, t in zip(leads, likelihood, priority, strict=True)
            ]
            states = list(previous) if previous is not None else [None] * len(leads)
            scores = self.rules.score_many(
                ((lead, activities.get(lead.id, ()), state) for lead, state in zip(with_model, states, strict=True)),
                now,
            )
        out = [
            dataclasses.replace(s, likelihood=p, priority_tier=t, model_version=self.version)
            for s, p, t in zip(scores, likelihood, priority, strict=True)
        ]
        return out, reasons
