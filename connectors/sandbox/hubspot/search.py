"""CRM search: filter groups, one sort, paging up to the result cap, and the index lag behind writes."""

from __future__ import annotations

import bisect
import fnmatch
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    gc_paused,
    json_response,
)
from connectors.sandbox.hubspot._base import (
    _INF,
    _TOKEN_SPLIT_RE,
    SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_LIMIT,
    PortalError,
    _int_param,
    _parse_ms,
)
from connectors.sandbox.hubspot._http import HubSpotRoutes
from connectors.sandbox.hubspot.properties import PropertyDef
from connectors.sandbox.hubspot.store import (
    PortalStore,
    View,
    _Contact,
)

_Predicate = Callable[[_Contact, View], bool]
_Getter = Callable[[_Contact, View], Any]


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _narrowest(ranges: list[list[int]]) -> list[int]:
    """The smallest id set an index gives for one filter group (the group's other filters still apply)."""
    return min(ranges, key=len)


def _combine(groups: Sequence[tuple[list[_Predicate], Any]]) -> _Predicate | None:
    """One predicate for OR-of-AND filter groups, without generator overhead in the common shapes."""
    if not groups:
        return None

    def all_of(preds: tuple[_Predicate, ...]) -> _Predicate:
        return lambda c, v: all(p(c, v) for p in preds)

    per_group = tuple(preds[0] if len(preds) == 1 else all_of(tuple(preds)) for preds, _ranges in groups)
    if len(per_group) == 1:
        return per_group[0]
    return lambda c, v: any(g(c, v) for g in per_group)


def _check_limit(what: str, given: int, maximum: int, sub_category: str) -> None:
    """HubSpot's 400 for a search naming more ``what`` than its ``SearchLimits`` allow."""
    if given > maximum:
        raise PortalError(
            400,
            "VALIDATION_ERROR",
            f"Too many {what}: {given} given, the maximum is {maximum}",
            subCategory=sub_category,
        )


