"""``leadsync mappings validate`` (also run by ``check`` and at daemon start): the mapping and the rules
against the CRM's schema, so that a misspelt field or picklist value is an error at start-up instead of a
rule that silently scores zero.

Findings: mapped fields the CRM lacks, types that cannot be read as mapped, rules comparing numbers on a
text field, rule values that are not options of an enumeration / picklist (with a "did you mean"), enum-map
keys the CRM never sends, and drift since the last snapshot (a field or option removed, a type changed).
Each names the file and line, the rule and the field. Pure: no I/O; the caller locates lines.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from mappings.mapping import _COMPATIBLE_CRM_TYPES, KEEP, LEAD_FIELDS, FieldSpec, LeadMapping
from mappings.schema import NUMBER_TYPES, CrmSchema, SchemaField
from mappings.transforms import normal_key
from scoring.conditions import Test, tests
from scoring.model import COUNTERS
from scoring.rules import DERIVED_ATTRIBUTES, Rules, RuleSpec

#: a missing rule value this close to an option is a typo (an error), not a value written for another CRM
TYPO_CUTOFF = 0.75

#: (file, line) of a dotted key path such as ("scoring", "fit", 2) or ("mapping", "fields", "industry")
Locate = Callable[[tuple[str | int, ...]], tuple[str, int | None]]


@dataclass(frozen=True)
class Finding:
    """One problem: errors make ``check`` exit 1 and stop the daemon from starting; warnings are shown."""

    level: Literal["error", "warning"]
    file: str
    line: int | None
    message: str
    rule: str | None = None
    field: str | None = None
    attribute: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [f"rule {self.rule!r}" if self.rule else "", f"{self.field}" if self.field else ""]
        about = ", ".join(p for p in parts if p)
        return f"{where}: {about + ': ' if about else ''}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "field": self.field,
            "attribute": self.attribute,
            "message": self.message,
        }


def _closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> list[str]:
    by_key: dict[str, str] = {}
    for choice in choices:  # the first spelling wins: option values come before their labels
        by_key.setdefault(normal_key(choice), choice)
    return [by_key[k] for k in difflib.get_close_matches(normal_key(word), list(by_key), n=3, cutoff=cutoff)]


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = _closest(word, choices)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


class _Validator:
    def __init__(self, mapping: LeadMapping, rules: Rules | None, schema: CrmSchema, locate: Locate) -> None:
        self.mapping = mapping
        self.rules = rules
        self.schema = schema
        self.locate = locate
        self.findings: list[Finding] = []
        #: object types whose records the CRM serves and the mapping reads
        self.kinds = [k for k in schema.record_objects if k in ("contact", "lead")] or [mapping.object_type]

    def add(self, level: Literal["error", "warning"], key: tuple[str | int, ...], message: str, **about: str) -> None:
        file, line = self.locate(key)
        finding = Finding(level, file, line, message, **about)
        if finding not in self.findings:
            self.findings.append(finding)

    def mapping_key(self, kind: str, attribute: str) -> tuple[str | int, ...]:
        if attribute in (self.mapping.objects.get(kind) or {}) and self._overridden(kind, attribute):
            return ("mapping", "objects", kind, attribute)
        return ("mapping", "fields", attribute)

    def _overridden(self, kind: str, attribute: str) -> bool:
        own = self.mapping.objects.get(kind, {}).get(attribute)
        return own is not None and own != self.mapping.fields.get(attribute)

    # -- the mapping's fields

    def fields(self) -> None:
        for kind in self.kinds:
            obj = self.schema.record_objects.get(kind, kind)
            for attribute, spec in self.mapping.fields_for(kind).items():
                for source in spec.sources:
                    self._source(kind, obj, attribute, spec, source)

    def _source(self, kind: str, obj: str, attribute: str, spec: FieldSpec, source: str) -> None:
        target, found = self.schema.resolve(kind, source)
        key = self.mapping_key(kind, attribute)
        name = f"{obj}.{source}"
        if found is None:
            known = self.schema.objects.get(target, {})
            choices = [*known, *(f.label for f in known.values() if f.label)]
            hint = _did_you_mean(source.rpartition(".")[2], choices) if known else ""
            where = f"{target}" if "." in source else obj
            self.add(
                "error",
                key,
                f"field {source!r} does not exist on {where} in {self.schema.crm}{hint}",
                field=name,
                attribute=attribute,
            )
            return
        compatible = _COMPATIBLE_CRM_TYPES.get(spec.type)
        if compatible is not None and found.type not in compatible and not _sf_compatible(spec.type, found.type):
            self.add(
                "error",
                key,
                f"is {found.type} in {self.schema.crm}, which cannot be read as {spec.type}",
                field=name,
                attribute=attribute,
            )
        if spec.map and found.enumerated:
            values = {normal_key(v) for v in (*found.options, *found.option_labels)}
            for source_value in spec.map:
                if normal_key(source_value) not in values:
                    self.add(
                        "warning",
                        (*key, "map", source_value),
                        f"map key {source_value!r} is not an option of {name}, so it never applies"
                        f"{_did_you_mean(source_value, found.options)}",
                        field=name,
                        attribute=attribute,
                    )

    # -- the rules against the fields they read

    def rules_against_fields(self) -> None:
        if self.rules is None:
            return
        for part, index, rule in self.rules.iter_rules():
            key: tuple[str | int, ...] = ("scoring", part, index, rule.name)
            for attribute, literals, numeric in _reads(rule):
                self._reference(key, rule.name, attribute, literals, numeric)

    def _reference(
        self, key: tuple[str | int, ...], rule: str, attribute: str, literals: list[str], numeric: bool
    ) -> None:
        if attribute in DERIVED_ATTRIBUTES:
            return
        for kind in self.kinds:
            spec = self.mapping.fields_for(kind).get(attribute)
            obj = self.schema.record_objects.get(kind, kind)
            if spec is None:
                if attribute not in LEAD_FIELDS and attribute not in COUNTERS and kind == self.kinds[0]:
                    self.add(
                        "error",
                        key,
                        f"reads attribute {attribute!r}, which the mapping does not provide, so the rule never "
                        f"fires; map it under mapping.fields{_did_you_mean(attribute, self.mapping.fields)}",
                        rule=rule,
                        attribute=attribute,
                    )
                continue
            _, found = self.schema.resolve(kind, spec.property)
            if found is None:
                self.add(
                    "error",
                    key,
                    f"reads {attribute}, mapped to {spec.property!r}, a field {obj} does not have",
                    rule=rule,
                    field=f"{obj}.{spec.property}",
                    attribute=attribute,
                )
                continue
            name = f"{obj}.{spec.property}"
            textual = spec.type in ("str", "list") and spec.compute is None and not spec.map
            if numeric and textual and found.type not in NUMBER_TYPES:
                self.add(
                    "error",
                    key,
                    f"compares numbers on {attribute}, a {found.type} field read as text; map it with "
                    "`type: int`, `float` or `range`",
                    rule=rule,
                    field=name,
                    attribute=attribute,
                )
            if literals and found.enumerated and spec.type in ("str", "list") and spec.compute is None:
                self._values(key, rule, attribute, name, literals, _domain(spec, found))

    def _values(
        self, key: tuple[str | int, ...], rule: str, attribute: str, name: str, literals: list[str], domain: list[str]
    ) -> None:
        normal = {normal_key(v) for v in domain}
        missing = [v for v in literals if normal_key(v) not in normal]
        if not missing:
            return
        none_match = len(missing) == len(literals)
        typos = [v for v in missing if _closest(v, domain, TYPO_CUTOFF)]
        for value in typos if not none_match else missing:
            self.add(
                "error",
                key,
                f"value {value!r} of {attribute} is not an option of {name}{_did_you_mean(value, domain)}"
                + ("; the rule can never match" if none_match else ""),
                rule=rule,
                field=name,
                attribute=attribute,
            )
        rest = [v for v in missing if v not in typos] if not none_match else []
        if rest:
            self.add(
                "warning",
                key,
                f"{len(rest)} value{'s' if len(rest) > 1 else ''} of {attribute} never match, not options of "
                f"{name}: {', '.join(repr(v) for v in rest)}",
                rule=rule,
                field=name,
                attribute=attribute,
            )

    # -- drift since the last snapshot

    def drift(self, previous: CrmSchema) -> None:
        for kind in self.kinds:
            for attribute, spec in self.mapping.fields_for(kind).items():
                for source in spec.sources:
                    self._drifted(kind, attribute, source, previous)

    def _drifted(self, kind: str, attribute: str, source: str, previous: CrmSchema) -> None:
        target, before = previous.resolve(kind, source)
        _, now = self.schema.resolve(kind, source)
        if before is None:
            return
        key = self.mapping_key(kind, attribute)
        name = f"{target}.{source.rpartition('.')[2]}"
        if now is None:
            self.add("error", key, "was removed from the CRM since the last run", field=name, attribute=attribute)
            return
        if now.type != before.type:
            self.add(
                "warning",
                key,
                f"changed type since the last run: {before.type} -> {now.type}",
                field=name,
                attribute=attribute,
            )
        gone = [o for o in before.options if o not in now.options]
        if gone:
            added = [o for o in now.options if o not in before.options]
            renamed = f" (new: {', '.join(repr(o) for o in added)})" if added else ""
            self.add(
                "warning",
                key,
                f"option{'s' if len(gone) > 1 else ''} {', '.join(repr(o) for o in gone)} removed or renamed "
                f"since the last run{renamed}",
                field=name,
                attribute=attribute,
            )


def _sf_compatible(value_type: str, crm_type: str) -> bool:
    """Salesforce's own type names for what ``_COMPATIBLE_CRM_TYPES`` calls number / bool / text."""
    if value_type in ("int", "float", "range"):
        return crm_type in NUMBER_TYPES
    if value_type == "bool":
        return crm_type in ("boolean", "picklist")
    return crm_type in ("datetime", "date") if value_type == "datetime" else False


