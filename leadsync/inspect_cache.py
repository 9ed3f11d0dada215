"""``leadsync explain`` and ``leadsync preview``: answers from the local lead cache, no CRM call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mappings import LeadMapping
from scoring import CompiledRules, Lead, Score
from sync.pipeline import score_cached
from sync.state import StateStore


@dataclass
class Explanation:
    lead: Lead
    score: Score
    stored_total: int | None
    stored_rules_version: str | None

    def as_dict(self) -> dict[str, Any]:
        s = self.score
        return {
            "id": self.lead.id,
            "email": self.lead.email,
            "score": s.total,
            "points": s.points,  # the unclamped total after part caps (score is it rounded, within 0..100)
            "fit": s.fit,
            "engagement": s.engagement,
            "penalties": s.penalties,
            "grade": s.grade,
            "qualified": s.qualified,
            "qualified_at": s.qualified_at.isoformat() if s.qualified_at else None,
            "rules_version": s.rules_version,
            "reasons": s.reasons,
            "hits": [
                {
                    "rule": h.rule,
                    "part": h.part,
                    "points": h.points,
                    "value": h.value,
                    "count": h.count,
                    "label": h.label,
                }
                for h in s.hits
            ],
            "last_synced_score": self.stored_total,
            "last_synced_rules_version": self.stored_rules_version,
        }


def explain(
    store: StateStore, rules: CompiledRules, mapping: LeadMapping, id_or_email: str, now: datetime
) -> Explanation | None:
    cached = store.find_lead(id_or_email)
    if cached is None:
        return None
    previous = store.get_scores([cached.id])
    ((lead, score),) = score_cached(rules, mapping, [cached], previous, now)
    stored = previous.get(cached.id)
    return Explanation(lead, score, stored.total if stored else None, stored.rules_version if stored else None)


@dataclass
class Change:
    id: str
    email: str | None
    old_total: int
    new_total: int
    old_grade: str
    new_grade: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Impact:
    """What a rules change would do, lead by lead, before anything is written."""

    current_version: str
    new_version: str
    leads: int = 0
    grade_changes: int = 0
    score_changes: int = 0
    newly_qualified: int = 0
    newly_unqualified: int = 0
    mean_delta: float = 0.0
    grade_matrix: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[Change]] = field(default_factory=lambda: {"qualify": [], "unqualify": [], "regrade": []})

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "examples"}
        data["examples"] = {k: [c.as_dict() for c in v] for k, v in self.examples.items()}
        return data


def _chunks(store: StateStore) -> Iterator[list[Any]]:
    yield from store.iter_leads(chunk_size=1000)


def preview(
    store: StateStore,
    current: CompiledRules,
    proposed: CompiledRules,
    mapping: LeadMapping,
    now: datetime,
    *,
    examples: int = 5,
) -> Impact:
    """Score every cached lead with both rule sets (same "now", same qualification history) and compare."""
    impact = Impact(current_version=current.version, new_version=proposed.version)
    delta_sum = 0
    for chunk in _chunks(store):
        previous = store.get_scores([c.id for c in chunk])
        before = score_cached(current, mapping, chunk, previous, now)
        after = score_cached(proposed, mapping, chunk, previous, now)
        for (lead, old), (_, new) in zip(before, after, strict=True):
            impact.leads += 1
            delta_sum += new.total - old.total
            impact.score_changes += new.total != old.total
            row = impact.grade_matrix.setdefault(old.grade, {})
            row[new.grade] = row.get(new.grade, 0) + 1
            change = Change(lead.id, lead.email, old.total, new.total, old.grade, new.grade)
            if new.qualified and not old.qualified:
                impact.newly_qualified += 1
                _keep(impact.examples["qualify"], change, examples)
            elif old.qualified and not new.qualified:
                impact.newly_unqualified += 1
                _keep(impact.examples["unqualify"], change, examples)
            if new.grade != old.grade:
                impact.grade_changes += 1
                _keep(impact.examples["regrade"], change, examples)
    impact.mean_delta = round(delta_sum / impact.leads, 2) if impact.leads else 0.0
    return impact


def _keep(bucket: list[Change], change: Change, limit: int) -> None:
    """Keep the ``limit`` most striking examples (largest score moves)."""
    bucket.append(change)
    bucket.sort(key=lambda c: abs(c.new_total - c.old_total), reverse=True)
    del bucket[limit:]
