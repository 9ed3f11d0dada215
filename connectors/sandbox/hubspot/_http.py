"""The base of the HubSpot route classes: reading request bodies, choosing properties, rendering records."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    Abort,
    SandboxApp,
    json_response,
)
from connectors.sandbox.hubspot._base import (
    _CONTACT_TYPES,
    ALWAYS_RETURNED_PROPERTIES,
    DEFAULT_PROPERTIES,
    LIST_DEFAULT_LIMIT,
    LIST_MAX_LIMIT,
    PortalError,
    _error_body,
    _int_param,
    _iso_ms,
    _requested_names,
)

if TYPE_CHECKING:
    from connectors.sandbox.hubspot.activity_types import _Engagement
    from connectors.sandbox.hubspot.portal import HubSpotPortal
    from connectors.sandbox.hubspot.store import View, _Contact


class HubSpotRoutes(SandboxApp):
    """What every family's handlers use; the handlers themselves live with their API family."""

    portal: HubSpotPortal

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        raw = request.get_data(cache=True)
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Abort(json_response(_error_body("VALIDATION_ERROR", f"Invalid input JSON: {exc}"), 400)) from None
        if not isinstance(body, dict):
            raise Abort(json_response(_error_body("VALIDATION_ERROR", "Invalid input JSON: expected an object"), 400))
        return body

    def _names(self, requested: Iterable[Any] | None) -> list[str]:
        """Properties to render: the requested ones (or the defaults) that exist, plus the always-returned."""
        wanted = _requested_names(requested) if requested else list(DEFAULT_PROPERTIES)
        names = dict.fromkeys(n for n in wanted if n in self.portal.properties)
        names.update(dict.fromkeys(ALWAYS_RETURNED_PROPERTIES))
        return list(names)

    @staticmethod
    def _render(contact: _Contact, names: Sequence[str], view: View | None = None) -> dict[str, Any]:
        props = view if view is not None else contact.properties
        body: dict[str, Any] = {
            "id": str(contact.id),
            "properties": {n: props.get(n) for n in names},
            "createdAt": props.get("createdate") or _iso_ms(contact.created_ms),
            "updatedAt": props.get("lastmodifieddate") or _iso_ms(contact.updated_ms),
            "archived": contact.archived_ms is not None,
        }
        if contact.archived_ms is not None:
            body["archivedAt"] = _iso_ms(contact.archived_ms)
        return body

    @staticmethod
    def _render_associated(obj: _Engagement, names: Sequence[str], *, associations: bool = False) -> dict[str, Any]:
        """An activity object or a deal as HubSpot renders it; ``associations``: with its contacts."""
        body: dict[str, Any] = {
            "id": str(obj.id),
            "properties": {n: obj.properties.get(n) for n in names},
            "createdAt": _iso_ms(obj.created_ms),
            "updatedAt": _iso_ms(obj.updated_ms),
            "archived": False,
        }
        if associations and obj.contacts:
            kind = f"{obj.spec.singular}_to_contact"
            body["associations"] = {"contacts": {"results": [{"id": str(c), "type": kind} for c in obj.contacts]}}
        return body

    @staticmethod
    def _wants_contacts(request: Request) -> bool:
        """Whether a read's ``associations`` parameter asks for the associated contacts."""
        wanted = {n.strip().lower() for a in request.args.getlist("associations") for n in a.split(",")}
        return bool(wanted & _CONTACT_TYPES)

    @staticmethod
    def _list_limit(request: Request, default: int = LIST_DEFAULT_LIMIT, most: int = LIST_MAX_LIMIT) -> int:
        """A list's ``limit`` parameter. :raises PortalError: 400 when it is not a whole number in 1..most."""
        limit = _int_param(request.args.get("limit"), "limit", default)
        if not 1 <= limit <= most:
            raise PortalError(400, "VALIDATION_ERROR", f"limit must be between 1 and {most}, got {limit}")
        return limit

    @staticmethod
    def _paged(request: Request, results: list[dict[str, Any]], limit: int, nxt: str | None) -> Response:
        """A list page's body, with ``paging.next`` (cursor and the link to it) when there is more."""
        body: dict[str, Any] = {"results": results}
        if nxt is not None:
            body["paging"] = {"next": {"after": nxt, "link": HubSpotRoutes._next_link(request, nxt, limit)}}
        return json_response(body)

    @staticmethod
    def _next_link(request: Request, after: str, limit: int | None = None) -> str:
        """``paging.next.link``: this request's URL with the next cursor, its other parameters kept (the
        properties asked for, ``archived``...), so that a client following links gets the same page shape."""
        params = [(k, v) for k, v in request.args.items(multi=True) if k not in ("after", "limit")]
        if limit is not None:
            params.append(("limit", str(limit)))
        params.append(("after", after))
        return f"{request.host_url.rstrip('/')}{request.path}?{urlencode(params)}"

    @staticmethod
    def _object_type(object_type: str) -> None:
        if object_type not in _CONTACT_TYPES:
            raise PortalError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        return request.args.get(name, "false").lower() == "true"

    def _batch_body(
        self, status: int, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str
    ) -> Response:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _iso_ms(time.time_ns() // 1_000_000),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            status = 207
        return json_response(body, status)

    # contacts
