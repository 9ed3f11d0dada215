"""The pipeline's scoring step on the columnar path: a page of records (or a chunk of the lead cache) mapped
column by column (``mappings.columns``), scored with ``CompiledRules.score_batch``, and read back as arrays.

``PageScores`` answers what the pass needs per lead (total, grade, qualification, the reasons text, the
values to write) from the arrays; a full ``Score`` (hits with values, for the stored score and the
explanation) is built only for the leads that ask for it, in bulk, by the same ``explain.ScoreBuilder`` as
every other path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from connectors.base import RawRecord
from mappings import LeadMapping
from mappings.columns import LeadColumns, parse_instants
from mappings.mapping import OnBadValue
from scoring import Activity, Column, CompiledRules, Lead, LeadBatch, QualificationState, Score, ScoreColumns
from scoring._values import micros_of_datetime
from scoring.batch import gc_paused
from scoring.model import TGrade
from sync.state import CacheChunk, CachedLead, StoredScore

__all__ = [
    "CachedPage",
    "LeadValues",
    "PageScores",
    "ScoreValues",
    "activities_as_dicts",
    "activities_from_dicts",
    "cache_batch",
    "qualification",
    "records_batch",
    "score_batch",
    "score_cached",
]


@dataclass(frozen=True, slots=True)
class ScoreValues:
    """What ``writeback.desired_properties`` reads of a score, without its hits."""

    lead_id: str
    total: int
    fit: int
    engagement: int
    grade: TGrade
    qualified: bool
    qualified_at: datetime | None
    reasons: str
    rules_version: str
    likelihood: float | None = None
    priority_tier: str | None = None
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class LeadValues:
    """What ``writeback.desired_properties`` reads of a lead."""

    object_type: str
    lifecycle_stage: str | None


def qualification(previous: StoredScore | None) -> QualificationState | None:
    """A stored score's qualification state (hysteresis and ``qualified_at``)."""
    if previous is None:
        return None
    return QualificationState(qualified=previous.qualified, qualified_at=previous.qualified_at)


def activities_as_dicts(activities: Iterable[Activity]) -> list[dict[str, Any]]:
    return [
        {"kind": a.kind, "timestamp": a.timestamp.isoformat(), "attributes": dict(a.attributes)} for a in activities
    ]


def activities_from_dicts(lead_id: str, rows: Iterable[Mapping[str, Any]]) -> list[Activity]:
    return [
        Activity(
            lead_id=lead_id,
            kind=str(r["kind"]),
            timestamp=datetime.fromisoformat(str(r["timestamp"])),
            attributes=dict(r.get("attributes") or {}),
        )
        for r in rows
    ]


def records_batch(
    mapping: LeadMapping,
    records: Sequence[RawRecord],
    activities: Mapping[str, Sequence[Activity]],
    states: Mapping[str, QualificationState | None],
    on_bad_value: OnBadValue | None = None,
) -> LeadBatch:
    """A page of CRM records with their activities and qualification states as one columnar batch."""
    ids = [r.id for r in records]
    kinds, properties = [r.object_type for r in records], [r.properties for r in records]
    source = LeadColumns(mapping, ids, kinds, properties, on_bad_value)
    per_lead = [activities.get(i, ()) for i in ids]
    flat = [a for acts in per_lead for a in acts]
    stored = [states.get(i) for i in ids]
    qualified = np.array([s is not None and s.qualified for s in stored], dtype=np.bool_)
    return LeadBatch.from_columns(
        len(ids),
        source.reported(),
        ids=ids,
        column_source=source,
        activity_lead=np.repeat(np.arange(len(ids), dtype=np.int64), [len(acts) for acts in per_lead]),
        activity_kind=[a.kind for a in flat],
        activity_timestamp=np.array([micros_of_datetime(a.timestamp) for a in flat], dtype=np.int64),
        previous_qualified=qualified,
        previous_qualified_at=[None if s is None else s.qualified_at for s in stored],
        activity_source=lambda name: Column.of([a.attributes.get(name) for a in flat]),
    )


@dataclass
class CachedPage:
    """One chunk of the lead cache decoded once: its batch and each lead's raw properties."""

    batch: LeadBatch
    properties: list[dict[str, Any]]
    #: each lead's cached activities as stored (dicts)
    activities: list[list[dict[str, Any]]]
    #: each lead's stored qualification state
    states: dict[str, QualificationState | None]

    def activity_objects(self) -> dict[str, list[Activity]]:
        """The activities as objects (for the predictive model and the challenger, which read objects)."""
        ids = self.batch.ids
        return {ids[i]: activities_from_dicts(ids[i], rows) for i, rows in enumerate(self.activities)}