def _domain(spec: FieldSpec, found: SchemaField) -> list[str]:
    """The values an enumerated field can give the attribute after the mapping's enum map."""
    options = list(dict.fromkeys((*found.options, *found.option_labels)))
    if not spec.map:
        return options
    keys = {normal_key(k) for k in spec.map}
    out = [str(v) for v in spec.map.values() if v is not None]
    if spec.other == KEEP:
        out += [o for o in options if normal_key(o) not in keys]
    elif spec.other is not None:
        out.append(str(spec.other))
    if spec.default is not None:
        out.append(str(spec.default))
    return list(dict.fromkeys(out))


def _reads(rule: RuleSpec) -> list[tuple[str, list[str], bool]]:
    """(attribute, text literals compared for equality, compared as a number) for each lead attribute."""
    found: dict[str, tuple[list[str], list[bool]]] = {}
    for cond in (rule.when, rule.unless):
        for test in tests(cond) if cond is not None else ():
            literals, numeric = found.setdefault(test.attribute, ([], []))
            numeric.append(test.op == "range")
            if test.op in ("equals", "not_equals", "in", "not_in"):
                for value in _as_tuple(test):
                    if isinstance(value, str) and value not in literals:
                        literals.append(value)
    if rule.attribute is not None:
        literals, numeric = found.setdefault(rule.attribute, ([], []))
        if rule.points_by_value is not None:
            literals += [k for k, _ in rule.points_by_value if isinstance(k, str) and k not in literals]
        else:
            numeric.append(True)
    return [(attribute, literals, any(numeric)) for attribute, (literals, numeric) in found.items()]


