"""What leadsync writes to the CRM for a score, and the diff that decides whether to write at all."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from connectors.base import LIFECYCLE_STAGES, PropertySpec
from scoring import Lead, Score
from sync.scoring_step import LeadValues, ScoreValues

GRADES = ("hot", "warm", "cold")
PRIORITIES = ("very_high", "high", "medium", "low")


@dataclass(frozen=True)
class WritebackSettings:
    """Names and policies of the writeback (built from the config by the application shell)."""

    prefix: str = "leadsync_"
    #: CRM property holding the lifecycle stage (None: never touch it)
    stage_property: str | None = "lifecyclestage"
    #: stage set on qualification, only ever forward
    stage_on_qualify: str | None = "marketingqualifiedlead"
    stage_order: Sequence[str] = LIFECYCLE_STAGES

    #: "prefix": ``leadsync_score`` (HubSpot); "salesforce": ``Leadsync_Score__c`` (custom field API names)
    style: Literal["prefix", "salesforce"] = "prefix"
    #: object types the stage may be set on (None: all); Salesforce: only leads have a Status
    stage_objects: frozenset[str] | None = None
    #: a predictive model is active: likelihood, priority, model version and likelihood reasons are written too
    model_properties: bool = False

    def name(self, suffix: str) -> str:
        found = self._names.get(suffix)
        if found is None:
            found = self._names[suffix] = self._name(suffix)
        return found

    @functools.cached_property
    def _names(self) -> dict[str, str]:
        """Property names by suffix, built once per settings object (``name`` is called per lead)."""
        return {}

    def _name(self, suffix: str) -> str:
        if self.style == "salesforce":
            base = self.prefix.strip("_") or "leadsync"
            words = [base, *suffix.split("_")]
            return "_".join(w[:1].upper() + w[1:] for w in words) + "__c"
        return f"{self.prefix}{suffix}"

    def property_specs(self) -> list[PropertySpec]:
        """The custom properties leadsync needs in the CRM."""
        return [
            PropertySpec(
                self.name("score"),
                "leadsync score",
                "number",
                "Lead score 0..100 (fit + engagement + penalties, penalties <= 0)",
            ),
            PropertySpec(self.name("fit"), "leadsync fit", "number", "Fit part of the score"),
            PropertySpec(self.name("engagement"), "leadsync engagement", "number", "Engagement part of the score"),
            PropertySpec(self.name("grade"), "leadsync grade", "enumeration", "hot / warm / cold", GRADES),
            PropertySpec(self.name("reasons"), "leadsync reasons", "string", "Top rule hits behind the score"),
            PropertySpec(
                self.name("qualified_at"), "leadsync qualified at", "datetime", "When the lead last became an MQL"
            ),
            PropertySpec(
                self.name("rules_version"), "leadsync rules version", "string", "Version of the scoring rules"
            ),
            *(self.model_specs() if self.model_properties else []),
        ]

    def model_specs(self) -> list[PropertySpec]:
        """The predictive model's properties (created once a model is active)."""
        return [
            PropertySpec(
                self.name("likelihood"), "leadsync likelihood", "number", "Calibrated likelihood to close, 0..100"
            ),
            PropertySpec(
                self.name("priority"),
                "leadsync priority",
                "enumeration",
                "By the training scores' quartiles",
                PRIORITIES,
            ),
            PropertySpec(self.name("model_version"), "leadsync model version", "string", "Model behind the likelihood"),
            PropertySpec(
                self.name("likelihood_reasons"),
                "leadsync likelihood reasons",
                "string",
                "Top factors of the likelihood",
            ),
        ]

    def read_properties(self) -> list[str]:
        """Written properties to read back, so a fresh state store still diffs against the CRM."""
        return [spec.name for spec in self.property_specs()]

    def stage_moves_forward(self, current: str | None) -> bool:
        """True when setting ``stage_on_qualify`` moves ``current`` forward (never backwards)."""
        if not self.stage_property or not self.stage_on_qualify:
            return False
        if not current:
            return True
        order = list(self.stage_order)
        if current not in order:
            return False  # a custom or "other" stage: leave it to the humans
        return order.index(current) < order.index(self.stage_on_qualify)


def format_time(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds, as HubSpot returns datetimes."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def desired_properties(
    score: Score | ScoreValues,
    lead: Lead | LeadValues,
    settings: WritebackSettings,
    likelihood_reasons: str | None = None,
) -> dict[str, str]:
    """The property values a score should leave on the CRM record (integers and short text only); with a
    likelihood (an active model), its integer percent, priority tier, model version and reasons too."""
    props = {
        settings.name("score"): str(score.total),
        settings.name("fit"): str(score.fit),
        settings.name("engagement"): str(score.engagement),
        settings.name("grade"): score.grade,
        settings.name("reasons"): score.reasons,
        settings.name("qualified_at"): format_time(score.qualified_at) if score.qualified_at else "",
        settings.name("rules_version"): score.rules_version,
    }
    if score.likelihood is not None:
        props[settings.name("likelihood")] = str(round(score.likelihood * 100))
        props[settings.name("priority")] = score.priority_tier or ""
        props[settings.name("model_version")] = score.model_version or ""
        props[settings.name("likelihood_reasons")] = likelihood_reasons or ""
    stage_allowed = settings.stage_objects is None or lead.object_type in settings.stage_objects
    moves = stage_allowed and settings.stage_moves_forward(lead.lifecycle_stage)
    if score.qualified and settings.stage_property and moves:
        props[settings.stage_property] = str(settings.stage_on_qualify)
    return props


def _same(a: str | None, b: str | None) -> bool:
    return (a or "") == (b or "")


def changed_properties(desired: Mapping[str, str], baseline: Mapping[str, str | None]) -> dict[str, str]:
    """Only the properties whose value differs from what the CRM holds (empty: send nothing)."""
    return {k: v for k, v in desired.items() if not _same(v, baseline.get(k))}
