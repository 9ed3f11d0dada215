"""Predictive models: every trained version (skops file + model card), and which one is active.

A version is named by the SHA-256 of its file (12 hex digits), so the same model saved twice is one row and
``leadsync_model_version`` in the CRM says exactly which file scored a lead. Activation is one transaction:
at most one version is active.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from sync.state.engine import Database
from sync.state.schema import t_models

#: why a pass scores with rules alone when the store holds no active model (logged as ``model.none``)
NO_MODEL = "no active model yet: rules alone (train one with `leadsync model train`)"


@dataclass(frozen=True, slots=True)
class StoredModel:
    """One saved model; ``body`` is loaded only by :meth:`Models.get_model` and :meth:`Models.active_model`."""

    version: str
    created_at: datetime
    source: str
    active: bool
    activated_at: datetime | None
    card: dict[str, Any]
    body: bytes = b""


def model_version(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:12]


_LISTED = (
    t_models.c.version,
    t_models.c.created_at,
    t_models.c.source,
    t_models.c.active,
    t_models.c.activated_at,
    t_models.c.card,
)


def _record(row: Any, body: bytes = b"") -> StoredModel:
    return StoredModel(
        row.version, row.created_at, row.source, bool(row.active), row.activated_at, dict(row.card), body
    )


class Models(Database):
    """Model versions, newest last."""

    def save_model(self, body: bytes, card: dict[str, Any], source: str, *, activate: bool = False) -> str:
        """Store a model file with its card (idempotent by content); returns its version."""
        version = model_version(body)
        now = self._now()
        with self._begin() as conn:
            found = conn.execute(select(t_models.c.id).where(t_models.c.version == version)).first()
            if found is None:
                conn.execute(
                    t_models.insert().values(
                        version=version, created_at=now, source=source, active=False, card=card, body=body
                    )
                )
            if activate:
                self._activate(conn, version, now)
        return version

    def _activate(self, conn: Any, version: str, now: datetime) -> None:
        conn.execute(update(t_models).where(t_models.c.active).values(active=False))
        conn.execute(update(t_models).where(t_models.c.version == version).values(active=True, activated_at=now))

    def list_models(self) -> list[StoredModel]:
        with self._begin(write=False) as conn:
            return [_record(r) for r in conn.execute(select(*_LISTED).order_by(t_models.c.id))]

    def find_model_version(self, prefix: str) -> list[str]:
        """Versions starting with ``prefix`` (a unique prefix is enough to name one)."""
        return [m.version for m in self.list_models() if m.version.startswith(prefix.strip().lower())]

    def get_model(self, version: str) -> StoredModel | None:
        with self._begin(write=False) as conn:
            row = conn.execute(select(*_LISTED, t_models.c.body).where(t_models.c.version == version)).first()
        return None if row is None else _record(row, bytes(row.body))

    def active_model(self) -> StoredModel | None:
        with self._begin(write=False) as conn:
            row = conn.execute(select(*_LISTED, t_models.c.body).where(t_models.c.active)).first()
        return None if row is None else _record(row, bytes(row.body))

    def active_model_version(self) -> str | None:
        with self._begin(write=False) as conn:
            found = conn.execute(select(t_models.c.version).where(t_models.c.active)).scalar()
        return None if found is None else str(found)

    def activate_model(self, version: str) -> bool:
        """Make ``version`` the active model (False: no such version)."""
        with self._begin() as conn:
            if conn.execute(select(t_models.c.id).where(t_models.c.version == version)).first() is None:
                return False
            self._activate(conn, version, self._now())
        return True
