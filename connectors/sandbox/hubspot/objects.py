"""CRM objects: contact create, read, update, archive, list and batch read/create/update/archive."""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.hubspot._base import (
    _EMAIL_RE,
    MAX_VALUE_LENGTH,
    PortalError,
    _check_batch_size,
    _create_each,
    _error_details,
    _iso_ms,
    _missing_error,
    _ms_of,
    _not_found,
    _page_after,
    _parse_ms,
    _problem,
    _refuse_invalid,
    _split_found,
    _standard_error,
    _validation_message,
)
from connectors.sandbox.hubspot._http import HubSpotRoutes
from connectors.sandbox.hubspot.properties import PropertyDef
from connectors.sandbox.hubspot.store import (
    PortalStore,
    _Contact,
)


class ObjectsPortal(PortalStore):
    """Contact writes with HubSpot's validation, batch operations and listing."""

    def _normalize(self, prop: PropertyDef, raw: Any) -> tuple[str, dict[str, Any] | None]:
        """(stored value, problem) for one written value; ``""`` clears the property."""
        if raw is None:
            return "", None
        value = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        if value == "":
            return "", None
        name = prop.name
        if prop.type == "number":
            try:
                number = float(value.strip())
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                return "", _problem(name, "INVALID_FLOAT", f"{value} was not a valid number.")
            return value.strip(), None
        if prop.type == "bool":
            if value.lower() not in ("true", "false"):
                return "", _problem(
                    name, "INVALID_OPTION", f"{value} was not one of the allowed options: [true, false]"
                )
            return value.lower(), None
        if prop.type == "enumeration":
            parts = value.split(";") if prop.field_type == "checkbox" else [value]
            bad = [p for p in parts if p not in prop.option_values]
            if bad:
                allowed = ", ".join(str(o["value"]) for o in prop.options)
                return "", _problem(name, "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{allowed}]")
            return value, None
        if prop.type in ("datetime", "date"):
            ms = _parse_ms(value)
            if ms is None:
                return "", _problem(name, "INVALID_DATE", f"{value} is not a valid date or datetime")
            if prop.type == "date":
                if ms % 86_400_000:
                    return "", _problem(name, "INVALID_DATE", f"{value} is not at midnight UTC")
                return _iso_ms(ms)[:10], None
            return _iso_ms(ms), None
        return value, None

    def _whole_request_problems(self, inputs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Problems that make HubSpot refuse the whole request (see the module docstring)."""
        problems: list[dict[str, Any]] = []
        for item in inputs:
            for name, raw in (item.get("properties") or {}).items():
                value = raw if isinstance(raw, str) else ""
                if len(value) > MAX_VALUE_LENGTH:
                    problems.append(
                        _problem(
                            name,
                            "MAX_LENGTH_EXCEEDED",
                            f"Property value exceeds the maximum length of {MAX_VALUE_LENGTH} characters",
                        )
                    )
                elif name == "email" and value and not _EMAIL_RE.match(value.strip()):
                    problems.append(_problem(name, "INVALID_EMAIL", f"Email address {value} is invalid"))
        return problems

    def _record_problems(self, properties: Mapping[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Normalized values and the per-record problems of one input."""
        normalized: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        if not isinstance(properties, Mapping):
            return normalized, [_problem("properties", "INVALID_INPUT", "properties must be an object")]
        for name, raw in properties.items():
            prop = self.properties.get(name)
            if prop is None or prop.archived:
                problems.append(_problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if prop.read_only:
                problems.append(
                    _problem(name, "READ_ONLY_VALUE", f"{name} is a read only property; its value cannot be set.")
                )
                continue
            value, problem = self._normalize(prop, raw)
            if problem is not None:
                problems.append(problem)
            else:
                normalized[name] = value
        return normalized, problems

    def _check_whole(self, inputs: Sequence[Mapping[str, Any]]) -> None:
        problems = self._whole_request_problems(inputs)
        if problems:
            raise PortalError(400, "VALIDATION_ERROR", _validation_message(problems), errors=_error_details(problems))

    def create_contact(self, properties: Mapping[str, Any]) -> str:
        """Create a contact the way ``POST /crm/v3/objects/contacts`` does; returns its id.

        :raises PortalError: 400 on invalid values, 409 when the email exists.
        """
        with self.lock:
            self._check_whole([{"properties": properties}])
            values, problems = self._record_problems(properties)
            _refuse_invalid(problems)
            return str(self._create(values).id)

    def update_contact(self, contact_id: str | int, properties: Mapping[str, Any]) -> bool:
        """Update like ``PATCH /crm/v3/objects/contacts/{id}``; returns whether anything changed.

        :raises PortalError: 404 for an unknown id, 400 on invalid values.
        """
        with self.lock:
            contact = self._get(contact_id)
            if contact is None:
                raise _not_found(str(contact_id))
            self._check_whole([{"properties": properties}])
            values, problems = self._record_problems(properties)
            _refuse_invalid(problems)
            return self._apply(contact, values)

    def track_engagement(self, contact_id: str | int, properties: Mapping[str, Any]) -> bool:
        """Change read-only analytics properties the way HubSpot's own tracking does (page views, opens...).

        API clients cannot write these (``update_contact`` refuses them); the demo and tests use this to
        play the part of a visitor. Values are stored as given; the modification timestamp moves.
        """
        with self.lock:
            contact = self._get(contact_id)
            if contact is None:
                raise _not_found(str(contact_id))
            return self._apply(contact, {k: str(v) for k, v in properties.items()})

    def archive_contact(self, contact_id: str | int) -> bool:
        """Archive (soft-delete): the contact leaves list, search and email lookups at once."""
        with self.lock:
            contact = self._get(contact_id)
            if contact is None:
                return False
            del self._contacts[contact.id]
            i = bisect.bisect_left(self._ids, contact.id)
            del self._ids[i]
            self._index_remove(contact)
            email = contact.properties.get("email", "").lower()
            if email and self._by_email.get(email) == contact.id:
                del self._by_email[email]
            contact.archived_ms = self._tick()
            self._archived[contact.id] = contact
            self._recent.pop(contact.id, None)
            self._changed()
            return True

    def bulk_stamp(
        self,
        ids: Iterable[str | int] | None = None,
        *,
        count: int | None = None,
        at: datetime | None = None,
    ) -> int:
        """Give many contacts one identical ``lastmodifieddate``, as a bulk edit in HubSpot does.

        ``ids`` (default: the first ``count`` contacts by id, or all of them); ``at`` (default: the next
        tick of the portal clock). Returns the timestamp in epoch ms. This is how tests build more than
        10,000 records sharing one timestamp.
        """
        with self.lock:
            if ids is None:
                chosen = list(self._contacts.values())[: count if count is not None else None]
            else:
                chosen = [c for c in (self._get(i) for i in ids) if c is not None]
            ms = _ms_of(at) if at is not None else self._tick()
            self._last_ms = max(self._last_ms, ms)
            iso = _iso_ms(ms)
            for contact in chosen:
                self._note_change(contact)
                contact.updated_ms = ms
                contact.properties["lastmodifieddate"] = contact.properties["hs_lastmodifieddate"] = iso
                contact.typed.clear()
            self._by_updated = sorted((c.updated_ms, c.id) for c in self._contacts.values())
            self._changed()
            return ms

    def batch_read(
        self, inputs: Sequence[Mapping[str, Any]], *, id_property: str | None = None, archived: bool = False
    ) -> tuple[list[_Contact], list[str]]:
        with self.lock:
            _check_batch_size(inputs)
            return _split_found(
                inputs,
                lambda key, item: self._lookup(key, id_property or item.get("idProperty"), archived=archived),
            )

    def batch_update(
        self, inputs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[tuple[_Contact, Mapping[str, Any]]], list[dict[str, Any]]]:
        """Apply per-record; returns (updated contacts with their input, HubSpot error objects).

        :raises PortalError: 400 for the whole batch (size, duplicate ids, too-long values, invalid email).
        """
        with self.lock:
            _check_batch_size(inputs)
            counts = Counter(str(i.get("id")) for i in inputs)
            duplicates = sorted(k for k, n in counts.items() if n > 1)
            if duplicates:
                raise PortalError(
                    400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique"
                )
            self._check_whole(inputs)
            done: list[tuple[_Contact, Mapping[str, Any]]] = []
            errors: list[dict[str, Any]] = []
            missing: list[str] = []
            for item in inputs:
                key = str(item.get("id", ""))
                contact = self._lookup(key, item.get("idProperty"))
                if contact is None:
                    missing.append(key)
                    continue
                values, problems = self._record_problems(item.get("properties") or {})
                if problems:
                    errors.append(_standard_error("VALIDATION_ERROR", _validation_message(problems), [key], problems))
                    continue
                try:
                    self._apply(contact, values)
                except PortalError as exc:
                    errors.append(_standard_error(exc.category, exc.message, [key]))
                    continue
                done.append((contact, item))
            if missing:
                errors.insert(0, _missing_error(missing))
            return done, errors

    def batch_create(
        self, inputs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[tuple[_Contact, Mapping[str, Any]]], list[dict[str, Any]]]:
        """Create per record; same whole-batch rules as :meth:`batch_update`."""
        with self.lock:
            _check_batch_size(inputs)
            self._check_whole(inputs)
            return _create_each(inputs, self._record_problems, lambda values, item: (self._create(values), item))

    # listing

    def list_page(self, *, limit: int, after: str | None, archived: bool = False) -> tuple[list[_Contact], str | None]:
        """One page in id order from cursor ``after`` (the id to start at); returns (page, next cursor)."""
        with self.lock:
            if archived:
                ids = sorted(self._archived)
                source = self._archived
            else:
                ids, source = self._ids, self._contacts
            chunk, nxt = _page_after(ids, limit, after)
            return [source[i] for i in chunk], nxt


class ObjectsRoutes(HubSpotRoutes):
    """``/crm/v3/objects/contacts`` (all but search)."""

    def _list(self, request: Request) -> Response:
        limit = self._list_limit(request)
        names = self._names(request.args.getlist("properties"))
        page, nxt = self.portal.list_page(
            limit=limit, after=request.args.get("after"), archived=self._flag(request, "archived")
        )
        return self._paged(request, [self._render(c, names) for c in page], limit, nxt)

    def _read(self, request: Request, contactId: str) -> Response:
        contact = self.portal._lookup(
            contactId, request.args.get("idProperty"), archived=self._flag(request, "archived")
        )
        if contact is None:
            raise _not_found(contactId)
        return json_response(self._render(contact, self._names(request.args.getlist("properties"))))

    def _create(self, request: Request) -> Response:
        body = self._body(request)
        contact_id = self.portal.create_contact(body.get("properties") or {})
        contact = self.portal._get(contact_id)
        assert contact is not None
        names = self._names(list(contact.properties))
        return json_response(self._render(contact, names), 201)

    def _update(self, request: Request, contactId: str) -> Response:
        body = self._body(request)
        properties = body.get("properties") or {}
        contact = self.portal._lookup(contactId, request.args.get("idProperty"))
        if contact is None:
            raise _not_found(contactId)
        self.portal.update_contact(contact.id, properties)
        return json_response(self._render(contact, self._names(list(properties))))

    def _archive(self, request: Request, contactId: str) -> Response:
        self.portal.archive_contact(contactId)
        return Response(status=204)

    def _batch_read(self, request: Request) -> Response:
        started = _iso_ms(time.time_ns() // 1_000_000)
        body = self._body(request)
        found, missing = self.portal.batch_read(
            body.get("inputs") or [], id_property=body.get("idProperty"), archived=self._flag(request, "archived")
        )
        names = self._names(body.get("properties"))
        errors = [_missing_error(missing)] if missing else []
        return self._batch_body(200, [self._render(c, names) for c in found], errors, started)

    def _batch_update(self, request: Request) -> Response:
        started = _iso_ms(time.time_ns() // 1_000_000)
        done, errors = self.portal.batch_update(self._body(request).get("inputs") or [])
        return self._batch_body(200, self._written_results(done), errors, started)

    def _batch_create(self, request: Request) -> Response:
        started = _iso_ms(time.time_ns() // 1_000_000)
        done, errors = self.portal.batch_create(self._body(request).get("inputs") or [])
        return self._batch_body(201, self._written_results(done), errors, started)

    def _written_results(self, done: Sequence[tuple[Any, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        """Batch-write results as HubSpot renders them: the written properties, and the caller's trace id."""
        results = []
        for contact, item in done:
            rendered = self._render(contact, self._names(list((item.get("properties") or {}).keys())))
            if item.get("objectWriteTraceId"):
                rendered["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(rendered)
        return results

    def _batch_archive(self, request: Request) -> Response:
        inputs = self._body(request).get("inputs") or []
        _check_batch_size(inputs)
        for item in inputs:
            self.portal.archive_contact(str(item.get("id", "")))
        return Response(status=204)

    # activity objects (engagements) and associations v4
