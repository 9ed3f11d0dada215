"""``leadsync check --input`` (and the checks ``score`` runs first): the rules against a file, no CRM.

The file's header and its first :data:`SAMPLE_ROWS` records are read once; then every attribute a rule uses
must be derived, mapped to a column the file has, or be a column itself (read as text), else it is an error
naming the rule, the attribute and the closest names. A column the config maps explicitly must be in the
header. Literal values a rule compares against (``equals``, lists, lookup-table keys) that never occur in the
sample of their column are warnings with the closest values that do; rules that cannot fire on this file
(their attribute is absent, or they count activities, which a CSV has none of) are listed, and decaying
rules with no date to age from are named once.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from leadsync.config import ConfigError, load_sections, split_csv_section
from leadsync.csv_dialect import CsvDialect, resolve
from leadsync.scorefile import MAX_RECORD_LINES, Sample, read_sample
from mappings import FieldSpec, LeadMapping, MappingError, load_mapping
from scoring import CompiledRules, Rules, ScoringError, compile_rules, load_rules
from scoring.conditions import AnyOf, Cond, NotOf, Test, tests
from scoring.rules import DERIVED_ATTRIBUTES, RuleSpec, attribute_references, date_sources, decaying_rules

#: how many records the checks look at (the rest of a big file is not read)
SAMPLE_ROWS = 10_000
#: at most this many distinct values of a column are kept for "closest values" suggestions
DISTINCT_LIMIT = 5_000


@dataclass(frozen=True)
class Reference:
    """One attribute a rule reads, with the literal text values it compares that attribute against."""

    place: str  #: e.g. ``scoring.fit[2] (rule 'origin')``
    rule: str
    attribute: str
    values: tuple[str, ...] = ()


@dataclass
class FileCheck:
    """What the checks found; ``errors`` make ``check --input`` exit 1 and ``score`` refuse (exit 2)."""

    source: Path
    dialect: CsvDialect
    sample: Sample
    rules: CompiledRules
    #: the configured mapping plus, as text, each column a rule uses by its own name
    mapping: LeadMapping
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: rule -> why it cannot fire on this file
    never_fire: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def check_file(
    source: Path,
    config: Path | None,
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
    max_record_lines: int = MAX_RECORD_LINES,
) -> FileCheck:
    """Read the config's ``scoring:`` and ``csv:`` sections and check them against ``source``.

    Config mistakes raise ConfigError (exit 2); an unreadable file a ScoreFileError or DialectError (exit 2);
    everything about the rules against this file is returned in the FileCheck.
    """
    origin, sections = load_sections(config, ("scoring", "csv"))
    mapping_section, options = split_csv_section(sections.get("csv"), origin)
    dialect = resolve(source, options, delimiter=delimiter, encoding=encoding)
    sample = read_sample(source, dialect, SAMPLE_ROWS, max_record_lines)
    try:
        mapping = load_mapping("csv", mapping_section, source="csv")
    except MappingError as exc:
        raise ConfigError(origin, exc.where, exc.problem) from None
    header = set(sample.header)
    known = {*mapping.fields, *header, *DERIVED_ATTRIBUTES}
    try:
        rules = load_rules(sections.get("scoring"), known_attributes=known)
    except ScoringError as exc:
        raise ConfigError(origin, getattr(exc, "where", "scoring"), getattr(exc, "problem", str(exc))) from None
    explicit = set(((mapping_section or {}).get("fields") or {}) if isinstance(mapping_section, dict) else ())
    checker = _Checker(source, sample, dialect, mapping, rules, explicit)
    checker.run()
    extended = LeadMapping(
        crm=mapping.crm,
        object_type=mapping.object_type,
        fields={**mapping.fields, **checker.as_text},
        objects=mapping.objects,
    )
    return FileCheck(
        source,
        dialect,
        sample,
        compile_rules(rules, mapping_version=mapping.version),
        extended,
        checker.errors,
        checker.warnings,
        checker.never_fire,
        checker.notes,
    )


def references(rules: Rules) -> list[Reference]:
    """Every attribute each active rule reads on the lead, with the text values it compares against."""
    return [
        Reference(r.where, r.rule, r.attribute, tuple(v for v in r.values if isinstance(v, str)))
        for r in attribute_references(rules)
        if not r.activity  # an event's `where` reads activities, which a CSV has none of
    ]


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


class _Checker:
    def __init__(
        self,
        source: Path,
        sample: Sample,
        dialect: CsvDialect,
        mapping: LeadMapping,
        rules: Rules,
        explicit: set[str],
    ) -> None:
        self.source = source
        self.sample = sample
        self.dialect = dialect
        self.mapping = mapping
        self.rules = rules
        self.explicit = explicit
        self.header = sample.header
        self.position = {name: i for i, name in enumerate(sample.header)}
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.never_fire: dict[str, str] = {}
        self.notes: list[str] = []
        #: columns rules use by their own name (not mapped): read as text
        self.as_text: dict[str, FieldSpec] = {}
        #: attributes this file cannot give a value (mapped column absent, unknown name)
        self.absent: set[str] = set()
        #: attributes that are errors (neither mapped, nor a column, nor derived)
        self.unknown: set[str] = set()
        self._distinct: dict[str, Counter[str]] = {}

    def run(self) -> None:
        for attribute in sorted(self.explicit):
            spec = self.mapping.fields.get(attribute)
            if spec is not None and spec.property not in self.position:
                self.errors.append(
                    f"csv.fields.{attribute}: column {spec.property!r} is not in the header of {self.source}"
                    f"{self._closest(spec.property, self.header, 'columns')}"
                )
        refs = references(self.rules)
        for ref in refs:
            self._attribute(ref)
        self._derived()
        for ref in refs:
            if ref.values and ref.attribute not in self.absent:
                self._values(ref)
        self._never_fire()
        self._decay()

    def column_of(self, attribute: str) -> str | None:
        spec = self.mapping.fields.get(attribute)
        if spec is not None:
            return spec.property if spec.property in self.position else None
        return attribute if attribute in self.position else None

    def _attribute(self, ref: Reference) -> None:
        name = ref.attribute
        if name in DERIVED_ATTRIBUTES or name in self.absent:
            return
        spec = self.mapping.fields.get(name)
        if spec is not None:
            if spec.property not in self.position:
                self.absent.add(name)
                if name not in self.explicit:  # explicit ones are reported once, above
                    hint = self._closest(spec.property, self.header, "columns")
                    self.never_fire.setdefault(
                        ref.rule, f"no column {spec.property!r} for {name}{hint}; map it under csv.fields.{name}"
                    )
            return
        if name in self.position:
            counter = name in {r.counter for _, _, r in self.rules.iter_rules()}
            self.as_text[name] = FieldSpec(property=name, type="float" if counter else "str")
            return
        self.absent.add(name)
        self.unknown.add(name)
        mapped = {spec.property for spec in self.mapping.fields.values()}
        candidates = [*self.mapping.fields, *(c for c in self.header if c not in mapped), *DERIVED_ATTRIBUTES]
        self.errors.append(
            f"{ref.place}: unknown attribute {name!r}: not mapped, not a column of {self.source}, not derived"
            f"{self._closest(name, candidates, 'names')}"
        )

    def _derived(self) -> None:
        """A derived attribute is absent when every attribute it is derived from is."""
        emails = ("email", *self.rules.emails.secondary_attributes)
        dates = ("created_at", *self.rules.activity.timestamp_attributes)
        for derived, sources in (("email_domain", emails), ("company_email", emails), ("last_engaged_at", dates)):
            if all(self.column_of(a) is None for a in sources):
                self.absent.add(derived)

    @staticmethod
    def _closest(word: str, choices: Iterable[str], kind: str) -> str:
        close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=3, cutoff=0.6)
        if not close:
            return ""
        return (
            f" (did you mean {' or '.join(repr(c) for c in close)}?)"
            if kind == "names"
            else (f" (closest {kind}: {', '.join(repr(c) for c in close)})")
        )

    def distinct(self, column: str) -> Counter[str]:
        """The column's values in the sample (trimmed, null tokens left out), by how often they occur."""
        if column not in self._distinct:
            i = self.position[column]
            spec = next((s for s in self.mapping.fields.values() if s.property == column), None)
            split = spec is not None and spec.type == "list"
            counts: Counter[str] = Counter()
            for row in self.sample.rows:
                cell = row[i].strip()
                if cell in self.dialect.nulls:
                    continue
                if split:
                    counts.update(p.strip() for p in cell.split(";") if p.strip())
                else:
                    counts[cell] += 1
            self._distinct[column] = counts
        return self._distinct[column]

    def _values(self, ref: Reference) -> None:
        column = self.column_of(ref.attribute)
        spec = self.mapping.fields.get(ref.attribute)
        if column is None or (spec is not None and spec.type not in ("str", "list")):
            return
        counts = self.distinct(column)
        seen = {_normal(v) for v in counts}
        rows = f"all {len(self.sample.rows)} rows" if self.sample.complete else f"first {len(self.sample.rows)} rows"
        for value in ref.values:
            if _normal(value) in seen:
                continue
            if not counts:
                self.warnings.append(f"{ref.place}: column {column!r} has no values in the {rows} of the file")
                return
            common = [v for v, _ in counts.most_common(DISTINCT_LIMIT)]
            by_normal = {_normal(v): v for v in common}
            close = difflib.get_close_matches(_normal(value), list(by_normal), n=3, cutoff=0.5)
            hint = f"; closest: {', '.join(repr(by_normal[c]) for c in close)}" if close else ""
            self.warnings.append(
                f"{ref.place}: value {value!r} of {ref.attribute} never occurs in column {column!r} ({rows}){hint}"
            )

    def _never_fire(self) -> None:
        for _, _, rule in self.rules.iter_rules():
            if rule.name in self.never_fire:
                if _fires(rule, self.absent) is not False:
                    del self.never_fire[rule.name]  # e.g. `missing: true` on an absent column fires for everyone
                continue
            if rule.kind == "event":
                self.never_fire[rule.name] = "it counts activities, and a CSV has none (use a counter column)"
            elif _fires(rule, self.absent) is False:
                used = sorted(self.absent & set(_attributes(rule)))
                if not set(used) <= self.unknown:  # an unknown name is an error already
                    self.never_fire[rule.name] = f"no value for {', '.join(used)} in this file"

    def _decay(self) -> None:
        stuck = []
        for name, anchor in decaying_rules(self.rules):
            if name in self.never_fire:
                continue
            if anchor in self.absent or (anchor not in DERIVED_ATTRIBUTES and self.column_of(anchor) is None):
                stuck.append(name)
        if stuck:
            dates = ", ".join(date_sources(self.rules, "last_engaged_at"))
            self.notes.append(
                f"{len(stuck)} decaying rule{'s' if len(stuck) > 1 else ''} ({', '.join(stuck)}) have no date to "
                f"age from in this file (last_engaged_at comes from {dates}): their points are not decayed"
            )


