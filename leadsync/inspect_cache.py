"""``leadsync explain`` and ``leadsync preview``: answers from the local lead cache, no CRM call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from mappings import LeadMapping
from scoring import CompiledRules, Lead, Score
from sync.scoring_step import cache_batch, score_cached
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


#: cached leads read per query by ``preview`` (one keyset page each, decoded once for both rule sets)
PREVIEW_CHUNK = 5_000
_GRADE_NAMES = ("cold", "warm", "hot")


def preview(
    store: StateStore,
    current: CompiledRules,
    proposed: CompiledRules,
    mapping: LeadMapping,
    now: datetime,
    *,
    examples: int = 5,
) -> Impact:
    """Score every cached lead with both rule sets (same "now", same qualification history) and compare.

    Chunk by chunk on the columnar path: totals, grades and qualification are compared as arrays, and only
    the examples kept are looked at lead by lead (no ``Score`` object is built)."""
    impact = Impact(current_version=current.version, new_version=proposed.version)
    delta_sum = 0
    for chunk in store.iter_lead_chunks(chunk_size=PREVIEW_CHUNK):
        batch = cache_batch(mapping, chunk).batch
        old, new = current.score_batch(batch, now), proposed.score_batch(batch, now)
        delta = new.total - old.total
        impact.leads += batch.n
        emails = batch.lead_column("email")
        delta_sum += int(delta.sum())
        impact.score_changes += int((delta != 0).sum())
        pairs = old.grade_codes.astype(np.int64) * 3 + new.grade_codes
        codes, first = np.unique(pairs, return_index=True)
        counts = np.bincount(pairs, minlength=9)
        for code in codes[np.argsort(first, kind="stable")].tolist():
            row = impact.grade_matrix.setdefault(_GRADE_NAMES[code // 3], {})
            row[_GRADE_NAMES[code % 3]] = row.get(_GRADE_NAMES[code % 3], 0) + int(counts[code])
        qualify = new.qualified & ~old.qualified
        unqualify = old.qualified & ~new.qualified
        regrade = old.grade_codes != new.grade_codes
        impact.newly_qualified += int(qualify.sum())
        impact.newly_unqualified += int(unqualify.sum())
        impact.grade_changes += int(regrade.sum())
        for kind, mask in (("qualify", qualify), ("unqualify", unqualify), ("regrade", regrade)):
            found = np.flatnonzero(mask)
            best = found[np.argsort(-np.abs(delta[found]), kind="stable")[:examples]]
            for i in best.tolist():
                change = Change(
                    batch.ids[i],
                    emails.value_at(i),
                    int(old.total[i]),
                    int(new.total[i]),
                    _GRADE_NAMES[old.grade_codes[i]],
                    _GRADE_NAMES[new.grade_codes[i]],
                )
                _keep(impact.examples[kind], change, examples)
    impact.mean_delta = round(delta_sum / impact.leads, 2) if impact.leads else 0.0
    return impact


def _keep(bucket: list[Change], change: Change, limit: int) -> None:
    """Keep the ``limit`` most striking examples (largest score moves)."""
    bucket.append(change)
    bucket.sort(key=lambda c: abs(c.new_total - c.old_total), reverse=True)
    del bucket[limit:]
