"""HubSpot's gate in front of every endpoint: bearer tokens, the rolling and daily rate limits, fault bodies."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    DailyBudget,
    RollingWindowLimiter,
    Route,
    SandboxApp,
    json_response,
    retry_after_header,
)
from connectors.sandbox.hubspot._base import (
    PortalError,
    _correlation_id,
    _error_body,
)

#: rolling-window length of HubSpot's burst limit
RATE_WINDOW_S = 10.0
DEFAULT_DAILY_LIMIT = 250_000
#: CRM search's own limit, per token per second, when rate limiting is on
DEFAULT_SEARCH_PER_SECOND = 5


class HubSpotGate(SandboxApp):
    """The pipeline hooks of :class:`~connectors.sandbox._server.SandboxApp` with HubSpot's answers.

    The limiters and the fault injector are the shared ones of :mod:`connectors.sandbox._server`; what is
    HubSpot's here is which limit applies to which request, and the headers and bodies it answers with.
    """

    tokens: set[str]
    expired_tokens: set[str]
    limiter: RollingWindowLimiter | None
    search_limiter: RollingWindowLimiter | None
    daily_limit: int
    daily: DailyBudget

    def add_token(self, token: str) -> None:
        """Accept another token (each token has its own rate-limit window)."""
        self.tokens.add(token)
        self.expired_tokens.discard(token)

    def expire_token(self, token: str) -> None:
        """Make ``token`` answer 401 ``EXPIRED_AUTHENTICATION`` from now on (an OAuth token's end of life)."""
        self.tokens.discard(token)
        self.expired_tokens.add(token)

    # pipeline hooks

    def authenticate(self, request: Request, route: Route) -> str | Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token in self.tokens:
            return token
        if scheme.lower() == "bearer" and token in self.expired_tokens:
            return json_response(
                _error_body(
                    "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired 1 second(s) ago."
                ),
                401,
            )
        return json_response(
            _error_body(
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
                "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ),
            401,
        )

    def admit(self, request: Request, route: Route, principal: str) -> Response | dict[str, str]:
        if self.limiter is None and self.search_limiter is None:
            return {}
        if self.limiter is not None and self.daily.exhausted(principal):
            return self._throttled("You have reached your daily limit.", "DAILY", 3600.0, {})
        if route.tag == "search":
            if self.search_limiter is not None:
                decision = self.search_limiter.acquire(principal)
                if not decision.allowed:
                    return self._throttled(
                        "You have reached your secondly limit.", "SECONDLY", decision.retry_after_s, {}
                    )
            self.daily.spend(principal)
            return {}  # search responses carry no X-HubSpot-RateLimit-* headers
        if self.limiter is None:
            return {}
        decision = self.limiter.acquire(principal)
        interval_ms = str(int(self.limiter.window_s * 1000))
        if not decision.allowed:
            headers = {
                "X-HubSpot-RateLimit-Max": str(decision.limit),
                "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": interval_ms,
            }
            return self._throttled(
                "You have reached your ten_secondly_rolling limit.",
                "TEN_SECONDLY_ROLLING",
                decision.retry_after_s,
                headers,
            )
        used = self.daily.spend(principal)
        return {
            "X-HubSpot-RateLimit-Max": str(decision.limit),
            "X-HubSpot-RateLimit-Remaining": str(decision.remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": interval_ms,
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - used, 0)),
        }

    def _throttled(self, message: str, policy: str, retry_after_s: float, headers: dict[str, str]) -> Response:
        body = {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": _correlation_id(),
            "policyName": policy,
            "requestId": _correlation_id(),
        }
        return json_response(body, 429, {**headers, "Retry-After": retry_after_header(retry_after_s)})

    def fault_response(self, status: int) -> Response:
        message = {500: "Internal error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "error")
        return json_response(_error_body("INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE", message), status)

    def not_found(self, request: Request) -> Response:
        return json_response(
            _error_body("OBJECT_NOT_FOUND", f"Unable to route {request.method} request to {request.path}"), 404
        )

    def method_not_allowed(self, request: Request) -> Response:
        return json_response(
            _error_body("VALIDATION_ERROR", f"HTTP method {request.method} is not supported by this resource"), 405
        )

    def handle_exception(self, exc: Exception) -> Response | None:
        return exc.response() if isinstance(exc, PortalError) else None
