"""Companies: the firmographics HubSpot keeps on the company record, and each contact's primary company.

Endpoints: ``GET /crm/v3/objects/companies`` (list), ``GET /crm/v3/objects/companies/{companyId}``, ``POST
/crm/v3/objects/companies`` and ``.../batch/create`` (with ``associations`` to contacts, HUBSPOT_DEFINED type
280 company -> contact), ``PATCH /crm/v3/objects/companies/{companyId}`` (an edit moves
``hs_lastmodifieddate``), ``POST .../batch/read`` (<= 100 ids, 207 ``OBJECT_NOT_FOUND`` for missing ones) and
``POST /crm/v3/objects/companies/search`` (filter groups with the search API's operators, one sort,
``limit`` <= 200, ``after`` offset up to the search result cap; no index lag is emulated for companies).
Associations v4 contacts <-> companies through the same batch read and list as activities: a contact's
primary company carries two types, ``HUBSPOT_DEFINED`` 1 ("Primary", contact -> company; 2 the other way)
and the unlabeled 279 (contact -> company; 280 the other way), another associated company only 279 / 280.

Seeding: a person's :attr:`~connectors.sandbox.synthetic.SyntheticPerson.account` becomes their primary
company (one company per domain, its firmographics complete where the person's own record leaves some
empty); a few contacts get a second, non-primary company.
"""

from __future__ import annotations

import fnmatch
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import json_response
from connectors.sandbox.hubspot._base import (
    _CONTACT_TYPES,
    _TOKEN_SPLIT_RE,
    SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_LIMIT,
    PortalError,
    _insert_id,
    _int_id,
    _int_param,
    _iso_ms,
    _ms_of,
    _not_found,
    _parse_ms,
    _problem,
    _refuse_invalid,
    _requested_names,
)
from connectors.sandbox.hubspot._http import HubSpotRoutes
from connectors.sandbox.hubspot.activity_types import EngagementType, _Engagement
from connectors.sandbox.hubspot.deals import DealsPortal
from connectors.sandbox.hubspot.search import _check_limit
from connectors.sandbox.hubspot.store import _Contact
from connectors.sandbox.synthetic import SyntheticCompany, SyntheticPerson

__all__ = [
    "COMPANY_ID_BASE",
    "COMPANY_PROPERTIES",
    "COMPANY_TYPE",
    "PRIMARY_COMPANY_TYPE_ID",
    "CompaniesPortal",
    "CompaniesRoutes",
]

#: companies as one side of an association (unlabeled types: company -> contact 280, contact -> company 279)
COMPANY_TYPE = EngagementType("companies", "company", "0-2", 280, 279, ())
#: HUBSPOT_DEFINED "Primary" contact -> company (its reverse, company -> contact, is 2)
PRIMARY_COMPANY_TYPE_ID = 1
PRIMARY_CONTACT_TYPE_ID = 2
_COMPANY_NAMES = frozenset({COMPANY_TYPE.name, COMPANY_TYPE.singular, COMPANY_TYPE.type_id})
#: company ids start here (far from contact, deal and activity ids)
COMPANY_ID_BASE = 7_000_000_001
#: the share of seeded contacts with a second, non-primary company
SECOND_COMPANY_SHARE = 0.05
COMPANY_PROPERTIES: tuple[str, ...] = (
    "name",
    "domain",
    "industry",
    "numberofemployees",
    "annualrevenue",
    "country",
    "city",
    "phone",
    "website",
    "lifecyclestage",
    "hubspot_owner_id",
    "createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
)
_READ_ONLY = frozenset({"hs_lastmodifieddate", "hs_object_id"})
_NUMBERS = frozenset({"numberofemployees", "annualrevenue", "hs_object_id"})
_DATETIMES = frozenset({"createdate", "hs_lastmodifieddate"})
#: returned whatever a read asks for (HubSpot's default properties of companies)
DEFAULT_COMPANY_PROPERTIES: tuple[str, ...] = ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name")

_Company = _Engagement
_Predicate = Callable[[_Company], bool]


