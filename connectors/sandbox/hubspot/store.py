"""The portal's data store: contacts with their indexes, the clock, seeding, and the writes every family shares."""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.sandbox._server import (
    gc_paused,
)
from connectors.sandbox.hubspot._base import (
    _INF,
    SEARCH_RESULT_CAP,
    PortalError,
    SearchLimits,
    _int_id,
    _iso,
    _iso_ms,
    _ms_of,
    _parse_ms,
)
from connectors.sandbox.hubspot.activity_types import (
    ASSOCIATION_PAGE_SIZE,
    ENGAGEMENT_ID_BASE,
    EngagementType,
    _Engagement,
    _seeded_engagement_count,
)
from connectors.sandbox.hubspot.properties import (
    _STANDARD_GROUPS,
    PropertyDef,
    standard_properties,
)
from connectors.sandbox.synthetic import SyntheticPerson, employee_bucket


@dataclass(slots=True, eq=False)
class _Contact:
    id: int
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None
    #: typed values of ``properties`` for search, filled lazily, cleared on change
    typed: dict[str, Any] = field(default_factory=dict)
    #: the version search still serves while the index lags (None: not indexed yet)
    indexed: dict[str, str] | None = None
    #: monotonic time of the last change (index lag)
    changed_at: float = -_INF


#: one version of a contact's properties (search may serve an older one while its index lags)
View = Mapping[str, str]


def person_properties(person: SyntheticPerson) -> dict[str, str]:
    """The HubSpot property values of a synthetic person (non-empty values only, as HubSpot stores them)."""

    def dt(value: datetime | None) -> str:
        return _iso(value) if value is not None else ""

    props = {
        "email": person.email,
        "firstname": person.first_name,
        "lastname": person.last_name,
        "company": person.company,
        "jobtitle": person.job_title,
        "industry": person.industry,
        "country": person.country,
        "website": f"https://www.{person.company_domain}" if person.company_domain else "",
        "work_email": person.work_email,
        "numemployees": employee_bucket(person.employees),
        "annualrevenue": str(person.annual_revenue) if person.annual_revenue is not None else "",
        "lifecyclestage": person.lifecycle_stage,
        "hs_lead_status": person.lead_status,
        "createdate": dt(person.created_at),
        "hs_email_domain": person.email_domain,
        "hs_email_optout": "true" if person.opted_out else "false",
        "hs_email_hard_bounce_reason": person.hard_bounce_reason,
        "hs_email_bounce": "1" if person.hard_bounced else "0",
        "hs_email_open": str(person.email_opens),
        "hs_email_click": str(person.email_clicks),
        "hs_email_replied": str(person.email_replies),
        "hs_email_last_open_date": dt(person.last_email_open_at),
        "hs_analytics_num_page_views": str(person.page_views),
        "hs_analytics_num_visits": str(person.visits),
        "hs_analytics_first_timestamp": dt(person.first_visit_at),
        "hs_analytics_last_visit_timestamp": dt(person.last_visit_at),
        "num_conversion_events": str(person.form_submissions),
        "hs_lifecyclestage_customer_date": dt(person.customer_at),
    }
    if person.lifecycle_stage and person.lifecycle_stage != "customer":
        # the other stage dates are not modelled; stamp the current stage at the last change
        props[f"hs_lifecyclestage_{person.lifecycle_stage}_date"] = dt(person.updated_at)
    if person.meetings or person.calls:
        props["notes_last_contacted"] = dt(min(person.updated_at, person.customer_at or person.updated_at))
    return {k: v for k, v in props.items() if v}


# engagements (activity objects) and their associations ----------------------------------------------------


