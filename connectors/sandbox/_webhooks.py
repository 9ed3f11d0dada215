"""Change notifications the sandboxes send, the way the vendors do: signed, batched, over real HTTP.

HubSpot app webhooks (``contact.creation`` / ``contact.propertyChange`` events, up to 100 per request, signed
with ``X-HubSpot-Signature-v3``) and Salesforce Outbound Messages (a SOAP ``notifications`` envelope with the
record's ``Id`` and ``SystemModstamp``), so that leadsync's webhook endpoints are tested end to end. A sender
runs one thread: events queue up (the portal never waits for the receiver), are gathered for ``linger_s``
and posted; a failed post is retried (tenacity) a few times, then counted as lost, as a real CRM gives up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

import requests
from tenacity import Retrying, stop_after_attempt, wait_exponential

__all__ = [
    "HUBSPOT_BATCH_MAX",
    "WebhookSender",
    "hubspot_signature_v3",
    "outbound_message",
]

logger = logging.getLogger("leadsync.sandbox.webhooks")

#: HubSpot sends at most this many events in one webhook request
HUBSPOT_BATCH_MAX = 100
#: Salesforce puts at most this many notifications in one outbound message
SALESFORCE_BATCH_MAX = 100

#: ``(events) -> (body, headers)`` for one request
Encoder = Callable[[Sequence[Mapping[str, Any]]], tuple[bytes, dict[str, str]]]


def hubspot_signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """HubSpot's v3 signature: base64 HMAC-SHA256 of method + URI + body + timestamp, keyed by the app's secret."""
    message = method.upper().encode() + uri.encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def outbound_message(org_id: str, action_id: str, sobject: str, notifications: Sequence[Mapping[str, Any]]) -> bytes:
    """A Salesforce Outbound Message envelope: one ``Notification`` per event, each with the sObject's fields."""
    items = []
    for n in notifications:
        fields = "".join(f"<sf:{escape(str(k))}>{escape(str(v))}</sf:{escape(str(k))}>" for k, v in n["fields"].items())
        items.append(
            f"<Notification><Id>{escape(str(n['id']))}</Id>"
            f'<sObject xsi:type="sf:{escape(sobject)}">{fields}</sObject></Notification>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{escape(org_id)}</OrganizationId><ActionId>{escape(action_id)}</ActionId>"
        f'<SessionId xsi:nil="true"/><EnterpriseUrl>https://sandbox.invalid/</EnterpriseUrl>'
        f"<PartnerUrl>https://sandbox.invalid/</PartnerUrl>{''.join(items)}"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


class WebhookSender:
    """Posts queued events to ``url`` in batches of ``batch_max`` from a thread of its own.

    ``sent`` / ``failed`` / ``events`` count requests that the receiver answered 2xx, requests given up, and
    events posted; :meth:`flush` waits until everything queued so far was posted (tests and benchmarks).
    """

    def __init__(
        self,
        url: str,
        encode: Encoder,
        *,
        batch_max: int,
        linger_s: float = 0.05,
        attempts: int = 3,
        timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self._encode = encode
        self._batch_max = batch_max
        self._linger_s = linger_s
        self._attempts = attempts
        self._timeout_s = timeout_s
        self._queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
        self._session = requests.Session()
        self._pending = 0
        self._idle = threading.Condition()
        self.sent = self.failed = self.events = 0
        self._thread = threading.Thread(target=self._loop, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def send(self, event: Mapping[str, Any]) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(event)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event queued so far was posted (or given up); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Post what is queued (each post bounded by the timeout and retries), then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._session.close()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self._linger_s
            while len(batch) < self._batch_max:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._post(batch)
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _post(self, batch: list[Mapping[str, Any]]) -> None:
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self._attempts), wait=wait_exponential(min=0.05, max=1), reraise=True
            ):
                with attempt:
                    body, headers = self._encode(batch)  # signed anew: a retry carries a fresh timestamp
                    response = self._session.post(self.url, data=body, headers=headers, timeout=self._timeout_s)
                    response.raise_for_status()
        except requests.RequestException as exc:
            self.failed += 1
            logger.debug("sandbox webhook to %s given up: %s", self.url, exc)
            return
        self.sent += 1
        self.events += len(batch)


def hubspot_encoder(url: str, secret: str) -> Encoder:
    """Events as HubSpot's JSON array, signed v3 with the app's client secret."""

    def encode(events: Sequence[Mapping[str, Any]]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(list(events)).encode()
        ts = time.time_ns() // 1_000_000
        return body, {
            "Content-Type": "application/json",
            "X-HubSpot-Request-Timestamp": str(ts),
            "X-HubSpot-Signature-v3": hubspot_signature_v3(secret, "POST", url, body, ts),
            "X-HubSpot-Signature-Version": "v3",
        }

    return encode


def salesforce_encoder(org_id: str, secret: str, header: str) -> Encoder:
    """Events as one Outbound Message per sObject type, with the shared secret in ``header``.

    Every event of a batch must be of one sObject type (the sender's caller keeps one sender per type).
    """

    def encode(events: Sequence[Mapping[str, Any]]) -> tuple[bytes, dict[str, str]]:
        sobject = str(events[0]["sobject"])
        body = outbound_message(org_id, "04k000000000001AAA", sobject, events)
        return body, {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""', header: secret}

    return encode