def company_properties(company: SyntheticCompany) -> dict[str, str]:
    """The HubSpot property values of a synthetic company (non-empty values only)."""
    props = {
        "name": company.name,
        "domain": company.domain,
        "website": f"https://www.{company.domain}" if company.domain else "",
        "industry": company.industry,
        "numberofemployees": str(company.employees) if company.employees is not None else "",
        "annualrevenue": str(company.annual_revenue) if company.annual_revenue is not None else "",
        "country": company.country,
    }
    return {k: v for k, v in props.items() if v}


def _typed(name: str, value: str | None) -> Any:
    """A stored (or filter) value as search compares it: a number, epoch ms, or lower-case text."""
    if value is None or value == "":
        return None
    if name in _NUMBERS:
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if name in _DATETIMES:
        return _parse_ms(value)
    return value.lower()


class CompaniesPortal(DealsPortal):
    """Companies, their contacts (one primary company per contact) and their search."""

    def __init__(self, *, seed: int = 0, **options: Any) -> None:
        super().__init__(seed=seed, **options)
        self._companies: dict[int, _Company] = {}
        self._company_keys: dict[str, int] = {}
        #: per contact, the associated company ids ascending, and its primary one
        self._contact_companies: dict[int, list[int]] = {}
        self._primary_company: dict[int, int] = {}
        self._next_company_id = COMPANY_ID_BASE
        self._company_rng = random.Random(f"hubspot-companies:{seed}")

    # seeding

    def _seed_objects(self, contact_id: int, person: SyntheticPerson) -> None:
        super()._seed_objects(contact_id, person)
        account = person.account
        if account is None:
            return
        key = (account.domain or account.name).lower()
        company_id = self._company_keys.get(key)
        created, modified = _ms_of(person.created_at), _ms_of(person.updated_at)
        if company_id is None:
            company = _Company(self._take_company_id(), COMPANY_TYPE, company_properties(account), created, created, [])
            self._store_company(company)
            company_id = self._company_keys[key] = company.id
        company = self._companies[company_id]
        if created < company.created_ms:  # the company is as old as its first contact
            company.created_ms = created
            company.properties["createdate"] = _iso_ms(created)
        if modified > company.updated_ms:
            company.updated_ms = modified
            company.properties["hs_lastmodifieddate"] = _iso_ms(modified)
        self._associate(contact_id, company_id, primary=True)
        if len(self._companies) > 1 and self._company_rng.random() < SECOND_COMPANY_SHARE:
            other = COMPANY_ID_BASE + self._company_rng.randrange(len(self._companies))
            if other != company_id and other in self._companies:
                self._associate(contact_id, other, primary=False)

    def _take_company_id(self) -> int:
        company_id = self._next_company_id
        self._next_company_id += 1
        return company_id

    def _store_company(self, company: _Company) -> None:
        company.properties["hs_object_id"] = str(company.id)
        company.properties["hs_lastmodifieddate"] = _iso_ms(company.updated_ms)
        company.properties.setdefault("createdate", _iso_ms(company.created_ms))
        self._companies[company.id] = company
        for contact_id in list(company.contacts):
            self._associate(contact_id, company.id, primary=contact_id not in self._primary_company)

    def _associate(self, contact_id: int, company_id: int, *, primary: bool) -> None:
        company = self._companies[company_id]
        if contact_id not in company.contacts:
            _insert_id(company.contacts, contact_id)
        companies = self._contact_companies.setdefault(contact_id, [])
        if company_id not in companies:
            _insert_id(companies, company_id)
        if primary:
            self._primary_company[contact_id] = company_id

    def _company(self, company_id: str | int) -> _Company | None:
        key = _int_id(company_id)
        return self._companies.get(key) if key is not None else None

    # ground truth for tests

    def company(self, company_id: str | int) -> dict[str, str] | None:
        """A copy of a company's properties, or None."""
        with self.lock:
            found = self._company(company_id)
            return dict(found.properties) if found else None

    def primary_company(self, contact_id: str | int) -> str | None:
        """The id of a contact's primary company, or None."""
        with self.lock:
            key = _int_id(contact_id)
            found = self._primary_company.get(key) if key is not None else None
            return str(found) if found is not None else None

    def company_ids(self) -> list[str]:
        with self.lock:
            return [str(i) for i in sorted(self._companies)]

    def company_contacts(self, company_id: str | int, *, primary: bool = True) -> list[str]:
        """The contacts of a company (with ``primary``: those whose primary company it is), ascending."""
        with self.lock:
            found = self._company(company_id)
            if found is None:
                return []
            ids = [c for c in found.contacts if c in self._contacts]
            if primary:
                ids = [c for c in ids if self._primary_company.get(c) == found.id]
            return [str(c) for c in ids]

    def update_company(self, company_id: str | int, properties: Mapping[str, Any]) -> bool:
        """Update like ``PATCH /crm/v3/objects/companies/{id}``; returns whether anything changed (then
        ``hs_lastmodifieddate`` moves). :raises PortalError: 404 for an unknown id, 400 on invalid values."""
        with self.lock:
            company = self._company(company_id)
            if company is None:
                raise _not_found(str(company_id))
            values, problems = self._company_values(properties)
            _refuse_invalid(problems)
            changed = {k: v for k, v in values.items() if company.properties.get(k, "") != v}
            if not changed:
                return False
            for name, value in changed.items():
                if value:
                    company.properties[name] = value
                else:
                    company.properties.pop(name, None)
            company.updated_ms = self._tick()
            company.properties["hs_lastmodifieddate"] = _iso_ms(company.updated_ms)
            self._changed()
            return True

    def _company_values(self, raw: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        if not isinstance(raw, Mapping):
            return {}, [_problem("properties", "INVALID_INPUT", "properties must be an object")]
        values: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for name, value in raw.items():
            text = "" if value is None else str(value)
            if name not in COMPANY_PROPERTIES:
                problems.append(_problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            elif name in _READ_ONLY:
                problems.append(
                    _problem(name, "READ_ONLY_VALUE", f"{name} is a read only property; its value cannot be set.")
                )
            elif name in _NUMBERS and text and _typed(name, text) is None:
                problems.append(_problem(name, "INVALID_FLOAT", f"{text} was not a valid number."))
            elif name in _DATETIMES and text and _parse_ms(text) is None:
                problems.append(_problem(name, "INVALID_DATE", f"{text} is not a valid date or datetime"))
            else:
                values[name] = _iso_ms(_parse_ms(text) or 0) if name in _DATETIMES and text else text
        return values, problems

    # associations: companies on one side, contacts on the other

    def _association_pair(self, from_type: str, to_type: str) -> tuple[EngagementType | None, EngagementType | None]:
        names = (from_type.lower(), to_type.lower())
        if not any(n in _COMPANY_NAMES for n in names):
            return super()._association_pair(from_type, to_type)
        sides = [COMPANY_TYPE if n in _COMPANY_NAMES else None if n in _CONTACT_TYPES else n for n in names]
        if any(isinstance(s, str) for s in sides) or sides[0] is sides[1]:
            raise PortalError(
                400, "VALIDATION_ERROR", f"No association is defined between {from_type} and {to_type} here"
            )
        return sides[0], sides[1]  # type: ignore[return-value]

    def _associated(self, source: EngagementType | None, raw_id: str, target: EngagementType | None) -> list[int]:
        if source is not COMPANY_TYPE and target is not COMPANY_TYPE:
            return super()._associated(source, raw_id, target)
        key = _int_id(raw_id)
        if key is None:
            return []
        if source is None:  # contact -> companies
            return list(self._contact_companies.get(key, [])) if key in self._contacts else []
        company = self._companies.get(key)
        return [c for c in company.contacts if c in self._contacts] if company is not None else []

    def associations_page(
        self, from_type: str, object_id: str, to_type: str, *, after: str | None = None, limit: int | None = None
    ) -> tuple[list[dict[str, Any]], str | None, int]:
        entries, nxt, total = super().associations_page(from_type, object_id, to_type, after=after, limit=limit)
        with self.lock:
            source, target = self._association_pair(from_type, to_type)
            if COMPANY_TYPE not in (source, target):
                return entries, nxt, total
            key = _int_id(object_id)
            for entry in entries:
                other = int(entry["toObjectId"])
                contact, company = (key, other) if source is None else (other, key)
                primary = contact is not None and self._primary_company.get(contact) == company
                unlabeled = {"category": "HUBSPOT_DEFINED", "typeId": COMPANY_TYPE.from_contact, "label": None}
                if source is not None:
                    unlabeled["typeId"] = COMPANY_TYPE.to_contact
                kinds = [unlabeled]
                if primary:
                    type_id = PRIMARY_COMPANY_TYPE_ID if source is None else PRIMARY_CONTACT_TYPE_ID
                    kinds.insert(0, {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": "Primary"})
                entry["associationTypes"] = kinds
            return entries, nxt, total

    # companies as one of the types the object routes serve (see EngagementsPortal's hooks)

    def _family(self, object_type: str) -> EngagementType:
        return COMPANY_TYPE if object_type == COMPANY_TYPE.name else super()._family(object_type)

    def _values(self, spec: EngagementType, properties: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        return self._company_values(properties) if spec is COMPANY_TYPE else super()._values(spec, properties)

    def _new_object(self, spec: EngagementType, values: dict[str, str], contacts: Sequence[_Contact]) -> _Company:
        if spec is not COMPANY_TYPE:
            return super()._new_object(spec, values, contacts)
        ms = self._tick()
        created = _parse_ms(values.get("createdate", "")) or ms
        company = _Company(self._take_company_id(), COMPANY_TYPE, values, created, ms, [c.id for c in contacts])
        self._store_company(company)
        self._changed()
        return company

    def _find(self, spec: EngagementType, object_id: str | int) -> _Company | None:
        return self._company(object_id) if spec is COMPANY_TYPE else super()._find(spec, object_id)

    def _stored(self, spec: EngagementType) -> tuple[list[int], Mapping[int, _Company]]:
        return (sorted(self._companies), self._companies) if spec is COMPANY_TYPE else super()._stored(spec)

    def read_names(self, spec: EngagementType, requested: Iterable[Any] | None) -> list[str]:
        """For companies: the requested company properties, else HubSpot's defaults, plus the always-returned."""
        if spec is not COMPANY_TYPE:
            return super().read_names(spec, requested)
        wanted = _requested_names(requested)
        names = dict.fromkeys(n for n in wanted if n in COMPANY_PROPERTIES)
        if not wanted:
            names.update(dict.fromkeys(DEFAULT_COMPANY_PROPERTIES))
        names.update(dict.fromkeys(("createdate", "hs_lastmodifieddate", "hs_object_id")))
        return list(names)

    # search

    def search_companies(self, body: Mapping[str, Any]) -> tuple[int, list[_Company], int | None]:
        """``POST /crm/v3/objects/companies/search``: (total, page, next offset).

        :raises PortalError: 400 for unknown properties or operators, filter limits, paging past the cap.
        """
        with self.lock:
            limit = _int_param(body.get("limit"), "limit", SEARCH_DEFAULT_LIMIT)
            if not 0 <= limit <= SEARCH_MAX_LIMIT:
                raise PortalError(
                    400, "VALIDATION_ERROR", f"limit must be between 0 and {SEARCH_MAX_LIMIT}, got {limit}"
                )
            after = _int_param(body.get("after"), "after", 0)
            if not 0 <= after < self.search_result_cap:
                raise PortalError(400, "VALIDATION_ERROR", f"Cannot page past {self.search_result_cap} results")
            groups = body.get("filterGroups") or []
            if not isinstance(groups, list):
                raise PortalError(400, "VALIDATION_ERROR", "filterGroups must be a list")
            limits = self.search_limits
            _check_limit("filter groups", len(groups), limits.max_groups, "TOO_MANY_FILTER_GROUPS")
            compiled = [[_company_filter(f) for f in (g or {}).get("filters") or []] for g in groups]
            for filters in compiled:
                _check_limit("filters in a group", len(filters), limits.max_filters_per_group, "TOO_MANY_FILTERS")
            _check_limit("filters", sum(map(len, compiled)), limits.max_filters_total, "TOO_MANY_FILTERS")
            matched = [
                self._companies[i]
                for i in sorted(self._companies)
                if not compiled or any(all(p(self._companies[i]) for p in preds) for preds in compiled)
            ]
            matched = _sorted(matched, body.get("sorts") or [])
            end = min(after + limit, self.search_result_cap)
            nxt = after + limit if limit and after + limit < len(matched) else None
            return len(matched), matched[after:end], nxt


def _known(name: Any) -> str:
    if name not in COMPANY_PROPERTIES:
        raise PortalError(
            400, "VALIDATION_ERROR", f"There was a problem with the request: property {name!r} does not exist"
        )
    return str(name)


def _sorted(companies: list[_Company], sorts: Any) -> list[_Company]:
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise PortalError(400, "VALIDATION_ERROR", "Only one sort is supported per search request")
    if not sorts:
        return companies
    rule = sorts[0]
    if isinstance(rule, str):
        name, descending = rule.lstrip("-"), rule.startswith("-")
    else:
        name = str((rule or {}).get("propertyName") or "")
        descending = str((rule or {}).get("direction") or "ASCENDING").upper() == "DESCENDING"
    name = _known(name)
    present = [(v, c) for c in companies if (v := _typed(name, c.properties.get(name))) is not None]
    absent = [c for c in companies if _typed(name, c.properties.get(name)) is None]
    present.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ties stay in id order
    return [c for _, c in present] + absent


def _company_filter(raw: Any) -> _Predicate:
    if not isinstance(raw, Mapping):
        raise PortalError(400, "VALIDATION_ERROR", "Invalid filter")
    name = _known(raw.get("propertyName"))
    op = str(raw.get("operator") or "EQ").upper()

    def get(c: _Company) -> Any:
        return _typed(name, c.properties.get(name))

    def parse(value: Any) -> Any:
        parsed = _typed(name, None if value is None else str(value))
        if parsed is None:
            raise PortalError(400, "VALIDATION_ERROR", f"{value!r} is not a valid value for {name} with {op}")
        return parsed

    if op == "HAS_PROPERTY":
        return lambda c: get(c) is not None
    if op == "NOT_HAS_PROPERTY":
        return lambda c: get(c) is None
    if op in ("IN", "NOT_IN"):
        values = raw.get("values")
        if not isinstance(values, list):
            raise PortalError(400, "VALIDATION_ERROR", f"Filter on {name} with {op} needs values")
        members = frozenset(parse(v) for v in values)
        return (lambda c: get(c) in members) if op == "IN" else (lambda c: get(c) not in members)
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = re.compile(fnmatch.translate(str(raw.get("value") or "").strip().lower()))

        def contains(c: _Company) -> bool:
            text = (c.properties.get(name) or "").lower()
            return bool(text) and (
                bool(pattern.match(text)) or any(pattern.match(t) for t in _TOKEN_SPLIT_RE.split(text))
            )

        return contains if op == "CONTAINS_TOKEN" else (lambda c: not contains(c))
    tests: dict[str, Callable[[Any, Any], bool]] = {
        "EQ": lambda x, v: x == v,
        "NEQ": lambda x, v: x != v,
        "LT": lambda x, v: x is not None and x < v,
        "LTE": lambda x, v: x is not None and x <= v,
        "GT": lambda x, v: x is not None and x > v,
        "GTE": lambda x, v: x is not None and x >= v,
    }
    if op == "BETWEEN":
        low, high = parse(raw.get("value")), parse(raw.get("highValue"))
        return lambda c: (x := get(c)) is not None and low <= x <= high
    if op not in tests:
        raise PortalError(400, "VALIDATION_ERROR", f"Unknown operator {op!r}")
    value, test = parse(raw.get("value")), tests[op]
    return lambda c: test(get(c), value)


class CompaniesRoutes(HubSpotRoutes):
    """``POST /crm/v3/objects/companies/search`` and ``PATCH /crm/v3/objects/companies/{companyId}`` (the
    other company routes are the object routes with ``objectType`` bound)."""

    def _search_companies(self, request: Request) -> Response:
        body = self._body(request)
        total, page, nxt = self.portal.search_companies(body)
        names = self.portal.read_names(COMPANY_TYPE, body.get("properties"))
        out: dict[str, Any] = {"total": total, "results": [self._render_associated(c, names) for c in page]}
        if nxt is not None:
            out["paging"] = {"next": {"after": str(nxt), "link": self._next_link(request, str(nxt))}}
        return json_response(out)

    def _update_company(self, request: Request, companyId: str) -> Response:
        self.portal.update_company(companyId, self._body(request).get("properties") or {})
        found = self.portal._company(companyId)
        if found is None:  # archived meanwhile
            raise _not_found(companyId)
        return json_response(
            self._render_associated(found, self.portal.read_names(COMPANY_TYPE, list(found.properties)))
        )
