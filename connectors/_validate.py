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

__all__ = [
    "check_hubspot_collection",
    "id_type_problem",
    "parse_json_body",
    "require",
    "restricted_picklists",
]


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


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def id_type_problem(value: Any) -> str | None:
    """Why a record's id as sent cannot be used (None: a string, or absent: a missing id is counted apart).

    An id is a string in both APIs; a number may have lost digits on the way (a JSON number past 2**53 in
    any double-based parser), so it may name another record: the record is refused, never written to.
    """
    if value is None or isinstance(value, str):
        return None
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"record id {shown} is a JSON {_json_type(value)}, not the string the API documents"


def restricted_picklists(describe: Any) -> dict[str, frozenset[str]]:
    """Restricted picklist field -> its active values, from a Salesforce sObject describe: the org stores no
    other value in such a field, so a record showing one was not sent as the org holds it. (An unrestricted
    picklist may hold any value loaded through the API: those are not listed.)"""
    fields = describe.get("fields") if isinstance(describe, Mapping) else None
    return {
        str(f["name"]): frozenset(str(v["value"]) for v in f["picklistValues"] if v.get("active", True))
        for f in fields or []
        if isinstance(f, Mapping)
        and f.get("type") in ("picklist", "multipicklist")
        and f.get("restrictedPicklist")
        and f.get("picklistValues")
    }
