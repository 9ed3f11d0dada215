"""Connector errors, branched by what the caller should do.

ConnectorError
├── RetriableError      429, 5xx, timeouts, dropped connections (carries retry_after)
│   └── MalformedResponse a 2xx whose body is not what the API documents (truncated JSON, a gateway's HTML)
└── FatalError
    ├── AuthError       401/403: the token is wrong, expired or lacks a scope
    ├── RequestRejected any other 4xx: the request itself is wrong; retrying cannot help
    └── BudgetExhausted the daily API budget guard stopped the run before the vendor's limit
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Root of every connector error."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetriableError(ConnectorError):
    """A transient failure: the same call may succeed later."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class MalformedResponse(RetriableError):
    """A success status with a body that cannot be trusted: never read as "no more records".

    A truncated JSON page or a proxy's HTML error page answered with 200 would otherwise end a read early
    and silently; treated as transient, it is retried like a 5xx and fails the pass when it persists.
    """


class FatalError(ConnectorError):
    """A failure that retrying cannot fix."""


class DeliveryUnknown(FatalError):
    """A call that must not run twice (a Flow launch, a platform event) failed without a usable answer: a
    timeout, a dropped connection or a broken body after the CRM may have acted. It is not retried, and the
    outbox does not send it again: someone checks the record by hand (the message says which)."""


class AuthError(FatalError):
    """The CRM refused the credentials."""


class RequestRejected(FatalError):
    """The CRM refused the request as invalid (a 4xx other than auth and throttling)."""


class BudgetExhausted(FatalError):
    """The run stopped itself before exhausting the CRM's daily API allocation."""
