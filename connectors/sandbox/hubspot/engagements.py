"""Activity objects (engagements): create, read, list, batch, and what logging one does to its contact."""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    gc_paused,
    json_response,
)
from connectors.sandbox.hubspot._base import (
    _CONTACT_TYPES,
    PortalError,
    _check_batch_size,
    _count,
    _create_each,
    _insert_id,
    _int_id,
    _iso_ms,
    _missing_error,
    _ms_of,
    _not_found,
    _page_after,
    _parse_ms,
    _problem,
    _refuse_invalid,
    _requested_names,
    _split_found,
)
from connectors.sandbox.hubspot.activity_types import (
    _ENGAGEMENT_COMMON,
    _ENGAGEMENT_DATETIMES,
    _ENGAGEMENT_NUMBERS,
    _ENGAGEMENT_READ_ONLY,
    _KIND_OBJECTS,
    COUNTER_KINDS,
    ENGAGEMENT_DEFAULT_PROPERTIES,
    ENGAGEMENT_TYPES,
    EngagementType,
    _Engagement,
    engagement_type,
    seeded_engagements,
)
from connectors.sandbox.hubspot.objects import ObjectsRoutes
from connectors.sandbox.hubspot.store import (
    PortalStore,
    _Contact,
)


class EngagementsPortal(PortalStore):
    """Activity objects, built lazily for seeded contacts, and what logging one does to the contact."""

    def _materialize(self, contact_id: int) -> None:
        pending = self._lazy_people.pop(contact_id, None)
        if pending is None:
            return
        start, size, person = pending
        for k, (ms, spec, props) in enumerate(seeded_engagements(person)):
            engagement_id = start + k if k < size else self._take_engagement_id()
            self._store_engagement(_Engagement(engagement_id, spec, props, ms, ms, [contact_id]), ms)

    def _materialize_all(self) -> None:
        with gc_paused():
            for contact_id in list(self._lazy_people):
                self._materialize(contact_id)

    def _store_engagement(self, engagement: _Engagement, ms: int) -> None:
        props = engagement.properties
        props.setdefault("hs_timestamp", _iso_ms(ms))
        props["hs_createdate"] = _iso_ms(engagement.created_ms)
        props["hs_lastmodifieddate"] = _iso_ms(engagement.updated_ms)
        props["hs_object_id"] = str(engagement.id)
        self._engagements[engagement.id] = engagement
        for contact_id in engagement.contacts:
            _insert_id(self._activity.setdefault(contact_id, {}).setdefault(engagement.spec.name, []), engagement.id)

    def _engagement(self, engagement_id: int | None) -> _Engagement | None:
        if engagement_id is None:
            return None
        found = self._engagements.get(engagement_id)
        if found is None and self._lazy_people:
            i = bisect.bisect_right(self._lazy_starts, engagement_id) - 1
            if i >= 0:
                self._materialize(self._lazy_owners[i])
                found = self._engagements.get(engagement_id)
        return found

    @staticmethod
    def _spec(object_type: str) -> EngagementType:
        spec = engagement_type(object_type)
        if spec is None:
            raise PortalError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
        return spec

    def engagement(self, engagement_id: str | int) -> dict[str, str] | None:
        """A copy of an activity object's properties, or None."""
        with self.lock:
            found = self._engagement(_int_id(engagement_id))
            return dict(found.properties) if found else None

    def engagements(self, contact_id: str | int, object_type: str | None = None) -> list[dict[str, Any]]:
        """Ground truth for tests: the contact's activity objects ``{"id", "type", "properties"}`` by id."""
        with self.lock:
            key = _int_id(contact_id)
            if key is None:
                return []
            self._materialize(key)
            by_type = self._activity.get(key, {})
            names = [self._spec(object_type).name] if object_type else list(ENGAGEMENT_TYPES)
            ids = sorted(i for name in names for i in by_type.get(name, []))
            return [
                {
                    "id": str(i),
                    "type": self._engagements[i].spec.name,
                    "properties": dict(self._engagements[i].properties),
                }
                for i in ids
            ]

    def _engagement_values(self, spec: EngagementType, properties: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Normalized values and problems of an activity object's input (``hs_timestamp`` is required)."""
        if not isinstance(properties, Mapping):
            return {}, [_problem("properties", "INVALID_INPUT", "properties must be an object")]
        known = set(_ENGAGEMENT_COMMON) | set(spec.properties)
        values: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for name, raw in properties.items():
            if name not in known:
                problems.append(_problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if name in _ENGAGEMENT_READ_ONLY:
                problems.append(
                    _problem(name, "READ_ONLY_VALUE", f"{name} is a read only property; its value cannot be set.")
                )
                continue
            value = "" if raw is None else ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
            if not value:
                continue
            if name in _ENGAGEMENT_DATETIMES:
                ms = _parse_ms(value)
                if ms is None:
                    problems.append(_problem(name, "INVALID_DATE", f"{value} is not a valid date or datetime"))
                    continue
                value = _iso_ms(ms)
            elif name in _ENGAGEMENT_NUMBERS:
                try:
                    float(value)
                except ValueError:
                    problems.append(_problem(name, "INVALID_FLOAT", f"{value} was not a valid number."))
                    continue
            elif name in spec.enums and value not in spec.enums[name]:
                allowed = ", ".join(sorted(spec.enums[name]))
                problems.append(
                    _problem(name, "INVALID_OPTION", f"{value} was not one of the allowed options: [{allowed}]")
                )
                continue
            values[name] = value
        if not values.get("hs_timestamp") and not any(p["name"] == "hs_timestamp" for p in problems):
            problems.append(_problem("hs_timestamp", "REQUIRED_FIELD", 'Property "hs_timestamp" is required'))
        return values, problems

    def _new_engagement(
        self, spec: EngagementType, values: Mapping[str, str], contacts: Sequence[_Contact]
    ) -> _Engagement:
        ms = self._tick()
        for contact in contacts:
            self._materialize(contact.id)  # seeded ids first, so the new one stays the newest
        engagement = _Engagement(self._take_engagement_id(), spec, dict(values), ms, ms, [c.id for c in contacts])
        self._store_engagement(engagement, ms)
        for contact in contacts:
            self._log_activity(contact, engagement)
        return engagement

    def _log_activity(self, contact: _Contact, engagement: _Engagement) -> None:
        """What HubSpot does to a contact when an activity is logged on it: the record is modified.

        ``notes_last_updated`` (last activity) and, for calls, meetings and sent emails,
        ``notes_last_contacted`` move forward; an incoming email counts as a reply (``hs_email_replied``).
        """
        props, spec = contact.properties, engagement.spec
        at = engagement.properties["hs_timestamp"]
        at_ms = _parse_ms(at) or 0
        updates: dict[str, str] = {}

        def later(name: str) -> None:
            current = _parse_ms(props.get(name, ""))
            if current is None or current < at_ms:
                updates[name] = at

        later("notes_last_updated")
        incoming = spec.name == "emails" and engagement.properties.get("hs_email_direction") == "INCOMING_EMAIL"
        if spec.name in ("calls", "meetings") or (spec.name == "emails" and not incoming):
            later("notes_last_contacted")
        if incoming:
            updates["hs_email_replied"] = str(_count(props.get("hs_email_replied")) + 1)
            later("hs_sales_email_last_replied")
        if not self._apply(contact, updates):
            self._note_change(contact)
            self._stamp(contact, self._tick())

    def _track_counters(self, contact: _Contact, kind: str, at: str) -> None:
        """A counter-only event (see :data:`COUNTER_KINDS`): counters move, the contact is modified."""
        props = contact.properties
        at_ms = _parse_ms(at) or 0
        updates: dict[str, str] = {}

        def bump(name: str, floor: int = 0) -> int:
            value = max(_count(props.get(name)) + 1, floor)
            updates[name] = str(value)
            return value

        def later(name: str) -> None:
            current = _parse_ms(props.get(name, ""))
            if current is None or current < at_ms:
                updates[name] = at

        if kind == "email_open":
            bump("hs_email_open")
            later("hs_email_last_open_date")
        elif kind == "email_click":
            clicks = bump("hs_email_click")
            if _count(props.get("hs_email_open")) < clicks:  # a click implies an open
                updates["hs_email_open"] = str(clicks)
        elif kind in ("visit", "page_view"):
            if kind == "visit" or not _count(props.get("hs_analytics_num_visits")):
                bump("hs_analytics_num_visits")
            bump("hs_analytics_num_page_views")
            later("hs_analytics_last_visit_timestamp")
            if not props.get("hs_analytics_first_timestamp"):
                updates["hs_analytics_first_timestamp"] = at
        elif kind == "form_submission":
            bump("num_conversion_events")
        if not self._apply(contact, updates):
            self._note_change(contact)
            self._stamp(contact, self._tick())

    def add_engagement(
        self,
        contact_id: str | int,
        kind: str,
        timestamp: datetime | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Log an activity on a contact, as a rep or HubSpot's tracking would; returns the new object's id.

        ``kind``: an activity object type (``emails``, ``calls``, ``meetings``, ``notes``, ``tasks``, or its
        singular), a canonical kind that makes one (``email_sent``, ``email_reply``, ``call``, ``meeting``,
        ``note``, ``task``, with sensible default properties), or a counter-only kind
        (:data:`COUNTER_KINDS`: no object, returns None). Either way the contact's ``lastmodifieddate``
        moves and its counters stay consistent. ``timestamp`` (default: now) becomes ``hs_timestamp``.

        :raises PortalError: 404 for an unknown contact, 400 for an unknown kind or invalid properties.
        """
        with self.lock:
            contact = self._get(contact_id)
            if contact is None:
                raise _not_found(str(contact_id))
            at = _iso_ms(_ms_of(timestamp) if timestamp is not None else time.time_ns() // 1_000_000)
            name = kind.strip().lower()
            if name in COUNTER_KINDS:
                self._track_counters(contact, name, at)
                return None
            object_type, defaults = _KIND_OBJECTS.get(name, (name, {}))
            spec = self._spec(object_type)
            values, problems = self._engagement_values(spec, {"hs_timestamp": at, **defaults, **(properties or {})})
            _refuse_invalid(problems)
            return str(self._new_engagement(spec, values, [contact]).id)

    # one type of objects associated with contacts: the hooks a family overrides (deals do, in DealsPortal)

    def _family(self, object_type: str) -> EngagementType:
        """The type an ``objectType`` names. :raises PortalError: 400 when no family has it."""
        return self._spec(object_type)

    def _values(self, spec: EngagementType, properties: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """(normalized values, problems) of a create request's ``properties``."""
        return self._engagement_values(spec, properties)

    def _new_object(self, spec: EngagementType, values: dict[str, str], contacts: Sequence[_Contact]) -> _Engagement:
        return self._new_engagement(spec, values, contacts)

    def _find(self, spec: EngagementType, object_id: str | int) -> _Engagement | None:
        engagement = self._engagement(_int_id(object_id))
        return engagement if engagement is not None and engagement.spec is spec else None

    def _stored(self, spec: EngagementType) -> tuple[list[int], Mapping[int, _Engagement]]:
        """The ids of a type ascending, and the objects by id (for listing)."""
        self._materialize_all()
        return sorted(e.id for e in self._engagements.values() if e.spec is spec), self._engagements

    def read_names(self, spec: EngagementType, requested: Iterable[Any] | None) -> list[str]:
        """Properties a read returns: the requested ones the type has (unknown ones are left out, as HubSpot
        does), plus the type's defaults."""
        known = set(_ENGAGEMENT_COMMON) | set(spec.properties)
        names = dict.fromkeys(n for n in _requested_names(requested) if n in known)
        names.update(dict.fromkeys(ENGAGEMENT_DEFAULT_PROPERTIES))
        return list(names)

    # the operations of every such type

    def create_object(self, object_type: str, body: Mapping[str, Any]) -> _Engagement:
        """``POST /crm/v3/objects/{objectType}``: properties plus ``associations`` to contacts.

        :raises PortalError: 400 for invalid properties, associations or object type.
        """
        with self.lock:
            spec = self._family(object_type)
            values, problems = self._values(spec, body.get("properties") or {})
            _refuse_invalid(problems)
            return self._new_object(spec, values, self._association_targets(spec, body.get("associations")))

    def batch_create_objects(
        self, object_type: str, inputs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[_Engagement], list[dict[str, Any]]]:
        """Create per record: (created objects, HubSpot error objects); more than 100 inputs is a 400."""
        with self.lock:
            spec = self._family(object_type)
            _check_batch_size(inputs)
            return _create_each(
                inputs,
                lambda properties: self._values(spec, properties),
                lambda values, item: self._new_object(
                    spec, values, self._association_targets(spec, item.get("associations"))
                ),
            )

    def batch_read_objects(
        self, object_type: str, inputs: Sequence[Mapping[str, Any]]
    ) -> tuple[EngagementType, list[_Engagement], list[str]]:
        """(type, found objects in input order, missing ids); more than 100 inputs is a 400."""
        with self.lock:
            spec = self._family(object_type)
            _check_batch_size(inputs)
            found, missing = _split_found(inputs, lambda key, _item: self._find(spec, key))
            return spec, found, missing

    def list_objects(
        self, object_type: str, *, limit: int, after: str | None
    ) -> tuple[EngagementType, list[_Engagement], str | None]:
        """One page of a type in id order from cursor ``after`` (an id, as for contacts)."""
        with self.lock:
            spec = self._family(object_type)
            ids, stored = self._stored(spec)
            chunk, nxt = _page_after(ids, limit, after)
            return spec, [stored[i] for i in chunk], nxt


class EngagementsRoutes(ObjectsRoutes):
    """``/crm/v3/objects/{objectType}`` for every type associated with contacts: the activity types, and deals
    (their static routes bind ``objectType``); contacts fall through to their own routes."""

    def _list_objects(self, request: Request, objectType: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._list(request)
        limit = self._list_limit(request)
        spec, page, nxt = self.portal.list_objects(objectType, limit=limit, after=request.args.get("after"))
        names = self.portal.read_names(spec, request.args.getlist("properties"))
        with_contacts = self._wants_contacts(request)
        return self._paged(
            request, [self._render_associated(o, names, associations=with_contacts) for o in page], limit, nxt
        )

    def _read_object(self, request: Request, objectType: str, objectId: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._read(request, objectId)
        spec, found, _missing = self.portal.batch_read_objects(objectType, [{"id": objectId}])
        if not found:
            raise _not_found(objectId)
        names = self.portal.read_names(spec, request.args.getlist("properties"))
        return json_response(self._render_associated(found[0], names, associations=self._wants_contacts(request)))

    def _create_object(self, request: Request, objectType: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._create(request)
        created = self.portal.create_object(objectType, self._body(request))
        names = self.portal.read_names(created.spec, list(created.properties))
        return json_response(self._render_associated(created, names), 201)

    def _batch_create_objects(self, request: Request, objectType: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._batch_create(request)
        started = _iso_ms(time.time_ns() // 1_000_000)
        done, errors = self.portal.batch_create_objects(objectType, self._body(request).get("inputs") or [])
        results = [self._render_associated(o, self.portal.read_names(o.spec, list(o.properties))) for o in done]
        return self._batch_body(201, results, errors, started)

    def _batch_read_objects(self, request: Request, objectType: str) -> Response:
        if objectType.lower() in _CONTACT_TYPES:
            return self._batch_read(request)
        started = _iso_ms(time.time_ns() // 1_000_000)
        body = self._body(request)
        with gc_paused():
            spec, found, missing = self.portal.batch_read_objects(objectType, body.get("inputs") or [])
        names = self.portal.read_names(spec, body.get("properties"))
        errors = [_missing_error(missing, spec.singular.upper())] if missing else []
        return self._batch_body(200, [self._render_associated(o, names) for o in found], errors, started)
