"""``POST /webhooks/hubspot`` and ``POST /webhooks/salesforce``: verify, parse, queue, answer 2xx at once.

No work happens in the request: a verified notification's ids go into the bounded queue and the CRM gets its
answer in milliseconds (HubSpot counts a webhook slower than 5 s as failed, Salesforce re-sends an Outbound
Message that is not acknowledged). A full queue, a standby replica: still 2xx (the CRM retrying would not
help), with a catch-up flagged so the scheduled pass covers those ids soon. Refusals say nothing about why
(the reason is counted in the metric, and logged without any secret or body).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, unquote

import structlog

from sync.webhooks.events import SALESFORCE_ACK, Malformed, Notice, parse_hubspot, parse_salesforce
from sync.webhooks.queue import NoticeQueue
from sync.webhooks.verify import (
    HUBSPOT_SIGNATURE,
    HUBSPOT_TIMESTAMP,
    Rejected,
    check_fresh,
    verify_hubspot,
    verify_salesforce,
)

__all__ = ["PATHS", "WebhookEndpoint", "WebhookSettings"]

log = structlog.get_logger("leadsync.webhooks")

#: the endpoint of each CRM
PATHS: Final = {"hubspot": "/webhooks/hubspot", "salesforce": "/webhooks/salesforce"}


@dataclass(frozen=True)
class WebhookSettings:
    """The ``webhooks:`` config section as the daemon uses it (secrets as plain strings, never logged)."""

    crm: str
    secret: str
    batch_window_s: float = 2.0
    queue_size: int = 10_000
    max_age_s: float = 300.0
    max_body_bytes: int = 1 << 20
    public_url: str | None = None
    salesforce_org_id: str | None = None


class _TooLarge(Exception):
    pass


#: ``(crm, result, count)``: the metric feed
Count = Callable[[str, str, int], None]


class WebhookEndpoint:
    """The WSGI app mounted under ``/webhooks/`` on the daemon's HTTP port."""

    def __init__(
        self,
        settings: WebhookSettings,
        queue: NoticeQueue,
        *,
        count: Count,
        active: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self._count = count
        #: whether this replica works (holds the lease); a standby answers 2xx and queues nothing
        self._active = active
        self._clock = clock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        crm = self.settings.crm
        if environ.get("PATH_INFO") != PATHS[crm]:
            return _answer(start_response, "404 Not Found", {"error": "not found", "endpoint": PATHS[crm]})
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, "405 Method Not Allowed", {"error": "POST only"})
        headers = _headers(environ)
        now = self._clock()
        soap = False
        try:
            if crm == "hubspot":
                notices = self._hubspot(environ, headers, now)
            else:
                notices, soap = self._salesforce(environ, headers, now)
        except Rejected as exc:
            self._count(crm, exc.reason, 1)
            log.warning("webhooks.rejected", crm=crm, result=exc.reason, remote=environ.get("REMOTE_ADDR"))
            return _answer(start_response, "401 Unauthorized", {"error": "unauthorized"})
        except Malformed as exc:
            self._count(crm, "malformed", 1)
            log.warning("webhooks.malformed", crm=crm, problem=str(exc), remote=environ.get("REMOTE_ADDR"))
            return _answer(start_response, "400 Bad Request", {"error": "malformed notification"})
        except _TooLarge:
            self._count(crm, "too_large", 1)
            return _answer(start_response, "413 Content Too Large", {"error": "body too large"})
        accepted = self._accept(notices)
        if soap:
            start_response(
                "200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(SALESFORCE_ACK)))]
            )
            return [SALESFORCE_ACK]
        return _answer(start_response, "200 OK", {"accepted": accepted})

    def _accept(self, notices: list[Notice]) -> int:
        crm = self.settings.crm
        if not notices:
            return 0
        if not self._active():
            self._count(crm, "standby", len(notices))
            return 0
        offered = self.queue.offer(notices)
        for result, n in (("accepted", offered.queued), ("duplicate", offered.merged), ("overflow", offered.dropped)):
            if n:
                self._count(crm, result, n)
        if offered.dropped:
            log.warning("webhooks.queue_full", crm=crm, dropped=offered.dropped, capacity=self.queue.capacity)
        return offered.queued + offered.merged

    def _read_body(self, environ: Mapping[str, Any]) -> bytes:
        limit = self.settings.max_body_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > limit:
            raise _TooLarge
        stream = environ["wsgi.input"]
        body: bytes = stream.read(length) if length >= 0 else stream.read(limit + 1)
        if len(body) > limit:
            raise _TooLarge
        return body

    def _uri(self, environ: Mapping[str, Any], headers: Mapping[str, str]) -> str:
        """The URI as HubSpot signed it: the configured public URL, else this request's own, URL-decoded."""
        path = str(environ.get("PATH_INFO") or "")
        query = str(environ.get("QUERY_STRING") or "")
        tail = path + (f"?{query}" if query else "")
        if self.settings.public_url:
            base = self.settings.public_url.rstrip("/")
            base = base.removesuffix(PATHS["hubspot"])
        else:
            scheme = headers.get("X-Forwarded-Proto") or str(environ.get("wsgi.url_scheme") or "http")
            host = headers.get("Host") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
            base = f"{scheme}://{host}"
        return unquote(base + tail)

    def _hubspot(self, environ: Mapping[str, Any], headers: Mapping[str, str], now: float) -> list[Notice]:
        check_fresh(headers.get(HUBSPOT_TIMESTAMP), now, self.settings.max_age_s, unit_ms=True)
        if not headers.get(HUBSPOT_SIGNATURE):
            raise Rejected("unsigned")
        body = self._read_body(environ)
        verify_hubspot(self.settings.secret, "POST", self._uri(environ, headers), body, headers)
        return parse_hubspot(body, now)

    def _salesforce(
        self, environ: Mapping[str, Any], headers: Mapping[str, str], now: float
    ) -> tuple[list[Notice], bool]:
        query = parse_qs(str(environ.get("QUERY_STRING") or ""))
        query_secret = query.get("secret", [None])[0]
        secret, max_age = self.settings.secret, self.settings.max_age_s
        verify_salesforce(secret, headers, query_secret, None, now, max_age)  # the header checks, body unread
        body = self._read_body(environ)
        verify_salesforce(secret, headers, query_secret, body, now, max_age)
        notices, org, soap = parse_salesforce(body, headers.get("Content-Type") or "", now)
        expected_org = self.settings.salesforce_org_id
        if soap and expected_org and (org or "")[:15] != expected_org[:15]:
            raise Rejected("forged")
        return notices, soap


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """Request headers by their usual spelling, looked up case-insensitively."""
    return _Caseless(
        {
            key[5:].replace("_", "-"): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_") and isinstance(value, str)
        }
        | {"CONTENT-TYPE": str(environ.get("CONTENT_TYPE") or "")}
    )


class _Caseless(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.upper(), default)


def _answer(start_response: Callable[..., Any], status: str, body: Mapping[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
