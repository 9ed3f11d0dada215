"""The state store: SQLite or PostgreSQL via SQLAlchemy, one module per table family on one engine helper.

May import sqlalchemy, alembic and structlog only (no other leadsync package); sync/migrations/ holds its schema.
"""

from sync.state.engine import DEFAULT_STATE_URL, FencedOut, StateStoreError, describe_store, normalize_url
from sync.state.leads import MAX_VALUE_CHARS, CacheChunk
from sync.state.models import StoredModel
from sync.state.records import (
    CachedCompany,
    CachedLead,
    FailedWrite,
    HistoryRow,
    OutboxItem,
    RunRecord,
    StoredOutcome,
    StoredScore,
)
from sync.state.runs import ABANDONED
from sync.state.schema import (
    ARMS,
    OUTBOX_STATUSES,
    RUN_STATUSES,
    UTCDateTime,
    metadata,
    t_companies,
    t_failed_writes,
    t_lead_companies,
    t_leads,
    t_leases,
    t_models,
    t_outbox,
    t_outcomes,
    t_runs,
    t_score_history,
    t_scores,
    t_watermarks,
    t_written,
)
from sync.state.store import StateStore

__all__ = [
    "ABANDONED",
    "ARMS",
    "DEFAULT_STATE_URL",
    "MAX_VALUE_CHARS",
    "OUTBOX_STATUSES",
    "RUN_STATUSES",
    "CacheChunk",
    "CachedCompany",
    "CachedLead",
    "FailedWrite",
    "FencedOut",
    "HistoryRow",
    "OutboxItem",
    "RunRecord",
    "StateStore",
    "StateStoreError",
    "StoredModel",
    "StoredOutcome",
    "StoredScore",
    "UTCDateTime",
    "describe_store",
    "metadata",
    "normalize_url",
    "t_companies",
    "t_failed_writes",
    "t_lead_companies",
    "t_leads",
    "t_leases",
    "t_models",
    "t_outbox",
    "t_outcomes",
    "t_runs",
    "t_score_history",
    "t_scores",
    "t_watermarks",
    "t_written",
]
