"""Labeled, point-in-time feature rows from the state store: what the predictive model (and ``rules fit
--from-history``) learn from.

The honesty rule of ``leadsync evaluate`` applies to features as it does to scores: each lead is labelled and
judged at exactly the moment :mod:`leadsync.evaluate_store` defines (converters at ``converted_at -
lead_time_days``, the others at ``anchor + window_days - lead_time_days``; pending leads left out), and its
features are taken **before** that moment: activities at or after it are dropped, the rules are scored as of
it (decay from it, lifecycle stage and lead status cleared), and attributes that leak by construction are
never features (lifecycle stage, lead status, owner, dates, whatever the outcome definition reads). What
still cannot be proven point-in-time: the cached attribute values are the CRM's latest (a title changed
during the deal, the counters the CRM keeps such as page views); the model card says so.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from leadsync.config import OutcomesConfig
from leadsync.evaluate_store import StoreLabels, label_from_rows
from mappings import LeadMapping
from scoring import CompiledRules, Lead
from scoring.predictive import FeatureTable, LeadFeatures
from sync.scoring_step import activities_from_dicts
from sync.state import StateStore

#: mapped attributes that record the outcome itself (the CRM's conversion dates), never features
OUTCOME_ATTRIBUTES: Final = frozenset({"customer_at", "converted_at", "closed_won", "is_converted"})
_OUTCOME_PROPERTY_MARKS: Final = ("hs_lifecyclestage_", "isconverted", "converteddate", "convertedopportunity")
CHUNK: Final = 2_000


@dataclass
class TrainingRows:
    """One row per judged lead: its label, the moment it is judged at and its features as of that moment."""

    labels: StoreLabels
    table: FeatureTable
    #: the configured rules' total as of each moment (the rules' own score, for comparing with a model)
    rules_scores: npt.NDArray[np.float64]
    #: attributes left out because they leak by construction (reported in the model card)
    excluded: list[str] = field(default_factory=list)

    @property
    def outcomes(self) -> npt.NDArray[np.bool_]:
        return np.array(self.labels.outcomes, dtype=np.bool_)

    @property
    def lead_ids(self) -> list[str]:
        return self.labels.lead_ids

    def anchor_seconds(self) -> npt.NDArray[np.float64]:
        """Each lead's anchor (creation, or first score) as epoch seconds: the time order of the holdout."""
        return np.array([a.timestamp() for a in self.labels.anchors], dtype=np.float64)

    def window(self) -> dict[str, Any]:
        """The data window for the model card."""
        moments = self.labels.moments
        if not moments:
            return {"from": None, "to": None}
        return {"from": min(self.labels.anchors).isoformat(), "to": max(moments).isoformat()}


def leaky_attributes(mapping: LeadMapping, extra: Collection[str] = ()) -> set[str]:
    """Mapped attributes never used as features: outcome traces (by name or CRM property) and ``extra``."""
    out = set(OUTCOME_ATTRIBUTES) | set(extra)
    for name, spec in mapping.fields.items():
        prop = (spec.property or "").lower()
        if any(mark in prop for mark in _OUTCOME_PROPERTY_MARKS):
            out.add(name)
    return out


def training_rows(
    store: StateStore,
    mapping: LeadMapping,
    rules: CompiledRules,
    settings: OutcomesConfig,
    *,
    now: datetime | None = None,
    exclude: Collection[str] = (),
) -> TrainingRows:
    """Label every cached lead as ``leadsync evaluate`` does and build its features as of its moment.

    Args:
        store: the state store (outcomes, lead cache with activities, score history for ``first_scored``).
        mapping: the CRM mapping that turns cached properties into leads.
        rules: the rules whose hits (as of each moment) are features, and whose total is ``rules_scores``.
        settings: the ``outcomes:`` section (window, anchor, lead time).
        now: pending windows are judged against this (default: now).
        exclude: attribute names never used as features (``model.exclude``).

    Returns:
        :class:`TrainingRows`: every judged lead (history rows are not needed: features are rebuilt from the
        cache as of the moment), with ``labels`` counting the pending and the left-out leads.
    """
    now = now or datetime.now(UTC)
    labels = label_from_rows(store, mapping, settings, now=now, backfill=True)
    labels.backfilled = []  # no score is taken from the history here: nothing was backfilled
    excluded = leaky_attributes(mapping, exclude)
    features = LeadFeatures(rules, exclude=excluded)
    rows: list[dict[str, Any]] = []
    totals: list[float] = []
    ids = labels.lead_ids
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        cached = store.get_leads(part)
        for k, lead_id in enumerate(part, start=start):
            moment = labels.moments[k]
            hit = cached.get(lead_id)
            if hit is None:
                lead, activities = Lead(lead_id), []
            else:
                lead = mapping.to_lead(lead_id, hit.properties, object_type=hit.object_type)
                activities = activities_from_dicts(lead_id, hit.activities)
            row = features.row(lead, activities, moment)
            rows.append(row)
            totals.append(float(row["score"]))
    return TrainingRows(labels, FeatureTable.from_rows(rows), np.array(totals), sorted(excluded))
