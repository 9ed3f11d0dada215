"""Helpers for the scoring tests: every example is scored on BOTH paths (row and columnar), which must agree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from scoring import (
    Activity,
    CompiledRules,
    Lead,
    LeadBatch,
    QualificationState,
    RuleHit,
    Score,
    compile_rules,
    load_rules,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def ago(days: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)


def lead(**fields: Any) -> Lead:
    fields.setdefault("id", "L1")
    attributes = fields.pop("attributes", {})
    extra = {k: fields.pop(k) for k in list(fields) if k not in Lead.__dataclass_fields__}
    return Lead(**fields, attributes={**attributes, **extra})


def act(kind: str, days: float = 0.0, now: datetime = NOW, **attributes: Any) -> Activity:
    return Activity("L1", kind, now - timedelta(days=days), attributes)


def rules_from(text_or_data: str | Mapping[str, Any], *, base: str = "none") -> CompiledRules:
    data = yaml.safe_load(text_or_data) if isinstance(text_or_data, str) else dict(text_or_data)
    data = {"base": base, **(data or {})}
    return compile_rules(load_rules(data))


def score(
    engine: CompiledRules,
    the_lead: Lead,
    activities: Sequence[Activity] = (),
    previous: QualificationState | None = None,
    now: datetime = NOW,
) -> Score:
    """Score on the row path and on the columnar path; they must give the same Score."""
    row = engine.score(the_lead, activities, now, previous)
    batch = engine.score_batch(LeadBatch.from_items([(the_lead, activities, previous)]), now)
    columnar = batch.score(0)
    assert columnar == row, f"paths disagree:\nrow      {row}\ncolumnar {columnar}"
    assert int(batch.total[0]) == row.total
    assert bool(batch.qualified[0]) == row.qualified
    assert batch.grades[0] == row.grade
    return row


def hit(result: Score, rule: str) -> RuleHit | None:
    return next((h for h in result.hits if h.rule == rule), None)


def points(result: Score, rule: str) -> float:
    found = hit(result, rule)
    return 0.0 if found is None else found.points
