"""The tables (SQLAlchemy Core); the alembic revisions in sync/migrations/versions/ create exactly these.

A test compares the migrated database with :data:`metadata`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

RUN_STATUSES: Final = ("running", "ok", "partial", "failed", "stopped")
OUTBOX_STATUSES: Final = ("pending", "done", "failed")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC: ``timestamptz`` on PostgreSQL, UTC text on SQLite.

    Naive datetimes are refused (``ValueError``); results are always aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite's DATETIME is text without an offset: store UTC wall time, re-attach UTC on the way out
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


t_runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("status", String(16), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("error", Text, nullable=True),
    CheckConstraint("status IN ('running', 'ok', 'partial', 'failed', 'stopped')", name="status"),
    Index(None, "job", "started_at"),
)


t_watermarks = Table(
    "watermarks",
    metadata,
    Column("stream", String(200), primary_key=True),
    Column("value", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


t_leads = Table(
    "leads",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("object_type", String(64), nullable=False),
    Column("email", Text, nullable=True),
    Column("email_lower", Text, nullable=True),  # Python str.lower(): unicode-correct on both backends
    Column("properties", JSON, nullable=False),
    Column("activities", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("cached_at", UTCDateTime, nullable=False),
    Index(None, "email_lower"),
)


t_scores = Table(
    "scores",
    metadata,
    Column("lead_id", String(255), primary_key=True),
    Column("total", Integer, nullable=False),
    Column("fit", Integer, nullable=False),
    Column("engagement", Integer, nullable=False),
    Column("penalties", Integer, nullable=False),
    Column("grade", String(32), nullable=False),
    Column("qualified", Boolean, nullable=False),
    Column("qualified_at", UTCDateTime, nullable=True),
    Column("hits", JSON, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("rules_version", String(255), nullable=False),
    Column("scored_at", UTCDateTime, nullable=False),
    Column("points", Float, nullable=True),  # revision 0004_score_points: Score.points, the unclamped total
)


t_written = Table(
    "written",
    metadata,
    Column("lead_id", String(255), primary_key=True),
    Column("properties", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


t_failed_writes = Table(
    "failed_writes",
    metadata,
    Column("lead_id", String(255), primary_key=True),
    Column("object_type", String(64), nullable=False),
    Column("properties", JSON, nullable=False),
    Column("message", Text, nullable=False),
    Column("retriable", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_failed_at", UTCDateTime, nullable=False),
    Column("last_failed_at", UTCDateTime, nullable=False),
)


t_outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", String(255), nullable=False),
    Column("email", Text, nullable=True),
    Column("qualified_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime, nullable=True),
    Column("claimed_at", UTCDateTime, nullable=True),  # revision 0002
    Column("claimed_by", String(255), nullable=True),
    UniqueConstraint("lead_id", "qualified_at"),
    CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
    Index(None, "status", "id"),
)


t_leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    #: fencing token: +1 whenever the holder changes (0006_lease_epoch)
    Column("epoch", BigInteger, nullable=False, server_default="1"),
)


ARMS: Final = ("champion", "challenger")


t_score_history = Table(  # revision 0003
    "score_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", String(255), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("total", Integer, nullable=False),
    Column("grade", String(32), nullable=False),
    Column("qualified", Boolean, nullable=False),
    Column("rules_version", String(255), nullable=False),
    Column("arm", String(16), nullable=False),
    CheckConstraint("arm IN ('champion', 'challenger')", name="arm"),
    Index(None, "lead_id", "arm", "at"),
)


t_outcomes = Table(  # revision 0003
    "outcomes",
    metadata,
    Column("lead_id", String(255), primary_key=True),
    Column("converted_at", UTCDateTime, nullable=False),
    Column("source", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
)


t_models = Table(  # revision 0005_models
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("source", String(16), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("activated_at", UTCDateTime, nullable=True),
    Column("card", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    UniqueConstraint("version"),
)


t_companies = Table(  # revision 0008_companies: the primary associated companies of cached leads
    "companies",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("properties", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=True),  # the company's own modification time in the CRM
    Column("cached_at", UTCDateTime, nullable=False),
)


t_lead_companies = Table(  # revision 0008_companies: each lead's primary company
    "lead_companies",
    metadata,
    Column("lead_id", String(255), primary_key=True),
    Column("company_id", String(255), nullable=False),
    Index(None, "company_id"),
)
