"""Runs, job leases and watermarks: what the daemon and `leadsync status` need to know who is doing what."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, and_, case, delete, literal, or_, select, update

from sync.state.engine import Database
from sync.state.records import RunRecord, from_row
from sync.state.schema import RUN_STATUSES, t_leases, t_runs, t_watermarks

ABANDONED: Final = "abandoned"  # what `last_runs(lease=...)` reports for a run whose process is gone


class RunsLeasesWatermarks(Database):
    """Run history, per-stream watermarks and job leases."""

    def start_run(self, job: str) -> int:
        with self._begin() as conn:
            run_id = conn.execute(
                t_runs.insert()
                .values(job=job, started_at=self._now(), status="running", summary={}, error=None)
                .returning(t_runs.c.id)
            ).scalar_one()
        return int(run_id)

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any], error: str | None = None) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish_run status must be one of ok, partial, failed, stopped; got {status!r}")
        with self._begin() as conn:
            result = conn.execute(
                update(t_runs)
                .where(t_runs.c.id == run_id)
                .values(finished_at=self._now(), status=status, summary=dict(summary), error=error)
            )
            if result.rowcount == 0:
                raise KeyError(f"no run with id {run_id}")

    def last_runs(self, limit: int = 10, *, job: str | None = None, lease: str | None = None) -> list[RunRecord]:
        """The newest runs first.

        With ``lease`` (the job lease these runs are made under), a run still ``running`` although nobody
        holds that lease now, or whose holder took it after the run started, comes back with status
        ``abandoned``: the process running it is gone (SIGKILL, crash, lost node) and its lease expired.
        """
        query = select(t_runs).order_by(t_runs.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(t_runs.c.job == job)
        with self._begin(write=False) as conn:
            rows = conn.execute(query).all()
            held_since = None
            if lease is not None:
                held_since = conn.execute(
                    select(t_leases.c.acquired_at).where(t_leases.c.name == lease, t_leases.c.expires_at > self._now())
                ).scalar_one_or_none()
        runs = [from_row(RunRecord, r) for r in rows]
        if lease is None:
            return runs
        return [
            replace(
                run,
                status=ABANDONED,
                error=f"abandoned: the process running it no longer holds the lease {lease!r} (killed or crashed)",
            )
            if run.status == "running" and (held_since is None or run.started_at < held_since)
            else run
            for run in runs
        ]

    def abandon_runs(self, job: str, *, keep: int | None = None) -> int:
        """Mark ``running`` runs of ``job`` (except run ``keep``) as failed: their process died.

        Called by the replica that takes the job's lease: nobody else may be running the job then.
        """
        query = update(t_runs).where(t_runs.c.job == job, t_runs.c.status == "running")
        if keep is not None:
            query = query.where(t_runs.c.id != keep)
        with self._begin() as conn:
            result = conn.execute(
                query.values(
                    status="failed",
                    finished_at=self._now(),
                    error="interrupted: the process running it stopped (crash, kill or lost lease)",
                )
            )
            return int(result.rowcount)

    def get_watermark(self, stream: str) -> datetime | None:
        with self._begin(write=False) as conn:
            value: datetime | None = conn.execute(
                select(t_watermarks.c.value).where(t_watermarks.c.stream == stream)
            ).scalar_one_or_none()
        return value

    def watermarks(self) -> dict[str, datetime]:
        """Every stream's watermark (for `leadsync status`)."""
        with self._begin(write=False) as conn:
            rows = conn.execute(select(t_watermarks.c.stream, t_watermarks.c.value).order_by(t_watermarks.c.stream))
            return {r.stream: r.value for r in rows}

    def set_watermark(self, stream: str, value: datetime | None) -> None:
        """Set a stream's watermark; ``None`` clears it (the next pass reads everything)."""
        with self._begin() as conn:
            self._set_watermark(conn, stream, value)

    def _set_watermark(self, conn: Connection, stream: str, value: datetime | None) -> None:
        if value is None:
            conn.execute(delete(t_watermarks).where(t_watermarks.c.stream == stream))
            return
        ins = self._insert(t_watermarks).values(stream=stream, value=value, updated_at=self._now())
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=[t_watermarks.c.stream],
                set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
            )
        )

    def acquire_lease(self, name: str, owner: str, ttl: timedelta, *, take_over: bool = False) -> int | None:
        """Take or renew the lease ``name`` for ``owner`` until now + ``ttl``; returns its epoch, or None.

        ``owner`` holds it afterwards when it was free, expired, already ``owner``'s (a renewal), or
        ``take_over`` is set: the caller holds the job's lock (:mod:`sync.joblock`), which only a live
        process can, so whoever the row still names is gone. The epoch (the fencing token) grows by one
        whenever the holder changes. Expiry is judged by the caller's clock: keep ``ttl`` well above the
        replicas' clock skew.
        """
        if ttl <= timedelta(0):
            raise ValueError("lease ttl must be positive")
        now = self._now()
        ins = self._insert(t_leases).values(name=name, owner=owner, acquired_at=now, expires_at=now + ttl, epoch=1)
        same_owner = t_leases.c.owner == ins.excluded.owner
        renewal = and_(same_owner, t_leases.c.expires_at > now)
        stmt = ins.on_conflict_do_update(
            index_elements=[t_leases.c.name],
            set_={
                "owner": ins.excluded.owner,
                "expires_at": ins.excluded.expires_at,
                "acquired_at": case((renewal, t_leases.c.acquired_at), else_=ins.excluded.acquired_at),
                "epoch": case((renewal, t_leases.c.epoch), else_=t_leases.c.epoch + 1),
            },
            where=or_(same_owner, t_leases.c.expires_at <= now, literal(take_over)),
        ).returning(t_leases.c.epoch)
        with self._begin(fenced=False) as conn:
            row = conn.execute(stmt).first()
        return None if row is None else int(row.epoch)

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up (no-op unless ``owner`` holds it); the row stays, expired, to keep its epoch."""
        with self._begin(fenced=False) as conn:
            conn.execute(
                update(t_leases)
                .where(t_leases.c.name == name, t_leases.c.owner == owner, t_leases.c.expires_at > self._now())
                .values(expires_at=self._now())
            )

    def lease_epoch(self, name: str) -> int | None:
        """The current epoch of the lease ``name`` (held or not), None if it was never taken."""
        with self._begin(write=False) as conn:
            epoch = conn.execute(select(t_leases.c.epoch).where(t_leases.c.name == name)).scalar()
        return None if epoch is None else int(epoch)

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        """``(owner, expires_at)`` of an unexpired lease, else None."""
        with self._begin(write=False) as conn:
            row = conn.execute(
                select(t_leases.c.owner, t_leases.c.expires_at).where(
                    t_leases.c.name == name, t_leases.c.expires_at > self._now()
                )
            ).first()
        return None if row is None else (row.owner, row.expires_at)
