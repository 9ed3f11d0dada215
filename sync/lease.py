"""Job leases between replicas: one ``leadsync run`` works, the others stand by and take over when it dies.

A :class:`LeaseKeeper` holds one lease of the state store (``StateStore.acquire_lease``) from a background
thread: the holder renews it every ``renew_s``, a standby tries to take it every ``poll_s``. When the holder
dies (crash, SIGKILL, lost node), its lease expires ``ttl`` after its last renewal and a standby takes it on
its next poll, so a takeover happens at most ``ttl + poll_s`` after the death.

Safety rests on the holder never *writing* without a valid lease: :meth:`LeaseKeeper.check` raises
:class:`LeaseLost` unless the lease was confirmed by the database recently enough that at least ``margin``
of it is left, judged by this process's monotonic clock from the moment *before* the renewing query was
sent (so a slow query shortens the lease we count on, never lengthens it). A replica that cannot renew, for
whatever reason (database down, process stalled, another replica took over), stops writing within
``ttl - margin`` of its last renewal, before anybody else may take the lease over. Keep ``ttl`` well above the
replicas' clock skew plus the longest single CRM call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Final

import structlog

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
        """:raises LeaseLost: unless :meth:`held` (call it before every write to the CRM)."""
        if not self.held():
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

    def _loop(self) -> None:
        while not self._stop.wait(self.renew_s if self._held else self.poll_s):
            self.tick()

    def tick(self) -> None:
        """One acquire-or-renew round trip (public for tests)."""
        sent = self._clock()
        try:
            ok = self.store.acquire_lease(self.name, self.owner, timedelta(seconds=self.ttl_s))
        except Exception as exc:
            # unknown outcome: keep what we knew; the lease runs out by itself if this goes on
            log.warning("lease.renew_failed", lease=self.name, error=str(exc), error_type=type(exc).__name__)
            return
        callback = None
        with self._lock:
            if ok:
                if not self._held:
                    callback = self._on_acquired
                self._held, self._valid_until = True, sent + self.ttl_s
            elif self._held:
                self._held, self._valid_until = False, 0.0
                callback = self._on_lost
        if ok and callback is not None:
            log.info("lease.acquired", lease=self.name, owner=self.owner, ttl_s=self.ttl_s)
        elif callback is not None:
            log.warning("lease.lost", lease=self.name, owner=self.owner, holder=self._holder())
        if callback is not None and not self._stop.is_set():
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
