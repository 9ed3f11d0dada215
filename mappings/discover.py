"""``leadsync mappings discover``: a commented starter mapping from the CRM's schema and a sample of records.

Every canonical attribute (those of the shipped default mapping) is matched to its most likely field: the
CRM's standard field for it when the CRM has one, else the field whose name or label is closest, of a type
that can be read as the attribute, preferring fields that are filled in the sample. Alternatives are listed
as comments, and so are the custom fields with their types and example values, ready to map as extra
attributes for rules. With standard fields present the result reads exactly what the default mapping reads,
so it scores every lead the same (and has the same mapping version).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mappings.mapping import default_mapping_data
from mappings.schema import BOOL_TYPES, DATE_TYPES, NUMBER_TYPES, CrmSchema, SchemaField

#: fields below this similarity to an attribute are not proposed
MIN_SIMILARITY = 0.7
#: alternatives shown per attribute
ALTERNATIVES = 3
#: other names of canonical attributes, as CRMs and exports label them
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "job_title": ("title", "job title", "position", "role"),
    "employees": ("number of employees", "employee count", "company size", "headcount", "numemployees"),
    "annual_revenue": ("revenue", "annual revenue", "arr"),
    "company": ("company name", "account name", "organization", "organisation"),
    "country": ("country region", "mailing country", "billing country"),
    "first_name": ("firstname", "given name"),
    "last_name": ("lastname", "surname", "family name"),
    "owner": ("owner id", "contact owner", "lead owner"),
    "lifecycle_stage": ("lifecycle stage", "stage", "status"),
    "lead_status": ("lead status", "status"),
    "created_at": ("create date", "created date", "createdate"),
    "updated_at": ("last modified date", "modified date", "systemmodstamp"),
}


def _words(text: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text.removesuffix("__c"))
    return " ".join(re.split(r"[^A-Za-z0-9]+", spaced.replace("hs_", " "))).strip().casefold()


def _similarity(attribute: str, field: SchemaField) -> float:
    names = [_words(attribute), *(_words(s) for s in _SYNONYMS.get(attribute, ()))]
    targets = [_words(field.name), _words(field.label)]
    return max(difflib.SequenceMatcher(None, a, b).ratio() for a in names for b in targets if a and b)


def _readable(value_type: str, field: SchemaField) -> bool:
    if value_type in ("int", "float"):
        return field.type in NUMBER_TYPES
    if value_type == "range":
        return field.type in NUMBER_TYPES or field.enumerated or field.type == "string"
    if value_type == "datetime":
        return field.type in DATE_TYPES
    if value_type == "bool":
        return field.type in BOOL_TYPES
    return field.type not in DATE_TYPES or value_type == "present"


def _spec_type(spec: Any) -> str:
    return str(spec.get("type", "str")) if isinstance(spec, Mapping) else "str"


def _inferred_type(field: SchemaField) -> str:
    if field.type in NUMBER_TYPES:
        return "int" if field.type == "int" else "float"
    if field.type in DATE_TYPES:
        return "datetime"
    if field.type in BOOL_TYPES:
        return "bool"
    return "list" if field.type == "multipicklist" else "str"


def _property(spec: Any) -> str | None:
    if isinstance(spec, str):
        return spec
    return str(spec["property"]) if isinstance(spec, Mapping) and spec.get("property") else None


def _about(field: SchemaField | None) -> str:
    if field is None:
        return ""
    parts = [repr(field.label) if field.label else "", field.type]
    if field.fill_rate is not None:
        parts.append(f"filled {field.fill_rate:.0%}")
    if field.examples:
        parts.append("e.g. " + ", ".join(field.examples))
    elif field.options:
        more = ", ..." if len(field.options) > 4 else ""
        parts.append(f"{len(field.options)} options: " + ", ".join(field.options[:4]) + more)
    return "; ".join(p for p in parts if p)


def _entry(attribute: str, prop: str, value_type: str, company: str | None = None, prefer: str = "contact") -> str:
    extra = [f"type: {value_type}"] if value_type != "str" else []
    if company is not None:
        extra.append(f"company: {company}")
        if prefer != "contact":
            extra.append(f"prefer: {prefer}")
    return f"{attribute}: {{property: {prop}, {', '.join(extra)}}}" if extra else f"{attribute}: {prop}"


def _company_source(matcher: _Matcher, default: Any) -> tuple[str | None, str]:
    """The default's company-level source when the CRM has it (else None), and its ``prefer``."""
    if not isinstance(default, Mapping) or not default.get("company"):
        return None, "contact"
    source = str(default["company"])
    return (source if matcher.field(source) is not None else None), str(default.get("prefer") or "contact")


class _Matcher:
    def __init__(self, schema: CrmSchema, kind: str) -> None:
        self.schema = schema
        self.kind = kind
        self.object = schema.record_objects.get(kind, "")
        self.fields = schema.objects.get(self.object, {})
        self.used: set[str] = set()

    def field(self, prop: str) -> SchemaField | None:
        return self.schema.resolve(self.kind, prop)[1]

    def ranked(self, attribute: str, value_type: str) -> list[tuple[float, SchemaField]]:
        scored = []
        for f in self.fields.values():
            if not _readable(value_type, f):
                continue
            similarity = _similarity(attribute, f)
            if similarity >= MIN_SIMILARITY:
                scored.append((similarity + 0.2 * (f.fill_rate or 0.0), f))
        return sorted(scored, key=lambda p: (-p[0], p[1].name))

    def match(self, attribute: str, default: Any) -> tuple[str | None, str, list[SchemaField]]:
        """(chosen field, its type, alternatives) of one attribute."""
        value_type = _spec_type(default)
        standard = _property(default)
        ranked = self.ranked(attribute, value_type)
        if standard is not None and self.field(standard) is not None:
            chosen: str | None = standard
        else:
            chosen = next((f.name for _, f in ranked if f.name not in self.used), None)
            if chosen is not None:
                found = self.fields[chosen]
                value_type = value_type if _readable(value_type, found) else _inferred_type(found)
        if chosen is not None:
            self.used.add(chosen)
        alternatives = [f for _, f in ranked if f.name != chosen][:ALTERNATIVES]
        return chosen, value_type, alternatives