def _attributes(rule: RuleSpec) -> Iterator[str]:
    for cond in (rule.when, rule.unless):
        for test in tests(cond) if cond is not None else ():
            yield test.attribute
    for name in (rule.counter, rule.attribute):
        if name is not None:
            yield name


def _fires(rule: RuleSpec, absent: set[str]) -> bool | None:
    """False when ``rule`` can fire for no lead of a file lacking ``absent``; None when it depends."""
    if rule.counter is not None and rule.counter in absent:
        return False
    # a table gives an absent value its `missing` points, else its `default`
    given = rule.missing if rule.missing is not None else rule.default
    if rule.attribute is not None and rule.attribute in absent and not given:
        return False
    when = _truth(rule.when, absent) if rule.when is not None else None
    unless = _truth(rule.unless, absent) if rule.unless is not None else None
    if when is False or unless is True:
        return False
    return None


def _truth(cond: Cond, absent: set[str]) -> bool | None:
    """The value of ``cond`` for every lead when the ``absent`` attributes are missing; None: it depends."""
    if isinstance(cond, Test):
        if cond.attribute not in absent:
            return None
        return cond.op == "exists" and cond.arg is False
    if isinstance(cond, NotOf):
        inner = _truth(cond.item, absent)
        return None if inner is None else not inner
    values = [_truth(item, absent) for item in cond.items]
    decisive = isinstance(cond, AnyOf)  # any: one True decides it; all: one False
    if decisive in values:
        return decisive
    return (not decisive) if all(v is not None for v in values) else None
