"""The base of the Salesforce route classes: API versions, error bodies, reading JSON bodies."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    SandboxApp,
    json_response,
)
from connectors.sandbox.salesforce.store import (
    SalesforceError,
)

if TYPE_CHECKING:
    from connectors.sandbox.salesforce.org import SalesforceOrg


API_VERSIONS: tuple[str, ...] = tuple(f"{v}.0" for v in range(31, 63))
#: an Enterprise org's base allocation of API requests per rolling 24 hours
DEFAULT_DAILY_LIMIT = 100_000
RATE_WINDOW_S = 10.0
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SEASONS = ("Winter", "Spring", "Summer")
_INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
_LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


def _version_label(version: str) -> str:
    offset = int(float(version)) - 59  # 59.0 is Winter '24
    return f"{_SEASONS[offset % 3]} '{24 + offset // 3}"


def _error(status: int, code: str, message: str) -> Response:
    return json_response([{"message": message, "errorCode": code}], status)


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", f"not an integer: {value!r}", ["Metadata"]) from None


class SalesforceRoutes(SandboxApp):
    """What every family's handlers use; the handlers themselves live with their API family."""

    org: SalesforceOrg

    @staticmethod
    def _json(request: Request) -> Any:
        raw = request.get_data(cache=True)
        if not raw:
            raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body is empty")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SalesforceError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None

    def _object(self, sobject: str) -> None:
        self.org.table(sobject)  # 404 NOT_FOUND for unknown objects
