"""The retry policy every CRM call goes through (tenacity): only ``RetriableError`` is retried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base, wait_random_exponential

from connectors.errors import RetriableError

T = TypeVar("T")
log = structlog.get_logger("leadsync.connectors")


class wait_retry_after_or_backoff(wait_base):
    """Honour the server's Retry-After when it gave one, else full-jitter exponential backoff."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.backoff = wait_random_exponential(multiplier=initial, max=maximum)
        self.maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = float(self.backoff(retry_state))
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RetriableError) and exc.retry_after is not None:
            return min(self.maximum, max(exc.retry_after, 0.0))
        return backoff


def _log_wait(crm: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "retrying",
            crm=crm,
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 3),
            status=getattr(exc, "status", None),
            error=str(exc),
        )

    return before_sleep


def retrying(crm: str, max_retries: int, *, initial: float = 0.5, maximum: float = 30.0) -> Retrying:
    """A tenacity ``Retrying`` for one connector's calls."""
    return Retrying(
        retry=retry_if_exception_type(RetriableError),
        stop=stop_after_attempt(max_retries + 1),
        wait=wait_retry_after_or_backoff(initial, maximum),
        before_sleep=_log_wait(crm),
        reraise=True,
    )


def call_with_retry(policy: Retrying, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return policy(fn, *args, **kwargs)