class SearchPortal(PortalStore):
    """``POST /crm/v3/objects/contacts/search`` over the store, with its indexes and its lag."""

    def search(self, body: Mapping[str, Any]) -> tuple[int, list[tuple[_Contact, View]], int | None]:
        """Run a search request body; returns (total, page of (contact, searched version), next offset).

        :raises PortalError: 400 for invalid requests, filter limits, and paging at or past the result cap.
        """
        with self.lock:
            limit = _int_param(body.get("limit"), "limit", SEARCH_DEFAULT_LIMIT)
            if not 0 <= limit <= SEARCH_MAX_LIMIT:
                raise PortalError(
                    400, "VALIDATION_ERROR", f"limit must be between 0 and {SEARCH_MAX_LIMIT}, got {limit}"
                )
            after = _int_param(body.get("after"), "after", 0)
            if after < 0:
                raise PortalError(400, "VALIDATION_ERROR", f"after must be a non-negative offset, got {after}")
            if after >= self.search_result_cap:
                raise PortalError(
                    400,
                    "VALIDATION_ERROR",
                    f"Cannot page past {self.search_result_cap} results (after={after}): "
                    "narrow the query, e.g. by a lastmodifieddate or hs_object_id range",
                )
            groups = self._compile_groups(body.get("filterGroups") or [])
            sort = self._compile_sort(body.get("sorts") or [])
            query = str(body.get("query") or "").strip().lower()
            with gc_paused():
                matched = self._matches(body, groups, sort, query)
            total = len(matched)
            end = min(after + limit, self.search_result_cap)
            page = matched[after:end]
            nxt = after + limit if limit and after + limit < total else None
            return total, page, nxt

    def _matches(
        self,
        body: Mapping[str, Any],
        groups: list[tuple[list[_Predicate], list[list[int]]]],
        sort: tuple[_Getter, bool] | None,
        query: str,
    ) -> list[tuple[_Contact, View]]:
        now = time.monotonic()
        lagging = self._lagging(now)
        cache_key = json.dumps(
            [body.get("filterGroups"), body.get("sorts"), body.get("query")], sort_keys=True, default=str
        )
        if not lagging:
            cached = self._search_cache.get(cache_key)
            if cached is not None:
                self._search_cache.move_to_end(cache_key)
                return cached
        predicate = _combine(groups)
        matched: list[tuple[_Contact, View]] = []
        append = matched.append
        for contact in self._candidates(groups, lagging):
            view: View | None = contact.properties
            if lagging and contact.id in lagging and now - contact.changed_at < self.index_lag_s:
                view = contact.indexed
                if view is None:
                    continue  # created too recently to be indexed
            assert view is not None
            if predicate is not None and not predicate(contact, view):
                continue
            if query and not _query_matches(view, query):
                continue
            append((contact, view))
        if sort is not None:
            get, descending = sort
            present = []
            absent = []
            for item in matched:
                value = get(item[0], item[1])
                if value is None:
                    absent.append(item)
                else:
                    present.append((value, item))
            # stable sort over id order: ties stay in id order in both directions
            present.sort(key=_first, reverse=descending)
            matched = [item for _v, item in present]
            matched.extend(absent)
        if not lagging:
            self._search_cache[cache_key] = matched
            while len(self._search_cache) > 16:
                self._search_cache.popitem(last=False)
        return matched

    def _lagging(self, now: float) -> set[int]:
        """Contacts whose latest change search does not see yet."""
        if self.index_lag_s <= 0 or not self._recent:
            return set()
        horizon = now - self.index_lag_s
        for key in [k for k, t in self._recent.items() if t <= horizon]:
            del self._recent[key]
        return set(self._recent)

    def _candidates(
        self, groups: list[tuple[list[_Predicate], list[list[int]]]], lagging: set[int]
    ) -> Iterable[_Contact]:
        """Contacts that may match, in id order: narrowed by the id/timestamp indexes when every group allows."""
        if not groups or any(not ranges for _preds, ranges in groups):
            return self._contacts.values()
        contacts = self._contacts
        if len(groups) == 1 and not lagging:
            ids = sorted(_narrowest(groups[0][1]))
        else:
            wanted: set[int] = set(lagging)
            for _preds, ranges in groups:
                wanted.update(_narrowest(ranges))
            ids = sorted(wanted)
        return [contacts[i] for i in ids if i in contacts]

    def _getter(self, prop: PropertyDef) -> _Getter:
        """A fast ``(contact, view) -> comparable value or None`` for one property."""
        name, ptype = prop.name, prop.type
        if name in ("lastmodifieddate", "hs_lastmodifieddate"):
            return lambda c, v: c.updated_ms if v is c.properties else _typed_value(v.get(name), "datetime")
        if name == "createdate":
            return lambda c, v: c.created_ms if v is c.properties else _typed_value(v.get(name), "datetime")
        if name == "hs_object_id":
            return lambda c, v: c.id
        if ptype not in ("number", "datetime", "date"):

            def text(c: _Contact, v: View) -> str | None:
                value = v.get(name)
                return value.lower() if value else None

            return text

        def cached(c: _Contact, v: View) -> Any:
            if v is c.properties:
                cache = c.typed
                try:
                    return cache[name]
                except KeyError:
                    value = cache[name] = _typed_value(v.get(name), ptype)
                    return value
            return _typed_value(v.get(name), ptype)

        return cached

    def _search_prop(self, name: Any) -> PropertyDef:
        prop = self.properties.get(str(name)) if name else None
        if prop is None or prop.archived:
            raise PortalError(
                400, "VALIDATION_ERROR", f"There was a problem with the request: property {name!r} does not exist"
            )
        return prop

    def _compile_groups(self, raw_groups: Any) -> list[tuple[list[_Predicate], list[list[int]]]]:
        if not isinstance(raw_groups, list):
            raise PortalError(400, "VALIDATION_ERROR", "filterGroups must be a list")
        limits = self.search_limits
        _check_limit("filter groups", len(raw_groups), limits.max_groups, "TOO_MANY_FILTER_GROUPS")
        total = 0
        compiled = []
        for group in raw_groups:
            filters = (group or {}).get("filters") or []
            total += len(filters)
            _check_limit("filters in a group", len(filters), limits.max_filters_per_group, "TOO_MANY_FILTERS")
            preds: list[_Predicate] = []
            ranges: list[list[int]] = []
            for raw in filters:
                pred, narrowed = self._compile_filter(raw)
                preds.append(pred)
                if narrowed is not None:
                    ranges.append(narrowed)
            compiled.append((preds, ranges))
        _check_limit("filters", total, limits.max_filters_total, "TOO_MANY_FILTERS")
        return compiled

    def _compile_sort(self, sorts: Any) -> tuple[_Getter, bool] | None:
        if not isinstance(sorts, list):
            raise PortalError(400, "VALIDATION_ERROR", "sorts must be a list")
        if not sorts:
            return None
        if len(sorts) > 1:
            raise PortalError(400, "VALIDATION_ERROR", "Only one sort is supported per search request")
        rule = sorts[0]
        if isinstance(rule, str):
            name, descending = rule.lstrip("-"), rule.startswith("-")
        elif isinstance(rule, Mapping):
            name = str(rule.get("propertyName") or "")
            direction = str(rule.get("direction") or "ASCENDING").upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise PortalError(400, "VALIDATION_ERROR", f"Invalid sort direction {direction!r}")
            descending = direction == "DESCENDING"
        else:
            raise PortalError(400, "VALIDATION_ERROR", "Invalid sort")
        prop = self._search_prop(name)
        if name == "hs_object_id" and not descending:
            return None  # the natural order
        return self._getter(prop), descending

    def _compile_filter(self, raw: Any) -> tuple[_Predicate, list[int] | None]:
        if not isinstance(raw, Mapping):
            raise PortalError(400, "VALIDATION_ERROR", "Invalid filter")
        name = raw.get("propertyName")
        op = str(raw.get("operator") or "EQ").upper()
        prop = self._search_prop(name)
        ptype = prop.type
        pname = prop.name
        get = self._getter(prop)

        def parse(value: Any) -> Any:
            if value is None:
                raise PortalError(400, "VALIDATION_ERROR", f"Filter on {pname} with {op} needs a value")
            parsed = _typed_value(str(value), ptype)
            if parsed is None:
                raise PortalError(400, "VALIDATION_ERROR", f"{value!r} is not a valid {ptype} value for {pname}")
            return parsed

        pred: _Predicate
        if op == "HAS_PROPERTY":
            return (lambda c, v: bool(v.get(pname))), None
        if op == "NOT_HAS_PROPERTY":
            return (lambda c, v: not v.get(pname)), None
        if op in ("IN", "NOT_IN"):
            raw_values = raw.get("values")
            if not isinstance(raw_values, list):
                raise PortalError(400, "VALIDATION_ERROR", f"Filter on {pname} with {op} needs values")
            members = frozenset(parse(x) for x in raw_values)
            if op == "IN":
                return (lambda c, v: get(c, v) in members), None
            return (lambda c, v: get(c, v) not in members), None
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = str(raw.get("value") or "").strip().lower()
            if not pattern:
                raise PortalError(400, "VALIDATION_ERROR", f"Filter on {pname} with {op} needs a value")

            wildcard = re.compile(fnmatch.translate(pattern)).match if ("*" in pattern or "?" in pattern) else None

            def contains(c: _Contact, v: View) -> bool:
                text = (v.get(pname) or "").lower()
                if not text:
                    return False
                if wildcard is not None:
                    return wildcard(text) is not None or any(wildcard(t) for t in _TOKEN_SPLIT_RE.split(text))
                return pattern == text or pattern in _TOKEN_SPLIT_RE.split(text)

            if op == "CONTAINS_TOKEN":
                return contains, None
            return (lambda c, v: not contains(c, v)), None
        if op not in ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN"):
            raise PortalError(400, "VALIDATION_ERROR", f"Unknown operator {op!r}")
        low = parse(raw.get("value"))
        high = parse(raw.get("highValue")) if op == "BETWEEN" else None
        if op == "BETWEEN":
            pred = lambda c, v: (x := get(c, v)) is not None and low <= x <= high  # noqa: E731
        elif op == "EQ":
            pred = lambda c, v: get(c, v) == low  # noqa: E731
        elif op == "NEQ":
            pred = lambda c, v: get(c, v) != low  # noqa: E731
        elif op == "LT":
            pred = lambda c, v: (x := get(c, v)) is not None and x < low  # noqa: E731
        elif op == "LTE":
            pred = lambda c, v: (x := get(c, v)) is not None and x <= low  # noqa: E731
        elif op == "GT":
            pred = lambda c, v: (x := get(c, v)) is not None and x > low  # noqa: E731
        else:
            pred = lambda c, v: (x := get(c, v)) is not None and x >= low  # noqa: E731
        return pred, self._index_range(pname, op, low, high)

    def _index_range(self, name: str, op: str, low: Any, high: Any) -> list[int] | None:
        """Ids a range filter on an indexed property can match (None: not indexed / not a range)."""
        if op == "NEQ":
            return None
        if name == "hs_object_id":
            arr: list[Any] = self._ids
            lo_key: Callable[[Any], Any] = lambda x: x  # noqa: E731
            hi_key: Callable[[Any], Any] = lambda x: x  # noqa: E731
        elif name in ("lastmodifieddate", "hs_lastmodifieddate"):
            arr = self._by_updated
            lo_key = lambda x: (x, -_INF)  # noqa: E731
            hi_key = lambda x: (x, _INF)  # noqa: E731
        else:
            return None
        start, end = 0, len(arr)
        if op in ("GTE", "EQ", "BETWEEN"):
            start = bisect.bisect_left(arr, lo_key(low))
        elif op == "GT":
            start = bisect.bisect_right(arr, hi_key(low))
        if op in ("LTE", "EQ"):
            end = bisect.bisect_right(arr, hi_key(low))
        elif op == "BETWEEN":
            end = bisect.bisect_right(arr, hi_key(high))
        elif op == "LT":
            end = bisect.bisect_left(arr, lo_key(low))
        if end <= start:
            return []
        if arr is self._ids:
            return self._ids[start:end]
        return [pair[1] for pair in self._by_updated[start:end]]


def _typed_value(value: str | None, ptype: str) -> Any:
    """A stored (or filter) string as the type search compares: float, epoch ms, or lower-case text."""
    if value is None or value == "":
        return None
    if ptype == "number":
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if ptype in ("datetime", "date"):
        return _parse_ms(value)
    return value.lower()


_QUERY_FIELDS = ("firstname", "lastname", "email", "company", "website", "phone")


def _query_matches(view: View, query: str) -> bool:
    return any(query in (view.get(name) or "").lower() for name in _QUERY_FIELDS)


class SearchRoutes(HubSpotRoutes):
    """``POST /crm/v3/objects/contacts/search``."""

    def _search(self, request: Request) -> Response:
        body = self._body(request)
        total, page, nxt = self.portal.search(body)
        names = self._names(body.get("properties"))
        out: dict[str, Any] = {"total": total, "results": [self._render(c, names, view) for c, view in page]}
        if nxt is not None:
            # the next page is the same body with this `after`: the link carries it as a query parameter
            out["paging"] = {"next": {"after": str(nxt), "link": self._next_link(request, str(nxt))}}
        return json_response(out)
