"""Shape checks on CRM answers, before any of them is trusted.

A 2xx whose body is truncated JSON, a proxy's HTML error page, or JSON without the documented ``results``
list would otherwise read as "an empty last page" and end a pass early, silently. Each check raises
:class:`connectors.errors.MalformedResponse` (retriable): the call is retried like a 5xx and, when the
answer stays wrong, the pass fails instead of moving the watermark past records it never read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.errors import MalformedResponse

__all__ = ["check_hubspot_collection", "parse_json_body", "require"]


def _what(content_type: str | None) -> str:
    return content_type.split(";", 1)[0].strip() if content_type else "no content type"


def parse_json_body(crm: str, what: str, status: int, content_type: str | None, body: bytes | str | None) -> Any:
    """The parsed JSON of an answer that must be JSON (``what`` names the call in the message)."""
    size = len(body or b"")
    if content_type is not None and "json" not in content_type.lower():
        raise MalformedResponse(f"{crm} {what}: answered {status} with {_what(content_type)} ({size} bytes), not JSON")
    try:
        return json.loads(body or b"")
    except ValueError as exc:
        raise MalformedResponse(f"{crm} {what}: answered {status} with malformed JSON ({size} bytes: {exc})") from None


def require(condition: bool, crm: str, what: str, problem: str) -> None:
    """Raise ``MalformedResponse`` naming the call and the ``problem`` unless ``condition`` holds."""
    if not condition:
        raise MalformedResponse(f"{crm} {what}: {problem}")


def check_hubspot_collection(what: str, data: Any) -> None:
    """A HubSpot collection or batch answer: ``results`` a list of objects; ``paging``, when present, with a
    ``next.after`` cursor or no ``next`` at all (absent paging means the last page)."""
    require(isinstance(data, Mapping), "HubSpot", what, f"expected a JSON object, got {type(data).__name__}")
    results = data.get("results")
    require(isinstance(results, list), "HubSpot", what, "the answer has no results list")
    require(all(isinstance(r, Mapping) for r in results), "HubSpot", what, "a result is not an object")
    paging = data.get("paging")
    if paging is None:
        return
    require(isinstance(paging, Mapping), "HubSpot", what, "paging is not an object")
    nxt = paging.get("next")
    if nxt is None:
        return
    after = nxt.get("after") if isinstance(nxt, Mapping) else None
    require(isinstance(after, str) and after != "", "HubSpot", what, "paging.next has no after cursor")
