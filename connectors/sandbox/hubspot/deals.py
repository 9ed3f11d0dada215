"""Deals: the objects HubSpot tracks a sale with, associated with contacts, and what the people's outcomes make.

Endpoints: ``GET /crm/v3/objects/deals`` (list), ``GET /crm/v3/objects/deals/{dealId}``, ``POST
/crm/v3/objects/deals`` and ``.../batch/create`` (with ``associations`` to contacts, HUBSPOT_DEFINED type 3
deal -> contact), ``POST .../batch/read`` (<= 100 ids, 207 ``OBJECT_NOT_FOUND`` for missing ones), and
Associations v4 contacts <-> deals (type 4 contact -> deal, 3 deal -> contact) through the same batch read
and list as activities. The activity types' object routes serve deals too: this module adds deals'
validation, storage and default properties through the portal's hooks. Only the default pipeline
(``default``) and its default stages exist; ``hs_is_closed_won`` and ``hs_is_closed`` are computed from
``dealstage``, as HubSpot does.

Seeding (driven by the synthetic people's hidden propensity, deterministic for a portal seed): a person who
converted gets a closed-won deal closing at ``customer_at`` (sometimes after an earlier lost one); a contact
in the ``opportunity`` stage has an open deal (HubSpot's definition of that stage); a share of the others,
growing with propensity, has an open or a closed-lost deal.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from connectors.sandbox.hubspot._base import (
    _CONTACT_TYPES,
    PortalError,
    _insert_id,
    _int_id,
    _iso_ms,
    _ms_of,
    _parse_ms,
    _requested_names,
)
from connectors.sandbox.hubspot.activity_types import EngagementType, _Engagement
from connectors.sandbox.hubspot.associations import AssociationsPortal
from connectors.sandbox.hubspot.store import _Contact
from connectors.sandbox.synthetic import SyntheticPerson

__all__ = [
    "CLOSED_STAGES",
    "DEAL_ID_BASE",
    "DEAL_PROPERTIES",
    "DEAL_STAGES",
    "DEAL_TYPE",
    "DealsPortal",
]

#: the default pipeline's stages in order (internal ids, as the API takes and returns them)
DEAL_STAGES: tuple[str, ...] = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)
CLOSED_STAGES = frozenset({"closedwon", "closedlost"})
OPEN_STAGES: tuple[str, ...] = DEAL_STAGES[:5]
PIPELINE = "default"
#: deals as one side of an association (HubSpot's default type ids: deal -> contact 3, contact -> deal 4)
DEAL_TYPE = EngagementType("deals", "deal", "0-3", 3, 4, ())
#: what an associations path may call deals
_DEAL_NAMES = frozenset({DEAL_TYPE.name, DEAL_TYPE.singular, DEAL_TYPE.type_id})
#: deal ids start here (far from contact and activity ids)
DEAL_ID_BASE = 9_000_000_001
#: properties a deal has; the computed ones are read-only
DEAL_PROPERTIES: tuple[str, ...] = (
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "closedate",
    "createdate",
    "hubspot_owner_id",
    "hs_is_closed_won",
    "hs_is_closed",
    "hs_lastmodifieddate",
    "hs_object_id",
)
_READ_ONLY = frozenset({"hs_is_closed_won", "hs_is_closed", "hs_lastmodifieddate", "hs_object_id"})
_DATETIMES = frozenset({"closedate", "createdate", "hs_lastmodifieddate"})
#: returned whatever a read asks for (HubSpot's default properties of deals)
DEFAULT_DEAL_PROPERTIES: tuple[str, ...] = (
    "amount",
    "closedate",
    "createdate",
    "dealname",
    "dealstage",
    "hs_lastmodifieddate",
    "hs_object_id",
    "pipeline",
)


#: a deal is stored as a CRM object of type DEAL_TYPE with its contacts, as an activity object is
_Deal = _Engagement


def _computed(props: dict[str, str]) -> None:
    stage = props.get("dealstage", "")
    props["hs_is_closed_won"] = "true" if stage == "closedwon" else "false"
    props["hs_is_closed"] = "true" if stage in CLOSED_STAGES else "false"


def seeded_deals(person: SyntheticPerson, rng: random.Random) -> list[tuple[int, int, dict[str, str]]]:
    """The deals of a synthetic person: (createdate ms, last-modified ms, properties), oldest first.

    Closed deals close by the person's last change (never in the future); an open deal's ``closedate`` is
    the expected close date and may lie ahead, as in HubSpot.
    """
    who = person.company or f"{person.first_name} {person.last_name}".strip() or "deal"
    start, end = person.created_at, max(person.updated_at, person.created_at)
    size = 1.0 + (person.employees or 10) ** 0.5

    def amount() -> str:
        return str(round(rng.lognormvariate(0.0, 0.6) * 1500 * size, 2))

    def deal(created: Any, stage: str, closes: Any) -> tuple[int, int, dict[str, str]]:
        props = {
            "dealname": f"{who} - {'new business' if stage != 'closedlost' else 'evaluation'}",
            "dealstage": stage,
            "pipeline": PIPELINE,
            "amount": amount(),
            "closedate": _iso_ms(_ms_of(closes)),
            "createdate": _iso_ms(_ms_of(created)),
        }
        _computed(props)
        modified = max(created, closes) if stage in CLOSED_STAGES else created
        return _ms_of(created), _ms_of(min(modified, end) if stage in CLOSED_STAGES else modified), props

    out: list[tuple[int, int, dict[str, str]]] = []
    if person.converted and person.customer_at is not None:
        won_at = person.customer_at
        opened = start + (won_at - start) * (0.2 + 0.6 * rng.random())
        if rng.random() < 0.15 and opened - start > timedelta(days=2):
            lost_open = start + (opened - start) * rng.random() * 0.5
            lost_at = lost_open + (opened - lost_open) * rng.random()
            out.append(deal(lost_open, "closedlost", lost_at))
        out.append(deal(opened, "closedwon", won_at))
        return out
    has_deal = person.lifecycle_stage == "opportunity" or rng.random() < min(0.6, 0.05 + 2.0 * person.propensity)
    if not has_deal:
        return out
    opened = start + (end - start) * rng.random()
    if person.lifecycle_stage != "opportunity" and rng.random() < 0.6:
        out.append(deal(opened, "closedlost", opened + (end - opened) * rng.random()))
    else:
        expected = opened + timedelta(days=rng.uniform(14, 120))
        out.append(deal(opened, rng.choice(OPEN_STAGES), expected))
    return out


class DealsPortal(AssociationsPortal):
    """Deals and their associations with contacts, on top of the activity associations."""

    def __init__(self, *, seed: int = 0, **options: Any) -> None:
        super().__init__(seed=seed, **options)
        self._deals: dict[int, _Deal] = {}
        #: per contact, the associated deal ids ascending
        self._contact_deals: dict[int, list[int]] = {}
        self._next_deal_id = DEAL_ID_BASE
        self._deal_rng = random.Random(f"hubspot-deals:{seed}")

    def _seed_objects(self, contact_id: int, person: SyntheticPerson) -> None:
        super()._seed_objects(contact_id, person)
        for created_ms, modified_ms, props in seeded_deals(person, self._deal_rng):
            self._store_deal(_Deal(self._take_deal_id(), DEAL_TYPE, props, created_ms, modified_ms, [contact_id]))

    def _take_deal_id(self) -> int:
        deal_id = self._next_deal_id
        self._next_deal_id += 1
        return deal_id

    def _store_deal(self, deal: _Deal) -> None:
        deal.properties["hs_object_id"] = str(deal.id)
        deal.properties["hs_lastmodifieddate"] = _iso_ms(deal.updated_ms)
        deal.properties.setdefault("createdate", _iso_ms(deal.created_ms))
        self._deals[deal.id] = deal
        for contact_id in deal.contacts:
            _insert_id(self._contact_deals.setdefault(contact_id, []), deal.id)

    def _deal(self, deal_id: str | int) -> _Deal | None:
        key = _int_id(deal_id)
        return self._deals.get(key) if key is not None else None

    # ground truth for tests

    def deal(self, deal_id: str | int) -> dict[str, str] | None:
        """A copy of a deal's properties, or None."""
        with self.lock:
            found = self._deal(deal_id)
            return dict(found.properties) if found else None

    def deals(self, contact_id: str | int | None = None) -> list[dict[str, Any]]:
        """Deals ``{"id", "properties", "contacts"}`` by id: all of them, or those of one contact."""
        with self.lock:
            if contact_id is None:
                ids = sorted(self._deals)
            else:
                key = _int_id(contact_id)
                ids = list(self._contact_deals.get(key, [])) if key is not None else []
            return [
                {
                    "id": str(i),
                    "properties": dict(self._deals[i].properties),
                    "contacts": [str(c) for c in self._deals[i].contacts],
                }
                for i in ids
            ]

    # associations: deals on one side, contacts on the other

    def _association_pair(self, from_type: str, to_type: str) -> tuple[EngagementType | None, EngagementType | None]:
        names = (from_type.lower(), to_type.lower())
        if not any(n in _DEAL_NAMES for n in names):
            return super()._association_pair(from_type, to_type)
        sides = [DEAL_TYPE if n in _DEAL_NAMES else None if n in _CONTACT_TYPES else n for n in names]
        if any(isinstance(s, str) for s in sides) or sides[0] is sides[1]:
            raise PortalError(
                400, "VALIDATION_ERROR", f"No association is defined between {from_type} and {to_type} here"
            )
        return sides[0], sides[1]  # type: ignore[return-value]

    def _associated(self, source: EngagementType | None, raw_id: str, target: EngagementType | None) -> list[int]:
        if source is not DEAL_TYPE and target is not DEAL_TYPE:
            return super()._associated(source, raw_id, target)
        key = _int_id(raw_id)
        if key is None:
            return []
        if source is None:  # contact -> deals
            return list(self._contact_deals.get(key, [])) if key in self._contacts else []
        deal = self._deals.get(key)
        return sorted(c for c in deal.contacts if c in self._contacts) if deal is not None else []

    # writes

    def _deal_values(self, raw: Mapping[str, Any], *, creating: bool) -> tuple[dict[str, str], list[dict[str, Any]]]:
        values: dict[str, str] = {}
        problems: list[dict[str, Any]] = []

        def problem(name: str, error: str, message: str) -> None:
            problems.append({"name": name, "error": error, "message": message})

        for name, value in raw.items():
            text = "" if value is None else str(value)
            if name not in DEAL_PROPERTIES:
                problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            elif name in _READ_ONLY:
                problem(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
            elif name in _DATETIMES and text and _parse_ms(text) is None:
                problem(name, "INVALID_DATE", f"{text!r} is not a valid datetime for {name}")
            elif name == "amount" and text:
                try:
                    float(text)
                except ValueError:
                    problem(name, "INVALID_FLOAT", f"{text!r} is not a valid number for amount")
                else:
                    values[name] = text
            elif name == "dealstage" and text not in DEAL_STAGES:
                problem(name, "INVALID_OPTION", f"{text!r} is not a valid stage of pipeline {PIPELINE!r}")
            elif name == "pipeline" and text != PIPELINE:
                problem(name, "INVALID_OPTION", f"{text!r} is not a valid pipeline (only {PIPELINE!r})")
            else:
                values[name] = _iso_ms(_parse_ms(text) or 0) if name in _DATETIMES and text else text
        if creating and not values.get("dealstage") and not any(p["name"] == "dealstage" for p in problems):
            problem("dealstage", "REQUIRED", "dealstage is required to create a deal")
        values.setdefault("pipeline", PIPELINE)
        return values, problems

    # deals as one of the types the object routes serve (see EngagementsPortal's hooks)

    def _family(self, object_type: str) -> EngagementType:
        # only the static deal routes name deals (``/crm/v3/objects/deals``, which wins over the template)
        return DEAL_TYPE if object_type == DEAL_TYPE.name else super()._family(object_type)

    def _values(self, spec: EngagementType, properties: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        if spec is not DEAL_TYPE:
            return super()._values(spec, properties)
        return self._deal_values(properties, creating=True)

    def _new_object(self, spec: EngagementType, values: dict[str, str], contacts: Sequence[_Contact]) -> _Deal:
        if spec is not DEAL_TYPE:
            return super()._new_object(spec, values, contacts)
        ms = self._tick()
        _computed(values)
        created = _parse_ms(values.get("createdate", "")) or ms
        deal = _Deal(self._take_deal_id(), DEAL_TYPE, values, created, ms, [c.id for c in contacts])
        self._store_deal(deal)
        self._changed()
        return deal

    def _find(self, spec: EngagementType, object_id: str | int) -> _Deal | None:
        return self._deal(object_id) if spec is DEAL_TYPE else super()._find(spec, object_id)

    def _stored(self, spec: EngagementType) -> tuple[list[int], Mapping[int, _Deal]]:
        return (sorted(self._deals), self._deals) if spec is DEAL_TYPE else super()._stored(spec)

    def read_names(self, spec: EngagementType, requested: Iterable[Any] | None) -> list[str]:
        """For deals: the requested deal properties, or HubSpot's defaults when none, plus the always-returned."""
        if spec is not DEAL_TYPE:
            return super().read_names(spec, requested)
        wanted = _requested_names(requested)
        names = dict.fromkeys(n for n in wanted if n in DEAL_PROPERTIES)
        if not wanted:
            names.update(dict.fromkeys(DEFAULT_DEAL_PROPERTIES))
        names.update(dict.fromkeys(("createdate", "hs_lastmodifieddate", "hs_object_id")))
        return list(names)
