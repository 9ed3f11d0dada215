"""Salesforce's gate in front of every endpoint: sessions, the org's API budget and rate limit, fault bodies."""

from __future__ import annotations

import secrets

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    DailyBudget,
    RollingWindowLimiter,
    Route,
    json_response,
)
from connectors.sandbox.salesforce._http import (
    _INVALID_SESSION,
    _LIMIT_EXCEEDED,
    _error,
)
from connectors.sandbox.salesforce.auth import AuthRoutes
from connectors.sandbox.salesforce.schema import (
    WriteRejected,
)
from connectors.sandbox.salesforce.store import (
    SalesforceError,
)


class SalesforceGate(AuthRoutes):
    """The pipeline hooks of :class:`~connectors.sandbox._server.SandboxApp` with Salesforce's answers.

    The limiter, the daily budget and the fault injector are the shared ones of :mod:`connectors.sandbox._server`.
    """

    limiter: RollingWindowLimiter | None
    daily_limit: int
    daily: DailyBudget

    def authenticate(self, request: Request, route: Route) -> str | Response:
        if route.tag == "public":
            return ""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() in ("bearer", "oauth") and token and self.session_valid(token):
            return token
        return json_response(_INVALID_SESSION, 401, {"WWW-Authenticate": "Token"})

    def admit(self, request: Request, route: Route, principal: str) -> Response | dict[str, str]:
        if route.tag == "public":
            return {}
        limiter = self.limiter
        allowed, used = self.daily.try_spend(
            also=None if limiter is None else lambda: limiter.acquire(self.org.org_id).allowed
        )
        header = {"Sforce-Limit-Info": f"api-usage={used}/{self.daily_limit}"}
        if not allowed:
            self.stats.record_throttled()  # not a 429, so the base pipeline does not count it
            return json_response(_LIMIT_EXCEEDED, 403, header)
        return header

    @property
    def api_usage(self) -> int:
        return self.daily.used()

    def set_api_usage(self, used: int) -> None:
        """Start the day's counter somewhere else (e.g. just below the limit)."""
        self.daily.set_used(used)

    def fault_response(self, status: int) -> Response:
        if status == 500:
            code = f"{secrets.randbelow(10**9)}-{secrets.randbelow(10**5)} ({-secrets.randbelow(10**9)})"
            return _error(
                500,
                "UNKNOWN_EXCEPTION",
                f"An unexpected error occurred. Please include this ErrorId if you contact support: {code}",
            )
        return _error(status, "SERVER_UNAVAILABLE", "Server temporarily unavailable, please retry later")

    def not_found(self, request: Request) -> Response:
        return _error(404, "NOT_FOUND", "The requested resource does not exist")

    def method_not_allowed(self, request: Request) -> Response:
        return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed")

    def handle_exception(self, exc: Exception) -> Response | None:
        if isinstance(exc, SalesforceError):
            return json_response(exc.body(), exc.status)
        if isinstance(exc, WriteRejected):
            return json_response([exc.error.as_rest_error()], 400)
        return None