def _as_tuple(test: Test) -> tuple[object, ...]:
    return test.arg if isinstance(test.arg, tuple) else (test.arg,)


def validate(
    mapping: LeadMapping,
    rules: Rules | None,
    schema: CrmSchema,
    locate: Locate,
    *,
    previous: CrmSchema | None = None,
) -> list[Finding]:
    """Every finding of ``mapping`` and ``rules`` against ``schema`` (and against ``previous``, the snapshot
    of the last run, for drift), errors first."""
    validator = _Validator(mapping, rules, schema, locate)
    validator.fields()
    validator.rules_against_fields()
    if previous is not None:
        validator.drift(previous)
    return sorted(validator.findings, key=lambda f: f.level != "error")


def snapshot(schema: CrmSchema, mapping: LeadMapping) -> dict[str, object]:
    """The part of ``schema`` the mapping reads, as plain data: what the next run compares for drift."""
    kept: dict[str, dict[str, SchemaField]] = {}
    kinds = [k for k in schema.record_objects if k in ("contact", "lead")] or [mapping.object_type]
    for kind in kinds:
        for spec in mapping.fields_for(kind).values():
            for source in spec.sources:
                target, found = schema.resolve(kind, source)
                if found is not None:
                    kept.setdefault(target, {})[found.name] = found
    trimmed = CrmSchema(schema.crm, kept, dict(schema.record_objects), dict(schema.relationships))
    return trimmed.to_dict()


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


__all__ = ["Finding", "Locate", "errors", "snapshot", "validate"]