def _block(matcher: _Matcher, fields: Mapping[str, Any], indent: str) -> list[str]:
    lines = []
    for attribute, default in fields.items():
        if default is None:
            lines.append(f"{indent}{attribute}: null")
            continue
        chosen, value_type, alternatives = matcher.match(attribute, default)
        if chosen is None:
            lines.append(f"{indent}{attribute}: null   # no field found in the CRM: map one, or leave it out")
            continue
        about = _about(matcher.field(chosen))
        company, prefer = _company_source(matcher, default)
        entry = _entry(attribute, chosen, value_type, company, prefer if company else "contact")
        lines.append(f"{indent}{entry}" + (f"   # {about}" if about else ""))
        for alt in alternatives:
            lines.append(f"{indent}#   or {alt.name}: {_about(alt)}")
    return lines


def discover_mapping(schema: CrmSchema, *, sampled: int | None = None, now: datetime | None = None) -> str:
    """The commented starter mapping (YAML text) for ``schema``; see the module docstring."""
    defaults = default_mapping_data(schema.crm)
    object_type = str(defaults.get("object_type", "contact"))
    kinds = list(schema.record_objects) or [object_type]
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    counts = ", ".join(f"{len(schema.objects.get(o, {}))} {o} fields" for o in schema.objects)
    out = [
        f"# leadsync mapping discovered from {schema.crm} on {when}: {counts}"
        + (f"; {sampled} records sampled per object" if sampled else ""),
        "# Each canonical attribute is matched to its most likely field (standard field, else name, label, type",
        "# and fill rate); alternatives follow as comments. Edit, then `leadsync mappings validate`, then",
        '# `leadsync preview` (README: "Mapping your CRM"). Use it with `mapping: <this file>` in leadsync.yaml.',
        "# Transforms: {property: [a, b]} (first non-empty wins), map: {CRM value: canonical}, other:, default:,",
        "# compute: country_code|country_name|lower|upper|strip; type: str|int|float|bool|datetime|list|range|present",
        f"object_type: {object_type}",
        "fields:",
    ]
    primary = _Matcher(schema, object_type if object_type in kinds else kinds[0])
    out += _block(primary, defaults["fields"], "  ")
    overrides = defaults.get("objects") or {}
    others = [k for k in kinds if k != primary.kind]
    if others:
        out.append("objects:")
        for kind in others:
            out.append(f"  {kind}:")
            matcher = _Matcher(schema, kind)
            per_object = overrides.get(kind) or {}
            own = {a: s for a, s in defaults["fields"].items() if a not in per_object}
            block = [
                line for line in _block(matcher, {**own, **per_object}, "    ") if _differs(line, own, matcher, primary)
            ]
            out += block
    out += _custom(schema, kinds)
    return "\n".join(out) + "\n"


def _differs(line: str, own: Mapping[str, Any], matcher: _Matcher, primary: _Matcher) -> bool:
    """Keep per-object lines only where the object reads something else than ``fields:`` (or has no field)."""
    attribute = line.strip().split(":", 1)[0]
    if line.strip().startswith("#") or attribute not in own:
        return True
    prop = _property(own[attribute])
    return prop is None or matcher.field(prop) is None or primary.field(prop) is None


def _custom(schema: CrmSchema, kinds: list[str]) -> list[str]:
    """Custom fields, commented: map them as extra attributes for rules."""
    lines: list[str] = []
    for kind in kinds:
        obj = schema.record_objects.get(kind, kind)
        fields = schema.objects.get(obj, {}).values()
        custom = [f for f in fields if f.custom and not f.name.lower().startswith("leadsync")]
        if not custom:
            continue
        lines.append(f"# custom {obj} fields: uncomment to map one as an attribute rules can use")
        for f in sorted(custom, key=lambda f: (-(f.fill_rate or 0), f.name)):
            attribute = re.sub(r"[^a-z0-9]+", "_", _words(f.name)).strip("_") or f.name.lower()
            lines.append(f"#   {_entry(attribute, f.name, _inferred_type(f))}   # {_about(f)}")
    records = {schema.record_objects.get(k, k) for k in kinds}
    done: set[str] = set()
    for relation, target in sorted(schema.relationships.items()):
        if target in records or target in done:
            continue
        done.add(target)
        custom = [f for f in schema.objects.get(target, {}).values() if f.custom]
        if not custom:
            continue
        prefix = "company" if schema.crm == "hubspot" else relation
        lines.append(f"# custom {target} fields, read as {prefix}.<field>: uncomment to map one as a company attribute")
        for f in sorted(custom, key=lambda f: (-(f.fill_rate or 0), f.name)):
            attribute = "company." + (re.sub(r"[^a-z0-9]+", "_", _words(f.name)).strip("_") or f.name.lower())
            lines.append(f"#   {_entry(attribute, f'{prefix}.{f.name}', _inferred_type(f))}   # {_about(f)}")
    return lines
