"""Associations v4 between contacts and activity objects: batch read and one object's list, keyset-paged."""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    gc_paused,
)
from connectors.sandbox.hubspot._base import (
    _CONTACT_TYPES,
    PortalError,
    _int_id,
    _int_param,
    _iso_ms,
    _standard_error,
)
from connectors.sandbox.hubspot._http import HubSpotRoutes
from connectors.sandbox.hubspot.activity_types import (
    ASSOCIATION_BATCH_MAX_INPUTS,
    ASSOCIATION_PAGE_SIZE,
    NO_ASSOCIATIONS_SUBCATEGORY,
    EngagementType,
    _cursor,
    _cursor_id,
)
from connectors.sandbox.hubspot.engagements import EngagementsPortal


class AssociationsPortal(EngagementsPortal):
    """Association reads in either direction between contacts and activity types."""

    def _association_pair(self, from_type: str, to_type: str) -> tuple[EngagementType | None, EngagementType | None]:
        """Both sides of an association read: None stands for contacts.

        :raises PortalError: 400 when a side is neither contacts nor an activity type.
        """
        sides: list[EngagementType | None] = []
        for name in (from_type, to_type):
            if name.lower() in _CONTACT_TYPES:
                sides.append(None)
            else:
                sides.append(self._spec(name))
        return sides[0], sides[1]

    def _associated(self, source: EngagementType | None, raw_id: str, target: EngagementType | None) -> list[int]:
        """Ids associated with one object, ascending (empty for unknown or archived objects)."""
        key = _int_id(raw_id)
        if key is None:
            return []
        if source is None:
            if target is None or key not in self._contacts:
                return []
            self._materialize(key)
            return self._activity.get(key, {}).get(target.name, [])
        engagement = self._engagement(key)
        if target is not None or engagement is None or engagement.spec is not source:
            return []
        return sorted(c for c in engagement.contacts if c in self._contacts)

    def associations_page(
        self, from_type: str, object_id: str, to_type: str, *, after: str | None = None, limit: int | None = None
    ) -> tuple[list[dict[str, Any]], str | None, int]:
        """One page of one object's associations: (``to`` entries, next cursor, total associated)."""
        with self.lock:
            source, target = self._association_pair(from_type, to_type)
            ids = self._associated(source, object_id, target)
            type_id = source.to_contact if source is not None else target.from_contact if target is not None else 1
            size = limit or self.association_page_size
            start = bisect.bisect_right(ids, _cursor_id(after)) if after else 0
            page = ids[start : start + size]
            kind = [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]
            entries = [{"toObjectId": i, "associationTypes": kind} for i in page]
            nxt = _cursor(type_id, page[-1]) if page and start + size < len(ids) else None
            return entries, nxt, len(ids)

    def read_associations(
        self, from_type: str, to_type: str, inputs: Any
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``POST /crm/v4/associations/{from}/{to}/batch/read``: (results, errors).

        An object without associations, or unknown, is an error entry (``NO_ASSOCIATIONS_FOUND``, so the
        answer is a 207), as in HubSpot; each result pages its own ``to`` list with ``paging.next.after``.

        :raises PortalError: 400 for an unknown object type, a bad cursor, or more than 1000 inputs.
        """
        with self.lock:
            if not isinstance(inputs, list) or any(not isinstance(i, Mapping) for i in inputs):
                raise PortalError(400, "VALIDATION_ERROR", "inputs must be a list of objects")
            if len(inputs) > ASSOCIATION_BATCH_MAX_INPUTS:
                raise PortalError(
                    400,
                    "VALIDATION_ERROR",
                    f"Batch input limit exceeded: {len(inputs)} inputs given, the maximum is "
                    f"{ASSOCIATION_BATCH_MAX_INPUTS}",
                    context={"maxInputs": [str(ASSOCIATION_BATCH_MAX_INPUTS)]},
                )
            source, target = self._association_pair(from_type, to_type)
            from_name = source.singular if source is not None else "contact"
            to_name = target.singular if target is not None else "contact"
            results: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            with gc_paused():
                for item in inputs:
                    raw_id = str(item.get("id", ""))
                    after = item.get("after")
                    entries, nxt, total = self.associations_page(from_type, raw_id, to_type, after=after or None)
                    if not total:
                        errors.append(
                            {
                                **_standard_error(
                                    "OBJECT_NOT_FOUND", f"No {to_name} is associated with {from_name} {raw_id}.", []
                                ),
                                "subCategory": NO_ASSOCIATIONS_SUBCATEGORY,
                                "context": {
                                    "fromObjectId": [raw_id],
                                    "fromObjectType": [from_name],
                                    "toObjectType": [to_name],
                                },
                            }
                        )
                        continue
                    result: dict[str, Any] = {"from": {"id": raw_id}, "to": entries}
                    if nxt is not None:
                        result["paging"] = {"next": {"after": nxt}}
                    results.append(result)
            return results, errors

    # batch operations (the HTTP layer renders the results)


class AssociationsRoutes(HubSpotRoutes):
    """``/crm/v4/associations/{from}/{to}/batch/read`` and ``/crm/v4/objects/{type}/{id}/associations/{to}``."""

    def _batch_read_associations(self, request: Request, fromObjectType: str, toObjectType: str) -> Response:
        started = _iso_ms(time.time_ns() // 1_000_000)
        results, errors = self.portal.read_associations(
            fromObjectType, toObjectType, self._body(request).get("inputs") or []
        )
        return self._batch_body(200, results, errors, started)

    def _list_associations(self, request: Request, objectType: str, objectId: str, toObjectType: str) -> Response:
        limit = _int_param(request.args.get("limit"), "limit", self.portal.association_page_size)
        if not 1 <= limit <= max(ASSOCIATION_PAGE_SIZE, self.portal.association_page_size):
            raise PortalError(
                400, "VALIDATION_ERROR", f"limit must be between 1 and {ASSOCIATION_PAGE_SIZE}, got {limit}"
            )
        after = request.args.get("after") or None
        entries, nxt, _total = self.portal.associations_page(
            objectType, objectId, toObjectType, after=after, limit=limit
        )
        return self._paged(request, entries, limit, nxt)

    # properties