class PortalStore:
    """The in-memory HubSpot account's state: contacts with indexes, the property schema, enrollments, a clock.

    Thread-safe: every public method takes :attr:`lock` (re-entrant; the HTTP app holds it around each
    handler). Raises :class:`PortalError` with HubSpot's status/category/message for refused requests. Each
    API family adds its methods in a subclass (see :class:`~connectors.sandbox.hubspot.portal.HubSpotPortal`).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        index_lag_s: float = 0.0,
        search_limits: SearchLimits | None = None,
        search_result_cap: int = SEARCH_RESULT_CAP,
        portal_id: int = 4_242_424,
        association_page_size: int = ASSOCIATION_PAGE_SIZE,
    ) -> None:
        self.lock = threading.RLock()
        self.portal_id = portal_id
        self.index_lag_s = index_lag_s
        self.search_limits = search_limits or SearchLimits()
        self.search_result_cap = search_result_cap
        self._id_rng = random.Random(f"hubspot-ids:{seed}")
        self._next_id = 101 + self._id_rng.randrange(50)
        self._contacts: dict[int, _Contact] = {}
        self._ids: list[int] = []
        self._archived: dict[int, _Contact] = {}
        self._by_email: dict[str, int] = {}
        self._by_updated: list[tuple[int, int]] = []
        self._recent: dict[int, float] = {}
        self._last_ms = 0
        self._version = 0
        self._search_cache: OrderedDict[str, list[tuple[_Contact, View]]] = OrderedDict()
        self._enrollments: list[dict[str, Any]] = []
        #: activity objects by id; per contact, per activity type, the associated ids ascending
        self.association_page_size = association_page_size
        self._engagements: dict[int, _Engagement] = {}
        self._activity: dict[int, dict[str, list[int]]] = {}
        self._next_engagement_id = ENGAGEMENT_ID_BASE
        #: seeded contacts whose activity objects are not built yet: reserved id blocks (see _reserve_engagements)
        self._lazy_starts: list[int] = []
        self._lazy_owners: list[int] = []
        self._lazy_people: dict[int, tuple[int, int, SyntheticPerson]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        for order, (name, label) in enumerate(_STANDARD_GROUPS):
            self.groups[name] = {"name": name, "label": label, "displayOrder": order, "archived": False}
        self.properties: dict[str, PropertyDef] = standard_properties()
        #: called under the lock with (contact id, modification ms, changed values; None: created) on every
        #: contact change (the app's webhook sender listens here)
        self.change_listeners: list[Callable[[int, int, Mapping[str, str] | None], None]] = []
        #: the property schemas of the other standard object types (properties, groups), built on first use
        self.object_schemas: dict[str, tuple[dict[str, PropertyDef], dict[str, dict[str, Any]]]] = {}

    # clock and bookkeeping

    def _tick(self) -> int:
        """Next write timestamp: wall clock in ms, never earlier than an earlier write.

        Writes in the same millisecond share a timestamp (a batch of 100 usually does in HubSpot too), so
        the clock never runs ahead of real time and readers must handle ties.
        """
        ms = max(time.time_ns() // 1_000_000, self._last_ms)
        self._last_ms = ms
        return ms

    @property
    def version(self) -> int:
        """Bumped by every change (search results are cached per version)."""
        return self._version

    def _changed(self) -> None:
        self._version += 1
        self._search_cache.clear()

    def _index_add(self, contact: _Contact) -> None:
        bisect.insort(self._by_updated, (contact.updated_ms, contact.id))

    def _index_remove(self, contact: _Contact) -> None:
        key = (contact.updated_ms, contact.id)
        i = bisect.bisect_left(self._by_updated, key)
        if i < len(self._by_updated) and self._by_updated[i] == key:
            del self._by_updated[i]

    def _note_change(self, contact: _Contact) -> None:
        """Before a change: remember the version search keeps serving while its index lags."""
        if self.index_lag_s <= 0:
            return
        now = time.monotonic()
        if now - contact.changed_at >= self.index_lag_s:
            # the index had caught up with the current version; a record still lagging keeps the older one
            # (or none, when it was created within the lag)
            contact.indexed = dict(contact.properties)
        contact.changed_at = now
        self._recent[contact.id] = now

    # seeding

    def seed_people(self, people: Iterable[SyntheticPerson]) -> list[str]:
        """Add synthetic people as contacts (no validation: real portals hold invalid legacy data too)."""
        ids: list[str] = []
        with self.lock, gc_paused():
            for person in people:
                props = person_properties(person)
                contact_id = self._next_id
                self._next_id += 1 if self._id_rng.random() < 0.9 else self._id_rng.randint(2, 60)
                created_ms, updated_ms = _ms_of(person.created_at), _ms_of(person.updated_at)
                props["hs_object_id"] = str(contact_id)
                props["lastmodifieddate"] = props["hs_lastmodifieddate"] = _iso(person.updated_at)
                contact = _Contact(contact_id, props, created_ms, updated_ms)
                self._contacts[contact_id] = contact
                self._ids.append(contact_id)
                if person.email:
                    self._by_email.setdefault(person.email.lower(), contact_id)
                self._by_updated.append((updated_ms, contact_id))
                self._reserve_engagements(contact_id, person)
                self._seed_objects(contact_id, person)
                self._last_ms = max(self._last_ms, updated_ms)
                ids.append(str(contact_id))
            self._by_updated.sort()
            self._changed()
        return ids

    def _seed_objects(self, contact_id: int, person: SyntheticPerson) -> None:
        """Hook for API families that seed their own objects with a seeded contact (deals do)."""

    # reading

    def __len__(self) -> int:
        return len(self._contacts)

    def contact_ids(self, *, archived: bool = False) -> list[str]:
        """Ids in ascending order (active contacts, or archived ones)."""
        with self.lock:
            source = self._archived if archived else self._contacts
            return [str(i) for i in sorted(source)]

    def contact(self, contact_id: str | int) -> dict[str, str] | None:
        """A copy of an active contact's stored properties (empty values are absent), or None."""
        with self.lock:
            found = self._get(contact_id)
            return dict(found.properties) if found else None

    def find_by_email(self, email: str) -> str | None:
        with self.lock:
            found = self._by_email.get(email.strip().lower())
            return str(found) if found is not None else None

    def enrollments(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self._enrollments]

    def property(self, name: str) -> PropertyDef | None:
        with self.lock:
            found = self.properties.get(name)
            return found if found and not found.archived else None

    def _get(self, contact_id: str | int, *, archived: bool = False) -> _Contact | None:
        key = _int_id(contact_id)
        if key is None:
            return None
        return (self._archived if archived else self._contacts).get(key)

    def _lookup(self, value: str, id_property: str | None, *, archived: bool = False) -> _Contact | None:
        if id_property and id_property not in ("hs_object_id", "id"):
            if id_property != "email":
                prop = self.properties.get(id_property)
                if prop is None or not prop.has_unique_value:
                    raise PortalError(400, "VALIDATION_ERROR", f"{id_property} is not a unique identifier property")
                source = self._archived if archived else self._contacts
                return next((c for c in source.values() if c.properties.get(id_property) == value), None)
            if archived:
                return next(
                    (c for c in self._archived.values() if c.properties.get("email", "").lower() == value.lower()), None
                )
            found = self._by_email.get(value.strip().lower())
            return self._contacts.get(found) if found is not None else None
        return self._get(value, archived=archived)

    def _association_targets(self, spec: EngagementType, associations: Any) -> list[_Contact]:
        """The contacts a create request of a ``spec`` object (activity or deal) associates the new one with.

        Each item is ``{"to": {"id"}, "types": [...]}``; the only type accepted is the default one from
        ``spec`` to contact (HUBSPOT_DEFINED ``spec.to_contact``). Duplicates count once, in input order.

        :raises PortalError: 400 for a non-list, an unknown contact or another association type.
        """
        if associations is None:
            return []
        if not isinstance(associations, list):
            raise PortalError(400, "VALIDATION_ERROR", "associations must be a list")
        targets: list[_Contact] = []
        for item in associations:
            to = item.get("to") if isinstance(item, Mapping) else None
            if not isinstance(to, Mapping):
                to = {}
            contact = self._get(str(to.get("id", "")))
            if contact is None:
                raise PortalError(
                    400,
                    "VALIDATION_ERROR",
                    f"One or more associations are invalid: no contact with id {to.get('id')!r}",
                    subCategory="crm.associations.INVALID_OBJECT_IDS",
                )
            for kind in item.get("types") or []:
                category = str(kind.get("associationCategory") or "")
                type_id = kind.get("associationTypeId")
                if category != "HUBSPOT_DEFINED" or str(type_id) != str(spec.to_contact):
                    raise PortalError(
                        400,
                        "VALIDATION_ERROR",
                        f"One or more associations are invalid: {category} {type_id} is not an association type "
                        f"from {spec.singular} to contact (HUBSPOT_DEFINED {spec.to_contact})",
                        subCategory="crm.associations.INVALID_ASSOCIATION_TYPE",
                    )
            if contact not in targets:
                targets.append(contact)
        return targets

    # validation and writes

    def _stage_rank(self) -> dict[str, int]:
        prop = self.properties["lifecyclestage"]
        order = sorted(prop.options, key=lambda o: o.get("displayOrder", 0))
        return {str(o["value"]): i for i, o in enumerate(order) if o["value"] != "other"}

    def _apply(self, contact: _Contact, values: Mapping[str, str]) -> bool:
        """Apply normalized values; returns whether anything changed (and then bumps the timestamps)."""
        props = contact.properties
        updates: dict[str, str] = {}
        for name, value in values.items():
            current = props.get(name, "")
            if value == current:
                continue
            if name == "lifecyclestage" and value and current:
                ranks = self._stage_rank()
                if value in ranks and current in ranks and ranks[value] < ranks[current]:
                    continue  # lifecycle never moves backwards; HubSpot answers 200 and keeps the value
            updates[name] = value
        if not updates:
            return False
        new_email = updates.get("email")
        if new_email:
            owner = self._by_email.get(new_email.lower())
            if owner is not None and owner != contact.id:
                raise PortalError(
                    409, "CONFLICT", f"Contact already exists. Existing ID: {owner}", context={"id": [str(owner)]}
                )
        self._note_change(contact)
        if "email" in updates:
            old = props.get("email", "").lower()
            if old and self._by_email.get(old) == contact.id:
                del self._by_email[old]
            if new_email:
                self._by_email[new_email.lower()] = contact.id
                updates["hs_email_domain"] = new_email.rsplit("@", 1)[-1].lower()
            else:
                updates["hs_email_domain"] = ""
        ms = self._tick()
        stage = updates.get("lifecyclestage")
        if stage and not props.get(f"hs_lifecyclestage_{stage}_date"):
            updates[f"hs_lifecyclestage_{stage}_date"] = _iso_ms(ms)
        if updates.get("createdate"):
            contact.created_ms = _parse_ms(updates["createdate"]) or contact.created_ms
        for name, value in updates.items():
            if value:
                props[name] = value
            else:
                props.pop(name, None)
        self._stamp(contact, ms)
        for listener in self.change_listeners:
            listener(contact.id, ms, updates)
        return True

    def _stamp(self, contact: _Contact, ms: int) -> None:
        self._index_remove(contact)
        contact.updated_ms = ms
        contact.properties["lastmodifieddate"] = contact.properties["hs_lastmodifieddate"] = _iso_ms(ms)
        contact.typed.clear()
        self._index_add(contact)
        self._changed()

    def _create(self, values: Mapping[str, str]) -> _Contact:
        email = values.get("email", "")
        if email and email.lower() in self._by_email:
            owner = self._by_email[email.lower()]
            raise PortalError(
                409, "CONFLICT", f"Contact already exists. Existing ID: {owner}", context={"id": [str(owner)]}
            )
        ms = self._tick()
        contact_id = self._next_id
        self._next_id += 1
        props = {k: v for k, v in values.items() if v}
        created_ms = _parse_ms(props["createdate"]) if props.get("createdate") else ms
        props["createdate"] = _iso_ms(created_ms or ms)
        props["hs_object_id"] = str(contact_id)
        props["lastmodifieddate"] = props["hs_lastmodifieddate"] = _iso_ms(ms)
        if email:
            props["hs_email_domain"] = email.rsplit("@", 1)[-1].lower()
        stage = props.get("lifecyclestage")
        if stage:
            props[f"hs_lifecyclestage_{stage}_date"] = _iso_ms(ms)
        contact = _Contact(contact_id, props, created_ms or ms, ms)
        if self.index_lag_s > 0:
            contact.changed_at = time.monotonic()
            self._recent[contact_id] = contact.changed_at
        self._contacts[contact_id] = contact
        self._ids.append(contact_id)
        if email:
            self._by_email[email.lower()] = contact_id
        self._index_add(contact)
        self._changed()
        for listener in self.change_listeners:
            listener(contact_id, ms, None)
        return contact

    def _take_engagement_id(self) -> int:
        engagement_id = self._next_engagement_id
        self._next_engagement_id += 1
        return engagement_id

    def _reserve_engagements(self, contact_id: int, person: SyntheticPerson) -> None:
        """Reserve the id block of a seeded contact's activity objects; they are built on first access.

        Generating every person's events at seeding time would triple the time it takes to seed a large
        portal; reserving ids keeps them deterministic whatever the order of later reads.
        """
        size = _seeded_engagement_count(person)
        if size:
            self._lazy_starts.append(self._next_engagement_id)
            self._lazy_owners.append(contact_id)
            self._lazy_people[contact_id] = (self._next_engagement_id, size, person)
            self._next_engagement_id += size
