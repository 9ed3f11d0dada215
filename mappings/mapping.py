"""CRM property -> canonical lead attribute: loading, validation and conversion of values."""

from __future__ import annotations

import builtins
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from mappings.errors import MappingError
from mappings.transforms import COMPUTE, TCompute, apply_map, normal_table
from scoring.model import Activity, Lead

TValueType = Literal["str", "int", "float", "bool", "datetime", "list", "range", "present"]
VALUE_TYPES: tuple[str, ...] = get_args(TValueType)

#: canonical attributes that are fields of ``Lead`` (everything else lands in ``Lead.attributes``)
LEAD_FIELDS = frozenset(Lead.__dataclass_fields__) - {"id", "object_type", "attributes"}

#: CRM property types (as ``describe`` reports them) each value type can read
_COMPATIBLE_CRM_TYPES: dict[str, frozenset[str]] = {
    "int": frozenset({"number", "int", "double", "currency", "percent", "string", "enumeration"}),
    "float": frozenset({"number", "int", "double", "currency", "percent", "string"}),
    "bool": frozenset({"bool", "boolean", "enumeration", "string"}),
    "datetime": frozenset({"datetime", "date", "string", "number"}),
}


#: an enum map's ``other:`` when it is not given: values outside the map are kept as they are
KEEP = "keep"

#: HubSpot sources ``company.<property>`` read the contact's primary associated company (``sync.companies``);
#: Salesforce reads its Account through relationship fields in the same query (``Account.Industry``)
COMPANY_PREFIX = "company."