def cache_batch(mapping: LeadMapping, chunk: CacheChunk, on_bad_value: OnBadValue | None = None) -> CachedPage:
    """A chunk of the lead cache as one columnar batch: the JSON of the whole chunk decoded in one call,
    activity timestamps parsed in bulk, activity attributes decoded only if a rule reads them."""
    with gc_paused():  # millions of acyclic objects: the collector's passes would dominate
        return _cache_batch(mapping, chunk, on_bad_value)


def _cache_batch(mapping: LeadMapping, chunk: CacheChunk, on_bad_value: OnBadValue | None) -> CachedPage:
    n = len(chunk)
    properties: list[dict[str, Any]] = json.loads("[" + ",".join(chunk.properties) + "]") if n else []
    activities: list[list[dict[str, Any]]] = json.loads("[" + ",".join(chunk.activities) + "]") if n else []
    properties = [p or {} for p in properties]
    activities = [a or [] for a in activities]
    source = LeadColumns(mapping, chunk.ids, chunk.object_types, properties, on_bad_value)
    flat = [a for acts in activities for a in acts]
    stamps = [str(a["timestamp"]) for a in flat]
    micros, ok = parse_instants(stamps)
    if not ok.all():
        first = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"Invalid isoformat string: {stamps[first]!r}")
    batch = LeadBatch.from_columns(
        n,
        source.reported(),
        ids=chunk.ids,
        activity_lead=np.repeat(np.arange(n, dtype=np.int64), [len(acts) for acts in activities]),
        activity_kind=[str(a["kind"]) for a in flat],
        activity_timestamp=micros,
        previous_qualified=np.array(chunk.qualified, dtype=np.bool_),
        previous_qualified_at=[at if q else None for q, at in zip(chunk.qualified, chunk.qualified_at, strict=True)],
        column_source=source,
        activity_source=lambda name: Column.of([(a.get("attributes") or {}).get(name) for a in flat]),
    )
    states: dict[str, QualificationState | None] = {
        i: QualificationState(q, at) for i, q, at in zip(chunk.ids, chunk.qualified, chunk.qualified_at, strict=True)
    }
    return CachedPage(batch, properties, activities, states)


class PageScores:
    """A batch's scores as arrays and lists, with full ``Score`` objects built only on demand."""

    def __init__(self, columns: ScoreColumns, batch: LeadBatch) -> None:
        self.columns = columns
        self.ids = list(batch.ids)
        self.total: list[int] = columns.total.tolist()
        self.fit: list[int] = columns.fit.tolist()
        self.engagement: list[int] = columns.engagement.tolist()
        self.grade: list[TGrade] = columns.grades
        self.qualified: list[bool] = columns.qualified.tolist()
        self.qualified_at = columns.qualified_at
        codes, texts = columns.reasons()
        self.reasons = [texts[c] for c in codes.tolist()]
        self.version = columns.compiled.version
        self.object_types: list[str] = batch.lead_column("object_type").objects()
        self.stages: list[Any] = batch.lead_column("lifecycle_stage").objects()
        self.emails: list[Any] = batch.lead_column("email").objects()

    def __len__(self) -> int:
        return len(self.total)

    def values(self, i: int) -> ScoreValues:
        return ScoreValues(
            self.ids[i],
            self.total[i],
            self.fit[i],
            self.engagement[i],
            self.grade[i],
            self.qualified[i],
            self.qualified_at[i],
            self.reasons[i],
            self.version,
        )

    def lead(self, i: int) -> LeadValues:
        return LeadValues(self.object_types[i], self.stages[i])

    def scores(self, rows: Sequence[int] | None = None) -> list[Score]:
        """The full ``Score`` of some leads (all by default), built in bulk."""
        index = np.arange(len(self), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        return self.columns._scores(index)


def score_batch(rules: CompiledRules, batch: LeadBatch, now: datetime) -> PageScores:
    """Score a batch on the columnar path."""
    return PageScores(rules.score_batch(batch, now), batch)


def score_cached(
    rules: CompiledRules,
    mapping: LeadMapping,
    cached: Sequence[CachedLead],
    previous: Mapping[str, StoredScore],
    now: datetime,
) -> list[tuple[Lead, Score]]:
    """Score a few leads from the local cache (``explain``): the same batch path as every pass."""
    leads = [mapping.to_lead(c.id, c.properties, object_type=c.object_type) for c in cached]
    records = [RawRecord(c.id, c.object_type, c.properties, c.updated_at) for c in cached]
    activities = {c.id: activities_from_dicts(c.id, c.activities) for c in cached}
    states = {c.id: qualification(previous.get(c.id)) for c in cached}
    scores = score_batch(rules, records_batch(mapping, records, activities, states), now).scores()
    return list(zip(leads, scores, strict=True))
