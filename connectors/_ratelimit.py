"""One rate limiter per CRM account, shared by every call to it.

A rolling-window limiter (HubSpot counts requests per rolling 10 s) that also listens to the vendor's
rate-limit headers, so that calls made by other processes on the same account slow us down too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RollingWindowLimiter:
    """At most ``max_calls`` in any ``period`` seconds; ``acquire`` blocks until a call may go."""

    def __init__(
        self,
        max_calls: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls <= 0 or period <= 0:
            raise ValueError("max_calls and period must be positive")
        self.max_calls = max_calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        #: seconds spent waiting for a slot (for metrics and benchmarks)
        self.waited_s = 0.0

    def _delay(self, now: float) -> float:
        while self._sent and self._sent[0] <= now - self.period:
            self._sent.popleft()
        delay = max(0.0, self._blocked_until - now)
        if len(self._sent) >= self.max_calls:
            delay = max(delay, self._sent[0] + self.period - now)
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


_registry: dict[tuple[str, ...], RollingWindowLimiter] = {}
_registry_lock = threading.Lock()


def shared_limiter(key: tuple[str, ...], max_calls: int, period: float) -> RollingWindowLimiter:
    """The limiter of one account (keyed by endpoint and a token digest), created on first use."""
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None or (limiter.max_calls, limiter.period) != (max_calls, period):
            limiter = _registry[key] = RollingWindowLimiter(max_calls, period)
        return limiter
