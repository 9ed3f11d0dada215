"""Who may notify leadsync: HubSpot's v3 signature, Salesforce's shared secret or HMAC.

Every check is constant-time (``hmac.compare_digest``) and says why it refused in one word, which the
endpoint counts (``leadsync_webhook_events_total{result=...}``) and never explains to the caller. Header
checks come first, so that a request without a fresh timestamp and a signature is refused before its body
is read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final, Literal

__all__ = [
    "HUBSPOT_SIGNATURE",
    "HUBSPOT_TIMESTAMP",
    "SALESFORCE_SECRET_HEADER",
    "SALESFORCE_SIGNATURE",
    "SALESFORCE_TIMESTAMP",
    "Rejected",
    "check_fresh",
    "hubspot_signature_v3",
    "verify_hubspot",
    "verify_salesforce",
]

HUBSPOT_SIGNATURE: Final = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP: Final = "X-HubSpot-Request-Timestamp"
#: a Flow HTTP callout (Named Credential custom header) or a proxy in front of an Outbound Message
SALESFORCE_SECRET_HEADER: Final = "X-Leadsync-Secret"
#: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``, with the timestamp (Unix seconds) in its own header
SALESFORCE_SIGNATURE: Final = "X-Leadsync-Signature"
SALESFORCE_TIMESTAMP: Final = "X-Leadsync-Timestamp"

#: why a request was refused: no or a bad signature, a timestamp outside the allowed age
Reason = Literal["forged", "replayed", "unsigned"]


class Rejected(Exception):
    """A request that is not verifiably from the CRM; ``reason`` is the metric's result label."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


def hubspot_signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(client secret, method + URI + body + timestamp)), as HubSpot computes it."""
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def check_fresh(timestamp: str | None, now_s: float, max_age_s: float, *, unit_ms: bool) -> None:
    """The timestamp header is present, a number, and within ``max_age_s`` of now (either way: clock skew).

    :raises Rejected: "unsigned" without a usable timestamp, "replayed" for an old (or far-future) one.
    """
    try:
        value = float(timestamp) if timestamp else None
    except ValueError:
        value = None
    if value is None:
        raise Rejected("unsigned")
    if abs(now_s - (value / 1000 if unit_ms else value)) > max_age_s:
        raise Rejected("replayed")


def verify_hubspot(secret: str, method: str, uri: str, body: bytes, headers: Mapping[str, str]) -> None:
    """:raises Rejected: "forged" when ``X-HubSpot-Signature-v3`` does not match (freshness is checked before)."""
    given = headers.get(HUBSPOT_SIGNATURE) or ""
    expected = hubspot_signature_v3(secret, method, uri, body, headers.get(HUBSPOT_TIMESTAMP) or "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Rejected("forged")


def salesforce_hmac(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Leadsync-Signature`` value a Flow (Apex ``Crypto.generateMac``) or proxy sends."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_salesforce(
    secret: str,
    headers: Mapping[str, str],
    query_secret: str | None,
    body: bytes | None,
    now_s: float,
    max_age_s: float,
) -> None:
    """A shared secret (header, or ``?secret=`` in an Outbound Message's URL) or an HMAC over timestamp and body.

    With ``body`` None only the secret forms are checked (the HMAC one needs the body: call again with it).

    :raises Rejected: "unsigned" with no credential, "forged" with a wrong one, "replayed" for an old HMAC.
    """
    shared = headers.get(SALESFORCE_SECRET_HEADER) or query_secret
    if shared is not None:
        if not hmac.compare_digest(shared.encode(), secret.encode()):
            raise Rejected("forged")
        return
    signature = headers.get(SALESFORCE_SIGNATURE)
    if not signature:
        raise Rejected("unsigned")
    timestamp = headers.get(SALESFORCE_TIMESTAMP)
    check_fresh(timestamp, now_s, max_age_s, unit_ms=False)
    if body is None:
        return
    expected = salesforce_hmac(secret, timestamp or "", body)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise Rejected("forged")
