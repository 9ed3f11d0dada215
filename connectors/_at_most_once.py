"""Calls that must not run twice: a Flow launch or a platform event is neither idempotent nor checkable.

The retry layer retries every transient failure, which is right for reads and for writes of the same
values, but a Flow that ran before its answer was lost (a timeout, a dropped connection, a body cut short)
would run again. Such an ambiguous failure becomes :class:`DeliveryUnknown`: not retried, and the outbox
holds the item as failed with a message saying to check the record, rather than risk a second launch.
Failures that say the CRM did not act (an error status it answered with, a connection never made) stay
retriable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import requests
import urllib3

from connectors.errors import ConnectorError, DeliveryUnknown, RetriableError

T = TypeVar("T")


def surely_unsent(exc: BaseException) -> bool:
    """True when the request never reached the server (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    inner = exc.args[0] if exc.args else None
    return isinstance(getattr(inner, "reason", inner), urllib3.exceptions.NewConnectionError)


def at_most_once(
    fn: Callable[[Any], T],
    what: str,
    map_error: Callable[[Exception], ConnectorError],
    *,
    passthrough: tuple[type[Exception], ...] = (),
) -> Callable[[Any], T]:
    """``fn`` with an ambiguous failure turned into :class:`DeliveryUnknown` (``passthrough`` exceptions,
    such as an expired session the caller renews, are re-raised as they are)."""

    def call(client: Any) -> T:
        try:
            return fn(client)
        except passthrough:
            raise
        except Exception as exc:
            error = map_error(exc)
            if isinstance(error, RetriableError) and error.status is None and not surely_unsent(exc):
                raise DeliveryUnknown(
                    f"{what}: {error}; it may have run already, so it is not retried or sent again"
                ) from exc
            raise error from exc

    return call
