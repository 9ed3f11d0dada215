"""The canonical model every CRM is mapped onto.

It lives in ``scoring`` because scoring is the leaf of the dependency graph: connectors produce raw CRM
records, ``mappings`` turn them into these types, and scoring consumes them without importing anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

TObjectType = Literal["contact", "lead"]
TGrade = Literal["hot", "warm", "cold"]
TPart = Literal["fit", "engagement", "penalties"]

#: activity kinds known to the default rules; connectors may emit others (rules filter by name)
ACTIVITY_KINDS = (
    "page_view",
    "visit",
    "form_submission",
    "email_open",
    "email_click",
    "email_reply",
    "email_sent",
    "meeting",
    "call",
    "note",
    "task",
    "chat",
    "download",
    "campaign_response",
    "unsubscribe",
)

#: counters the CRMs keep on the record (mapped by the default HubSpot and CSV mappings): counter rules may
#: use them whatever the mapping, alongside any attribute the mapping adds
COUNTERS = ("page_views", "visits", "form_submissions", "email_opens", "email_clicks", "email_replies")


@dataclass(frozen=True, slots=True)
class Lead:
    """One person in the CRM (a HubSpot contact, a Salesforce lead or contact).

    ``attributes`` holds every other mapped attribute, including the counters the CRM keeps on the record
    (``page_views``, ``visits``, ``form_submissions``, ``email_opens``, ``email_clicks``, ...), so that
    rules can use them when the CRM only keeps counts.
    """

    id: str
    object_type: TObjectType = "contact"
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    job_title: str | None = None
    employees: int | None = None
    annual_revenue: float | None = None
    industry: str | None = None
    country: str | None = None
    lifecycle_stage: str | None = None
    lead_status: str | None = None
    opted_out: bool = False
    bounced: bool = False
    owner: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """Look an attribute up by canonical name, first among the fields, then in ``attributes``."""
        if name in _FIELD_NAMES:
            value = getattr(self, name)
            return default if value is None else value
        return self.attributes.get(name, default)


_FIELD_NAMES = frozenset(Lead.__dataclass_fields__) - {"attributes"}


@dataclass(frozen=True, slots=True)
class Activity:
    """One engagement event of a lead (a page view, an email click, a meeting...)."""

    lead_id: str
    kind: str
    timestamp: datetime
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that fired, with its points after per-rule caps and decay.

    A part cap is explained by a synthetic hit named ``"<part> cap"`` whose points are what the cap took
    away (negative for fit and engagement, positive for penalties), so that the points of all hits add up to
    ``Score.raw_total``. ``value`` is what matched (the attribute value, the latest matching activity's url
    or kind, the counter value); ``count`` is how many occurrences / counter units earned the points;
    ``label`` is the short text used in ``Score.reasons``.
    """

    rule: str
    part: TPart
    points: float
    value: str = ""
    count: int = 1
    label: str = ""


@dataclass(frozen=True, slots=True)
class QualificationState:
    """What the previous score said about qualification: needed for hysteresis and ``qualified_at``."""

    qualified: bool = False
    qualified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Score:
    """The result of scoring one lead: total 0..100, its parts, grade, qualification and explanation.

    ``fit`` and ``engagement`` are >= 0 and ``penalties`` <= 0, each after its part cap and rounded;
    ``raw_total`` is the exact sum of the hits' points before rounding and clamping, and ``total`` is
    ``raw_total`` rounded (halves up) and clamped to 0..100. ``points`` is the same raw total under the name
    the CSV output, ``explain`` and the cache use: it keeps apart the leads that all score 0 (or 100).
    """

    lead_id: str
    total: int
    fit: int
    engagement: int
    penalties: int
    grade: TGrade
    qualified: bool
    qualified_at: datetime | None
    hits: tuple[RuleHit, ...]
    rules_version: str
    reasons: str = ""
    likelihood: float | None = None
    priority_tier: str | None = None
    model_version: str | None = None
    raw_total: float = 0.0

    @property
    def points(self) -> float:
        """The unclamped total after part caps (fit + engagement + penalties, each capped), unrounded."""
        return self.raw_total
