"""Job leases between replicas: one ``leadsync run`` works, the others stand by and take over when it dies.

A :class:`LeaseKeeper` holds one lease of the state store (``StateStore.acquire_lease``) from a background
thread: the holder renews it every ``renew_s``, a standby tries to take it every ``poll_s``.

With a job lock (:mod:`sync.joblock`: a PostgreSQL session advisory lock, or an OS file lock beside a SQLite
file), the lease follows the lock: whoever holds the lock takes the lease row over at once, whatever its
expiry, because only a live process can hold the lock. A SIGKILLed holder's lock is freed by the database or
the kernel the moment it dies, so a standby (or the restarted process) takes over on its next poll, within
about ``poll_s``, not a TTL. Without a lock (an in-memory store), the lease expires ``ttl`` after the dead
holder's last renewal and a standby takes it on its next poll.

Safety rests on the holder never *writing* without a valid lease: :meth:`LeaseKeeper.check` raises
:class:`LeaseLost` unless (1) the job lock is proven alive by a round trip now, and (2) the lease was
confirmed by the database recently enough that at least ``margin`` of it is left, judged by this process's
monotonic clock from the moment *before* the renewing query was sent. And every state-store write of the
holder carries the lease's epoch (the fencing token, ``Database.fence``): a takeover bumps it, so a late
commit of a holder cut off from its lock is refused (``FencedOut``) instead of landing over its successor's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Final

import structlog

from sync.joblock import JobLock
from sync.pipeline import PassInterrupted
from sync.state import StateStore

__all__ = ["LeaseKeeper", "LeaseLost", "lease_name"]

log = structlog.get_logger("leadsync.lease")

#: a standby polls at least this often, so a takeover follows the lease's expiry closely
MAX_POLL_S: Final = 1.0


def lease_name(stream: str) -> str:
    """The lease of a CRM stream: ``sync`` and ``full_sync`` share it, since both write the same records."""
    return f"sync:{stream}"


class LeaseLost(PassInterrupted):
    """The job lease is not (or no longer surely) ours: stop before the next write."""

    def __init__(self, name: str) -> None:
        super().__init__(f"lease {name!r} is not held by this replica: another replica may be running the job")
        self.name = name


class LeaseKeeper:
    """Acquires, renews and releases one lease for this process; tells whether it may write.

    ``on_acquired`` and ``on_lost`` run on the keeper's thread when the lease changes hands.
    """

    def __init__(
        self,
        store: StateStore,
        name: str,
        owner: str,
        ttl_s: float,
        *,
        on_acquired: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        lock: JobLock | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("lease ttl must be positive")
        self.store = store
        self.name = name
        self.owner = owner
        self.ttl_s = ttl_s
        #: the holder renews this often (several renewals fit in one ttl, so one slow query is harmless)
        self.renew_s = min(max(ttl_s / 5, 0.1), 5.0)
        #: a standby tries this often
        self.poll_s = min(self.renew_s, MAX_POLL_S)
        #: refuse to start a write with less than this left of the lease
        self.margin_s = ttl_s / 4
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._clock = clock
        self._job_lock = lock
        #: the lease's epoch when this keeper last took or renewed it (the fencing token of our writes)
        self.epoch: int | None = None
        self._valid_until = 0.0  # monotonic time until which the lease is surely ours; 0: not held
        self._held = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- what the job sees ---------------------------------------------------------------------------

    def held(self) -> bool:
        """True while the lease is ours with at least ``margin`` of it left."""
        with self._lock:
            return self._held and self._clock() < self._valid_until - self.margin_s

    def check(self) -> None:
        """:raises LeaseLost: unless :meth:`held` and the job lock is alive now (call it before every write)."""
        if not self.held():
            raise LeaseLost(self.name)
        if self._job_lock is not None and not self._job_lock.alive():
            self._lose("lock_lost")
            raise LeaseLost(self.name)

    # ---- the background thread -----------------------------------------------------------------------

    def start(self) -> None:
        """Try once at once (so a lone replica starts working without delay), then keep trying in the background."""
        self.tick()
        self._thread = threading.Thread(target=self._loop, name=f"lease:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; ``release`` gives the lease up at once, so a standby need not wait for it to expire."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            was_held, self._held, self._valid_until = self._held, False, 0.0
        if release and was_held:
            try:
                self.store.release_lease(self.name, self.owner)
                log.info("lease.released", lease=self.name, owner=self.owner)
            except Exception as exc:  # the lease then expires by itself
                log.warning("lease.release_failed", lease=self.name, error=str(exc), error_type=type(exc).__name__)
        if self._job_lock is not None and (release or not was_held):
            # without release, a stuck pass keeps the lock until the process exits (the OS frees it then)
            self._job_lock.release()

    def _loop(self) -> None:
        while not self._stop.wait(self.renew_s if self._held else self.poll_s):
            self.tick()

    def tick(self) -> None:
        """One acquire-or-renew round (public for tests): the job lock first, then the lease row."""
        if self._job_lock is not None:
            with self._lock:
                held = self._held
            if held and not self._job_lock.alive():
                self._lose("lock_lost")
                return
            if not held and not self._job_lock.try_acquire():
                return  # a live process holds the job: stand by
        sent = self._clock()
        try:
            epoch = self.store.acquire_lease(
                self.name, self.owner, timedelta(seconds=self.ttl_s), take_over=self._job_lock is not None
            )
        except Exception as exc:
            # unknown outcome: keep what we knew; the lease runs out by itself if this goes on
            log.warning("lease.renew_failed", lease=self.name, error=str(exc), error_type=type(exc).__name__)
            return
        if epoch is None:
            self._lose("taken")
            return
        self.store.fence(self.name, epoch)
        with self._lock:
            acquired = not self._held
            self._held, self._valid_until, self.epoch = True, sent + self.ttl_s, epoch
        if acquired:
            log.info("lease.acquired", lease=self.name, owner=self.owner, ttl_s=self.ttl_s, epoch=epoch)
            self._callback(self._on_acquired)

    def _lose(self, why: str) -> None:
        with self._lock:
            was_held, self._held, self._valid_until = self._held, False, 0.0
        if not was_held:
            return
        log.warning("lease.lost", lease=self.name, owner=self.owner, reason=why, holder=self._holder())
        self._callback(self._on_lost)

    def _callback(self, callback: Callable[[], None] | None) -> None:
        if callback is None or self._stop.is_set():
            return
        try:
            callback()
        except Exception:
            log.exception("lease.callback_failed", lease=self.name)

    def _holder(self) -> str | None:
        try:
            holder = self.store.lease_holder(self.name)
        except Exception:
            return None
        return holder[0] if holder else None
