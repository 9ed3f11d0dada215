"""The one small interface every CRM connector implements.

Connectors speak in raw CRM records (property name -> value as the CRM returns it); ``mappings`` turns them
into canonical leads. Connectors never store state: the sync pipeline passes a ``Window`` in and commits the
watermark itself once a pass has been safely processed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

#: HubSpot's default lifecycle stages in funnel order: the forward-only order leadsync moves a stage along,
#: and the stages the synthetic portals give their people (one list, so that all of them agree)
LIFECYCLE_STAGES: tuple[str, ...] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open modification-time window ``[start, end)``; ``start=None`` reads everything."""

    start: datetime | None
    end: datetime


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One CRM record as the CRM returned it (values are the CRM's strings).

    ``refused`` says why the connector cannot trust the record as sent (an id of another type than the API
    documents), with the CRM's context; the pipeline then refuses it on its own, never scoring or writing it.
    ``origin`` names the call that returned it (for such messages).
    """

    id: str
    object_type: str
    properties: Mapping[str, Any]
    updated_at: datetime | None = None
    refused: str | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class RawActivity:
    """One engagement of a record, already reduced to a kind the canonical model knows."""

    record_id: str
    kind: str
    timestamp: datetime
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RawOutcome:
    """A record's conversion as the CRM shows it: the earliest qualifying evidence and when it happened.

    ``source`` says which evidence: ``lifecycle:<stage>`` (HubSpot's ``hs_lifecyclestage_<stage>_date``),
    ``deal:closedwon`` (an associated deal closed won), ``lead:converted`` (Salesforce ``IsConverted``),
    ``opportunity:won`` (a won Opportunity, through the converted lead or an OpportunityContactRole).
    """

    record_id: str
    converted_at: datetime
    source: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutcomeSpec:
    """What counts as converted (the ``outcomes:`` config section, CRM-neutral)."""

    #: HubSpot: reaching this lifecycle stage counts (None: the stage does not count)
    lifecycle_stage: str | None = "customer"
    #: an associated deal closed won (HubSpot) / a won Opportunity (Salesforce) counts
    closed_won: bool = True
    #: Salesforce: a converted Lead counts even when its Opportunity is not (yet) won
    converted_lead: bool = False


@dataclass(frozen=True, slots=True)
class RecordUpdate:
    """Properties to set on one record."""

    id: str
    object_type: str
    properties: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """A record the CRM refused, with the CRM's own message; ``retriable`` when trying again may work."""

    id: str
    message: str
    retriable: bool = False
    status: int | None = None


@dataclass(slots=True)
class WriteResult:
    """Per-record outcome of a batch write: partial failures travel as data, not as exceptions."""

    succeeded: list[str] = field(default_factory=list)
    failed: list[RecordFailure] = field(default_factory=list)
    #: the record's modification time right after the write, when the CRM says: a later read showing the
    #: same time means nothing changed since leadsync wrote it (so its activities need not be read again)
    modified_at: dict[str, datetime] = field(default_factory=dict)

    def extend(self, other: WriteResult) -> None:
        self.succeeded.extend(other.succeeded)
        self.failed.extend(other.failed)
        self.modified_at.update(other.modified_at)


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """A custom property leadsync writes (created by ``ensure_properties`` when missing)."""

    name: str
    label: str
    type: str  # "number" | "string" | "datetime" | "enumeration"
    description: str = ""
    options: Sequence[str] = ()


@runtime_checkable
class Connector(Protocol):
    """What the sync pipeline needs from a CRM."""

    #: "hubspot" or "salesforce"
    name: str

    def read_records(self, window: Window, properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        """Yield pages of records modified in ``window``, each page at most one API call.

        :raises connectors.errors.ConnectorError: when the CRM fails for good (after retries).
        """
        ...

    def read_activities(self, records: Sequence[RawRecord]) -> Mapping[str, list[RawActivity]]:
        """Activities of the given records, by record id (empty when the CRM only keeps counters)."""
        ...

    def write(self, updates: Sequence[RecordUpdate]) -> WriteResult:
        """Write properties in the largest batches the API allows.

        Records the CRM refuses are returned in ``WriteResult.failed``; a whole-batch rejection caused by
        one bad record is split until that record is isolated.

        :raises connectors.errors.ConnectorError: when the CRM fails for good for the whole call.
        """
        ...

    def trigger(self, record_id: str, email: str | None) -> None:
        """Trigger the configured CRM automation for one newly qualified record (no-op when none).

        :raises connectors.errors.ConnectorError: when the CRM refuses.
        """
        ...

    def ensure_properties(self, specs: Sequence[PropertySpec]) -> list[str]:
        """Create the custom properties that are missing; return the names created (idempotent)."""
        ...

    def describe(self) -> Mapping[str, str]:
        """Property name -> type of the lead object, for mapping validation and discovery."""
        ...

    @property
    def api_calls(self) -> int:
        """API calls made so far by this connector (retries included)."""
        ...


@runtime_checkable
class OutcomeReader(Protocol):
    """What the learning loop needs from a CRM on top of :class:`Connector`: who converted, and when."""

    def read_outcomes(self, records: Sequence[RawRecord], spec: OutcomeSpec) -> Mapping[str, RawOutcome]:
        """The earliest outcome of each given record that ``spec`` counts, by record id (absent: none yet).

        Batched like ``read_activities`` (never one call per record); properties the spec needs on the
        record itself (``outcome_properties``) come with the ordinary record reads, at no extra call.

        :raises connectors.errors.ConnectorError: when the CRM fails for good (after retries).
        """
        ...

    def outcome_properties(self, spec: OutcomeSpec) -> Sequence[str]:
        """Record properties ``read_outcomes`` needs on each record (added to ``read_records``' list)."""
        ...


@runtime_checkable
class RecordsById(Protocol):
    """A connector that reads given records by id without the search index (webhook micro-passes)."""

    def read_by_ids(self, ids: Sequence[str], properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        """The records with these ids, in the CRM's batch-read size per call; unknown ids are left out.

        :raises connectors.errors.ConnectorError: when the CRM fails for good (after retries).
        """
        ...


@runtime_checkable
class CompanyReader(Protocol):
    """A CRM that keeps firmographics on a company associated with the record, read apart (HubSpot).

    Salesforce needs none of it: a Contact's Account fields come through relationship fields in the same
    query (``Account.Industry``). Records come back with ``object_type`` "company".
    """

    def read_primary_companies(self, record_ids: Sequence[str]) -> Mapping[str, str]:
        """record id -> the id of its primary company (records without one are absent); batched, never one
        call per record. :raises connectors.errors.ConnectorError: when the CRM fails for good."""
        ...

    def read_companies(self, company_ids: Sequence[str], properties: Sequence[str]) -> list[RawRecord]:
        """The companies with these ids (the CRM's batch-read size per call); unknown ids are left out.

        :raises connectors.errors.ConnectorError: when the CRM fails for good (after retries).
        """
        ...

    def read_changed_companies(self, window: Window, properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        """Pages of the companies modified within ``window`` (``start`` must be set).

        :raises connectors.errors.ConnectorError: when the CRM fails for good (after retries).
        """
        ...
