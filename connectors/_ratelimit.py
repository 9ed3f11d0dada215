"""One rate limiter per CRM account, shared by every call to it.

A rolling-window limiter (HubSpot counts requests per rolling 10 s) that follows the vendor's rate-limit
headers: it starts from the configured budget, then paces at the portal's own limit (less a safety margin)
once a response says what it is, and slows down when other apps on the same account use part of it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LimitInForce:
    """The limit a limiter paces at now, and where it came from (``status``, metrics, run summaries)."""

    max_calls: int
    period_s: float
    #: ``config``: the configured budget (or the default before the CRM said anything); ``portal``: the
    #: CRM's own header, less the margin; ``portal+config``: the portal's, capped by the configured budget
    source: str
    #: the CRM's own figure (``X-HubSpot-RateLimit-Max``), when it sent one
    portal_max: int | None = None
    #: calls other apps on the account used in the CRM's last reported window (they count against us too)
    others: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "max_calls": self.max_calls,
            "period_s": self.period_s,
            "source": self.source,
            "portal_max": self.portal_max,
            "others": self.others,
        }


class RollingWindowLimiter:
    """At most ``max_calls`` in any ``period`` seconds; ``acquire`` blocks until a call may go.

    ``ceiling`` (an operator's explicit budget) is never exceeded, whatever the CRM says; without it the
    limiter follows the CRM's advertised limit up or down (:meth:`follow`), keeping ``margin`` of it free.
    """

    def __init__(
        self,
        max_calls: int,
        period: float,
        *,
        ceiling: int | None = None,
        margin: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls <= 0 or period <= 0:
            raise ValueError("max_calls and period must be positive")
        if not 0 <= margin < 1:
            raise ValueError("margin must be in [0, 1)")
        self.max_calls = max_calls
        self.period = period
        self.ceiling = ceiling
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        #: the share of the window other apps use (from the CRM's remaining count), subtracted from ours
        self._others = 0
        self._portal_max: int | None = None
        #: seconds spent waiting for a slot (for metrics and benchmarks)
        self.waited_s = 0.0

    @property
    def allowed(self) -> int:
        """Calls this process may send per window now: the limit less what other apps use (at least 1)."""
        return max(1, self.max_calls - self._others)

    def _delay(self, now: float) -> float:
        while self._sent and self._sent[0] <= now - self.period:
            self._sent.popleft()
        delay = max(0.0, self._blocked_until - now)
        allowed = self.allowed
        if len(self._sent) >= allowed:
            delay = max(delay, self._sent[len(self._sent) - allowed] + self.period - now)
        return delay

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                delay = self._delay(now)
                if delay <= 0:
                    self._sent.append(now)
                    return
            self.waited_s += delay
            self._sleep(delay)

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the server said the window is spent, or asked us to wait)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def observe(self, remaining: int | None, interval_s: float | None) -> None:
        """Align with the server's own count: when it says nothing is left, wait out its window."""
        if remaining is not None and remaining <= 0:
            self.pause(interval_s if interval_s else self.period)

    def follow(self, portal_max: int | None, interval_s: float | None, remaining: int | None) -> None:
        """Pace by the CRM's advertised window: ``portal_max`` calls per ``interval_s``, ``remaining`` left.

        The limit becomes ``floor(portal_max * (1 - margin))`` (never above ``ceiling``); calls the CRM
        counts in its window beyond our own are other apps' and are taken off our share until they age out.
        """
        with self._lock:
            if interval_s is not None and interval_s > 0:
                self.period = interval_s
            if portal_max is not None and portal_max > 0:
                self._portal_max = portal_max
                share = max(1, math.floor(portal_max * (1 - self.margin)))
                self.max_calls = min(share, self.ceiling) if self.ceiling else share
                if remaining is not None:
                    now = self._clock()
                    ours = sum(1 for t in self._sent if t > now - self.period)
                    self._others = max(0, portal_max - remaining - ours)
        self.observe(remaining, interval_s)

    def in_force(self) -> LimitInForce:
        """The limit now and its source."""
        with self._lock:
            if self._portal_max is None:
                source = "config"
            elif self.ceiling is not None and self.ceiling < math.floor(self._portal_max * (1 - self.margin)):
                source = "portal+config"
            else:
                source = "portal"
            return LimitInForce(self.max_calls, self.period, source, self._portal_max, self._others)


_registry: dict[tuple[str, ...], tuple[tuple[object, ...], RollingWindowLimiter]] = {}
_registry_lock = threading.Lock()


def shared_limiter(
    key: tuple[str, ...], max_calls: int, period: float, *, ceiling: int | None = None, margin: float = 0.0
) -> RollingWindowLimiter:
    """The limiter of one account (keyed by endpoint and a token digest), created on first use.

    A second connector on the same account with the same settings shares it (and what it learnt from the
    CRM's headers); other settings replace it.
    """
    settings = (max_calls, period, ceiling, margin)
    with _registry_lock:
        entry = _registry.get(key)
        if entry is None or entry[0] != settings:
            entry = _registry[key] = (settings, RollingWindowLimiter(max_calls, period, ceiling=ceiling, margin=margin))
        return entry[1]
