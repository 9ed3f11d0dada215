"""A lead's feature row as of a moment: its attributes, activity aggregates before the moment, the rule hits.

One function for training (as of each lead's outcome moment) and for scoring (as of now), so that a model
sees the same features in both. What is never a feature, because it leaks by construction:

- lifecycle stage and lead status (they say "customer" once a lead converted) and the owner (assigned when
  sales works a lead); they are also cleared before the rules are scored for the rule-hit features;
- dates (a date after the moment is the outcome's own trace; the moment orders the holdout instead);
- activities at or after the moment (the sales cycle's meetings and replies around the sale).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from scoring.emails import COMPANY, DISPOSABLE, FREE, INVALID, ROLE
from scoring.engine import CompiledRules
from scoring.model import ACTIVITY_KINDS, Activity, Lead

#: canonical attributes that are never features (see the module docstring)
LEAKY_BY_CONSTRUCTION: Final = ("lifecycle_stage", "lead_status", "owner", "created_at", "updated_at")
#: canonical fields used as features (the rest of the lead's mapped attributes follow)
CANONICAL: Final = (
    "job_title",
    "employees",
    "annual_revenue",
    "industry",
    "country",
    "company",
    "opted_out",
    "bounced",
)
#: activity counts over these many days before the moment, besides the count of all before it
WINDOWS: Final = (7, 30, 90)
#: names of the likelihood attributes the scoring adds for rules (never features of the model itself)
MODEL_ATTRIBUTES: Final = ("likelihood", "priority")


def _email_type(flags: int) -> str | None:
    for bit, name in ((INVALID, "invalid"), (DISPOSABLE, "disposable"), (ROLE, "role"), (FREE, "free")):
        if flags & bit:
            return name
    return "company" if flags & COMPANY else None


class LeadFeatures:
    """Builds feature rows with one compiled rule set (its hits are features too)."""

    def __init__(self, rules: CompiledRules, exclude: Collection[str] = ()) -> None:
        self.rules = rules
        self.exclude = frozenset(exclude) | set(LEAKY_BY_CONSTRUCTION) | set(MODEL_ATTRIBUTES)
        self._checker = rules._env.checker
        self._rule_names = list(rules.rule_names)

    def row(self, lead: Lead, activities: Sequence[Activity], moment: datetime) -> dict[str, Any]:
        """The features of ``lead`` as of ``moment`` (activities from ``moment`` on are ignored)."""
        lead = dataclasses.replace(lead, lifecycle_stage=None, lead_status=None)
        before = [a for a in activities if _aware(a.timestamp) < moment]
        score = self.rules.score(lead, before, moment)
        return self._assemble(lead, before, moment, score.total, score.hits)

    def rows(self, items: Iterable[tuple[Lead, Sequence[Activity]]], now: datetime) -> list[dict[str, Any]]:
        """Rows of many leads as of one moment (the sync page): the rules in bulk."""
        cleared = [
            (
                dataclasses.replace(lead, lifecycle_stage=None, lead_status=None),
                [a for a in acts if _aware(a.timestamp) < now],
            )
            for lead, acts in items
        ]
        scores = self.rules.score_many(((lead, acts, None) for lead, acts in cleared), now)
        return [
            self._assemble(lead, acts, now, s.total, s.hits) for (lead, acts), s in zip(cleared, scores, strict=True)
        ]

    def _assemble(
        self, lead: Lead, before: Sequence[Activity], moment: datetime, total: int, hits: Iterable[Any]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {name: lead.get(name) for name in CANONICAL if name not in self.exclude}
        out["email_type"] = _email_type(self._checker.flags(lead.email)) if lead.email else None
        for name, value in lead.attributes.items():
            if name in self.exclude or name in out or isinstance(value, datetime | date | list | dict | tuple):
                continue
            out[name] = value
        counts = {kind: [0] * (len(WINDOWS) + 1) for kind in ACTIVITY_KINDS}
        edges = [moment - timedelta(days=d) for d in WINDOWS]
        for a in before:
            cell = counts.setdefault(a.kind, [0] * (len(WINDOWS) + 1))
            cell[0] += 1
            at = _aware(a.timestamp)
            for k, edge in enumerate(edges, start=1):
                if at >= edge:
                    cell[k] += 1
        for kind, cell in counts.items():
            out[f"{kind}_count"] = cell[0]
            for days, n in zip(WINDOWS, cell[1:], strict=True):
                out[f"{kind}_{days}d"] = n
        out["score"] = total
        for name in self._rule_names:
            out[f"rule:{name}"] = 0.0
        for hit in hits:
            if hit.rule in self._rule_names:
                out[f"rule:{hit.rule}"] += hit.points
        return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