class FieldSpec(BaseModel):
    """How one canonical attribute is read from the CRM, and the transforms declared for it.

    ``property: [work_email, email]`` reads the first non-empty field (``property`` is the first,
    ``fallbacks`` the rest); ``map`` turns CRM values into canonical ones (keys compared regardless of case
    and spacing), ``other`` is what an unmapped value becomes (default: kept); ``compute`` normalises the
    text (``country_code``, ``country_name`` through ISO 3166, ``lower``, ``upper``, ``strip``); ``default``
    is the value when every source is empty; ``type`` converts the result.

    ``company`` is the company-level source of the same attribute (HubSpot ``company.industry``, the primary
    associated company's property; Salesforce ``Account.Industry``): read when every contact-level source is
    empty, or first with ``prefer: company``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    property: str = Field(min_length=1)
    type: TValueType = "str"
    fallbacks: tuple[str, ...] = ()
    map: dict[str, str | int | float | bool | None] | None = None
    other: str | int | float | bool | None = KEEP
    compute: TCompute | None = None
    default: str | int | float | bool | None = None
    company: str | None = Field(default=None, min_length=1)
    prefer: Literal["contact", "company"] = "contact"
    _table: dict[str, Any] = PrivateAttr(default_factory=dict)
    _sources: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="before")
    @classmethod
    def _source_list(cls, value: Any) -> Any:
        # `property: [work_email, email]`: precedence, first non-empty wins
        if isinstance(value, Mapping) and isinstance(value.get("property"), list | tuple):
            sources = [str(s) for s in value["property"]]
            if not sources:
                raise ValueError("property: expected a field name or a non-empty list of field names")
            return {**value, "property": sources[0], "fallbacks": [*sources[1:], *value.get("fallbacks", ())]}
        return value

    @model_validator(mode="after")
    def _preference(self) -> FieldSpec:
        if self.prefer == "company" and self.company is None:
            raise ValueError("prefer: company needs a company-level source (company: company.<property>)")
        return self

    def model_post_init(self, _context: Any) -> None:
        self._table = normal_table(self.map) if self.map else {}
        own = (self.property, *self.fallbacks)
        if self.company is None:
            self._sources = own
        else:
            self._sources = (self.company, *own) if self.prefer == "company" else (*own, self.company)

    @builtins.property
    def sources(self) -> tuple[str, ...]:
        """Every field read for this attribute, in order of precedence (the company-level one included)."""
        return self._sources

    @builtins.property
    def transformed(self) -> bool:
        """Whether values pass through a map, compute or default (not only a type conversion)."""
        return bool(self.map) or self.compute is not None or self.default is not None

    def canonical(self) -> dict[str, Any]:
        """The spec as the mapping version hashes it (defaults left out, so shorthand does not count)."""
        return self.model_dump(mode="json", exclude_defaults=True)


class MappingSpec(BaseModel):
    """A whole mapping as written in YAML."""

    model_config = ConfigDict(extra="forbid")

    object_type: Literal["contact", "lead"] = "contact"
    fields: dict[str, FieldSpec]
    #: per-object overrides of ``fields`` (Salesforce reads Leads and Contacts); ``null`` drops an attribute
    objects: dict[Literal["contact", "lead"], dict[str, FieldSpec | None]] = Field(default_factory=dict)

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `email: email` is shorthand for `email: {property: email}`
        return _expand(value)

    @field_validator("objects", mode="before")
    @classmethod
    def _object_shorthand(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: _expand(v) if v is not None else {} for k, v in value.items()}
        return value


def _expand(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: {"property": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


def _empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _transform(spec: FieldSpec, raw: str | None) -> str | None:
    """The declared transforms of one value, in order: enum map, compute, default (then ``type``)."""
    value: Any = raw
    if not _empty(value) and spec.map:
        value = apply_map(value, spec._table, spec.other, spec.other == KEEP)
    if not _empty(value) and spec.compute is not None:
        value = COMPUTE[spec.compute](str(value))
    if _empty(value) and spec.default is not None:
        value = spec.default
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _parse_datetime(text: str) -> datetime:
    stripped = text.strip()
    if stripped.isdigit():  # HubSpot sends epoch milliseconds for some datetime properties
        return datetime.fromtimestamp(int(stripped) / 1000, tz=UTC)
    parsed = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_range(text: str) -> int:
    # "25-50" -> 25, "1000+" -> 1000, "42" -> 42
    head = text.strip().rstrip("+").split("-", 1)[0].replace(",", "")
    return int(float(head))


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": lambda t: int(_parse_float(t)),
    "float": _parse_float,
    "bool": lambda t: {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}[
        t.strip().lower()
    ],
    "datetime": _parse_datetime,
    "list": lambda t: [part.strip() for part in t.split(";") if part.strip()],
    "range": _parse_range,
    "present": lambda t: bool(t.strip()),
}

#: what each type expects, for messages about values that cannot be read
EXPECTED: dict[str, str] = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "datetime": "an ISO-8601 date-time or epoch milliseconds",
    "list": "a ;-separated list",
    "range": "a number or a range like 25-50 or 1000+",
    "present": "any value",
}

#: called with (record id, property, raw value, problem) for a value that cannot be read
OnBadValue = Callable[[str, str, Any, str], None]


@dataclass(frozen=True)
class LeadMapping:
    """A validated mapping, ready to turn raw CRM records into canonical leads."""

    crm: str
    object_type: Literal["contact", "lead"]
    fields: Mapping[str, FieldSpec]
    #: object type -> its complete field set, where it differs from ``fields`` (Salesforce Lead vs Contact)
    objects: Mapping[str, Mapping[str, FieldSpec]] = dataclass_field(default_factory=dict)

    def fields_for(self, object_type: str | None) -> Mapping[str, FieldSpec]:
        """The fields read for records of ``object_type`` (``fields`` unless the mapping overrides it)."""
        return self.objects.get(object_type or self.object_type, self.fields)

    def _all_sources(self) -> set[str]:
        specs = [*self.fields.values(), *(s for fields in self.objects.values() for s in fields.values())]
        return {source for spec in specs for source in spec.sources}

    def company_property(self, source: str) -> str | None:
        """The company property a HubSpot ``company.<property>`` source reads (None: a record property)."""
        if self.crm == "hubspot" and source.startswith(COMPANY_PREFIX) and len(source) > len(COMPANY_PREFIX):
            return source[len(COMPANY_PREFIX) :]
        return None

    @property
    def properties(self) -> list[str]:
        """The record properties to request (every object's), in a stable order; company sources are not."""
        return sorted(s for s in self._all_sources() if self.company_property(s) is None)

    @property
    def company_properties(self) -> list[str]:
        """The properties of the primary associated company the mapping reads (HubSpot; empty elsewhere)."""
        return sorted({p for s in self._all_sources() if (p := self.company_property(s)) is not None})

    def properties_for(self, object_type: str) -> list[str]:
        """The record properties to request for one object type."""
        sources = {source for spec in self.fields_for(object_type).values() for source in spec.sources}
        return sorted(s for s in sources if self.company_property(s) is None)

    def convert(
        self,
        record_id: str,
        attribute: str,
        raw: Any,
        on_bad_value: OnBadValue | None,
        spec: FieldSpec | None = None,
    ) -> Any:
        """Convert one CRM value; an unreadable one becomes None and is reported, never fatal."""
        spec = spec or self.fields[attribute]
        if raw is not None and not isinstance(raw, str):
            raw = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if spec.transformed:
            raw = _transform(spec, raw)
        if raw is None or (raw == "" and spec.type != "present"):
            return False if spec.type == "present" else None
        try:
            return _CONVERTERS[spec.type](raw)
        except (ValueError, KeyError, OverflowError):
            if on_bad_value is not None:
                on_bad_value(record_id, spec.property, raw, f"expected {EXPECTED[spec.type]} for {attribute}")
            return None

    @property
    def version(self) -> str:
        """Content hash (12 hex digits) of what the mapping reads and how: part of the rules version, so that
        a mapping change rescores the cache like a rules change. Formatting and shorthand do not count."""
        data = {
            "crm": self.crm,
            "object_type": self.object_type,
            "fields": {k: v.canonical() for k, v in sorted(self.fields.items())},
            "objects": {o: {k: v.canonical() for k, v in sorted(f.items())} for o, f in sorted(self.objects.items())},
        }
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    def to_lead(
        self,
        record_id: str,
        properties: Mapping[str, Any],
        on_bad_value: OnBadValue | None = None,
        object_type: str | None = None,
    ) -> Lead:
        """Build the canonical lead of one CRM record (fields chosen by ``object_type``, default the mapping's)."""
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        kind: Literal["contact", "lead"] = self.object_type
        if object_type in ("lead", "contact"):
            kind = cast(Literal["contact", "lead"], object_type)
        for attribute, spec in self.fields_for(kind).items():
            raw = None
            for source in spec.sources:  # the first non-empty wins (contact-level before company-level)
                raw = properties.get(source)
                if not _empty(raw):
                    break
            value = self.convert(record_id, attribute, raw, on_bad_value, spec)
            if attribute in LEAD_FIELDS:
                if value is not None:
                    values[attribute] = value
            else:
                extra[attribute] = value
        for flag in ("opted_out", "bounced"):
            values[flag] = bool(values.get(flag, False))
        return Lead(id=record_id, object_type=kind, attributes=extra, **values)

    def validate_against(self, schema: Mapping[str, str]) -> list[str]:
        """Problems of this mapping against the CRM's schema (property name -> type); empty when fine."""
        problems = []
        for attribute, spec in self.fields.items():
            if "." in spec.property:
                continue  # a relationship field (Account.Industry): describe lists only the object's own fields
            crm_type = schema.get(spec.property)
            if crm_type is None:
                problems.append(f"mapping.fields.{attribute}: property '{spec.property}' does not exist in {self.crm}")
            elif spec.type in _COMPATIBLE_CRM_TYPES and crm_type not in _COMPATIBLE_CRM_TYPES[spec.type]:
                problems.append(
                    f"mapping.fields.{attribute}: property '{spec.property}' is {crm_type} in {self.crm}, "
                    f"which cannot be read as {spec.type}"
                )
        return problems


def default_mapping_data(crm: str) -> dict[str, Any]:
    """The packaged default mapping of a CRM, as plain data."""
    try:
        text = resources.files("mappings").joinpath("defaults", f"{crm}.yaml").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError("crm", f"no default mapping for '{crm}'") from None
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def load_mapping(crm: str, overrides: Mapping[str, Any] | None = None, *, source: str = "mapping") -> LeadMapping:
    """The default mapping of ``crm`` with the user's ``mapping:`` section laid over it.

    Fields in the override replace the default field of the same attribute; ``null`` removes one.
    """
    data = default_mapping_data(crm)
    if overrides:
        if not isinstance(overrides, Mapping):
            raise MappingError(source, "expected a mapping with `fields:` (and optionally `object_type:`)")
        unknown = set(overrides) - {"object_type", "fields", "objects"}
        if unknown:
            raise MappingError(
                f"{source}.{sorted(unknown)[0]}", "unknown key; expected `object_type`, `fields` or `objects`"
            )
        fields = dict(data["fields"])
        for attribute, spec in (overrides.get("fields") or {}).items():
            if spec is None:
                fields.pop(attribute, None)
            else:
                fields[attribute] = spec
        objects = {k: dict(v or {}) for k, v in (data.get("objects") or {}).items()}
        for object_type, per_object in (overrides.get("objects") or {}).items():
            objects.setdefault(object_type, {}).update(per_object or {})
        data = {**data, **{k: v for k, v in overrides.items() if k not in ("fields", "objects")}, "fields": fields}
        if objects:
            data["objects"] = objects
    try:
        spec = MappingSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([source, *(str(p) for p in first["loc"])])
        raise MappingError(where, f"{first['msg']} (types: {', '.join(VALUE_TYPES)})") from None
    if "email" not in spec.fields:
        raise MappingError(f"{source}.fields.email", "the email attribute must be mapped")
    per_type: dict[str, dict[str, FieldSpec]] = {}
    for object_type, per_object in spec.objects.items():
        merged = dict(spec.fields)
        for attribute, field_spec in per_object.items():
            if field_spec is None:
                merged.pop(attribute, None)
            else:
                merged[attribute] = field_spec
        per_type[object_type] = merged
    if crm == "salesforce":
        for object_type, fields in [("", spec.fields), *((k, v) for k, v in per_type.items())]:
            for attribute, field_spec in fields.items():
                wrong = next((s for s in field_spec.sources if s.startswith(COMPANY_PREFIX)), None)
                if wrong is not None:
                    where = f"{source}.objects.{object_type}" if object_type else f"{source}.fields"
                    raise MappingError(
                        f"{where}.{attribute}",
                        f"{wrong!r}: Salesforce reads company fields through the Account relationship in the same "
                        f"query: write Account.<Field> (e.g. Account.Industry); a Lead has its own (Industry)",
                    )
    return LeadMapping(crm=crm, object_type=spec.object_type, fields=spec.fields, objects=per_type)


def to_activities(lead_id: str, raw: Iterable[tuple[str, datetime, Mapping[str, Any]]]) -> list[Activity]:
    """Canonical activities from (kind, timestamp, attributes) triples, oldest first."""
    return sorted(
        (Activity(lead_id=lead_id, kind=kind, timestamp=ts, attributes=dict(attrs)) for kind, ts, attrs in raw),
        key=lambda a: a.timestamp,
    )
