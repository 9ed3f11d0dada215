"""The CRM's schema as mappings see it: objects, their fields (type, label, enumeration options) and,
from discovery, a sample's fill rate and example values. Plain data in and out (``from_dict`` / ``to_dict``),
so connectors can build it without importing mappings, and a snapshot can be stored to spot drift."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: CRM field types that are numbers (HubSpot ``number``; Salesforce ``int``, ``double``, ``currency``, ``percent``)
NUMBER_TYPES = frozenset({"number", "int", "double", "currency", "percent", "long"})
#: CRM field types whose values are one of a list of options
ENUM_TYPES = frozenset({"enumeration", "picklist", "multipicklist"})
DATE_TYPES = frozenset({"date", "datetime"})
BOOL_TYPES = frozenset({"bool", "boolean"})


@dataclass(frozen=True)
class SchemaField:
    """One CRM field: its API name, type, label and (for enumerations and picklists) option values."""

    name: str
    type: str
    label: str = ""
    options: tuple[str, ...] = ()
    #: option labels, where they differ from the values (HubSpot shows labels, rules may use either)
    option_labels: tuple[str, ...] = ()
    custom: bool = False
    #: from discovery's sample: the share of records with a value, and a few values seen
    fill_rate: float | None = None
    examples: tuple[str, ...] = ()

    @property
    def enumerated(self) -> bool:
        return self.type in ENUM_TYPES and bool(self.options)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "label": self.label}
        if self.options:
            data["options"] = list(self.options)
        if self.option_labels:
            data["option_labels"] = list(self.option_labels)
        if self.custom:
            data["custom"] = True
        return data


@dataclass
class CrmSchema:
    """Objects (``contacts``, ``Lead``, ``Contact``, ``Account``...) -> field name -> field."""

    crm: str
    objects: dict[str, dict[str, SchemaField]] = field(default_factory=dict)
    #: canonical object type (``contact``, ``lead``) -> the CRM object its records come from
    record_objects: dict[str, str] = field(default_factory=dict)
    #: relationship name -> CRM object (``Account`` -> ``Account``: ``Account.Industry`` on a Contact)
    relationships: dict[str, str] = field(default_factory=dict)
    #: API calls the read took
    api_calls: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CrmSchema:
        objects: dict[str, dict[str, SchemaField]] = {}
        for obj, fields in (data.get("objects") or {}).items():
            objects[str(obj)] = {
                str(name): SchemaField(
                    name=str(name),
                    type=str(f.get("type") or "string"),
                    label=str(f.get("label") or ""),
                    options=tuple(str(o) for o in f.get("options") or ()),
                    option_labels=tuple(str(o) for o in f.get("option_labels") or ()),
                    custom=bool(f.get("custom", False)),
                    fill_rate=f.get("fill_rate"),
                    examples=tuple(str(e) for e in f.get("examples") or ()),
                )
                for name, f in fields.items()
            }
        return cls(
            crm=str(data.get("crm") or ""),
            objects=objects,
            record_objects=dict(data.get("record_objects") or {}),
            relationships=dict(data.get("relationships") or {}),
            api_calls=int(data.get("api_calls") or 0),
        )

    def to_dict(self) -> dict[str, Any]:
        """The schema without sample data (what a drift snapshot keeps)."""
        return {
            "crm": self.crm,
            "record_objects": dict(self.record_objects),
            "relationships": dict(self.relationships),
            "objects": {o: {n: f.to_dict() for n, f in sorted(fs.items())} for o, fs in sorted(self.objects.items())},
        }

    def resolve(self, object_type: str, name: str) -> tuple[str, SchemaField | None]:
        """(CRM object, its field) a mapped name reads for records of ``object_type``; ``Account.Industry``
        follows the relationship. The field is None when the CRM has no such field."""
        obj = self.record_objects.get(object_type, next(iter(self.record_objects.values()), ""))
        if "." in name:
            relation, _, rest = name.partition(".")
            target = self.relationships.get(relation)
            if target is None:
                return f"{obj}.{relation}", None
            return target, self.objects.get(target, {}).get(rest)
        return obj, self.objects.get(obj, {}).get(name)
