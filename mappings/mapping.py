"""CRM property -> canonical lead attribute: loading, validation and conversion of values."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mappings.errors import MappingError
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


class FieldSpec(BaseModel):
    """How one canonical attribute is read from the CRM."""

    model_config = ConfigDict(extra="forbid")

    property: str = Field(min_length=1)
    type: TValueType = "str"


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

    @property
    def properties(self) -> list[str]:
        """The CRM properties to request (every object's), in a stable order."""
        specs = [*self.fields.values(), *(s for fields in self.objects.values() for s in fields.values())]
        return sorted({spec.property for spec in specs})

    def properties_for(self, object_type: str) -> list[str]:
        """The CRM properties to request for one object type."""
        return sorted({spec.property for spec in self.fields_for(object_type).values()})

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
        if raw is None or (isinstance(raw, str) and raw == "" and spec.type != "present"):
            return False if spec.type == "present" else None
        if not isinstance(raw, str):
            raw = str(raw).lower() if isinstance(raw, bool) else str(raw)
        try:
            return _CONVERTERS[spec.type](raw)
        except (ValueError, KeyError, OverflowError):
            if on_bad_value is not None:
                on_bad_value(record_id, spec.property, raw, f"expected {EXPECTED[spec.type]} for {attribute}")
            return None

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
            value = self.convert(record_id, attribute, properties.get(spec.property), on_bad_value, spec)
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
    return LeadMapping(crm=crm, object_type=spec.object_type, fields=spec.fields, objects=per_type)


def to_activities(lead_id: str, raw: Iterable[tuple[str, datetime, Mapping[str, Any]]]) -> list[Activity]:
    """Canonical activities from (kind, timestamp, attributes) triples, oldest first."""
    return sorted(
        (Activity(lead_id=lead_id, kind=kind, timestamp=ts, attributes=dict(attrs)) for kind, ts, attrs in raw),
        key=lambda a: a.timestamp,
    )
