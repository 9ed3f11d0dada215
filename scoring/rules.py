"""The scoring rules: the YAML language, validated with pydantic, and its loading.

``load_rules(data)`` takes the ``scoring:`` section of the user's config (already parsed). By default it
builds on the packaged defaults (``scoring/defaults/rules.yaml``): every top-level key the user gives
replaces the default's (the settings mappings ``qualification``, ``grades``, ``caps``, ``decay``, ``emails``,
``activity``, ``reasons`` are merged key by key; the rule lists ``fit``, ``engagement``, ``penalties`` are
replaced whole). ``base: none`` starts from nothing instead, and ``disable: [rule, ...]`` switches rules off.

Every problem raises ``RulesError`` naming the place, e.g.
``scoring.fit[2] (rule 'vp_title').points: expected a number or a list of numbers, got 'abc'``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ._values import MAX_POINTS
from .conditions import Cond, ConditionError, Scalar, parse_condition, show, tests, to_json
from .errors import RulesError
from .model import ACTIVITY_KINDS, COUNTERS, TPart
from .tables import Band, TableError, TableKey, match_text, parse_range_table, parse_value_table, sorted_bands

PARTS: tuple[TPart, ...] = ("fit", "engagement", "penalties")
#: attributes computed by the engine (they take precedence over mapped attributes of the same name)
DERIVED_ATTRIBUTES = ("email_domain", "company_email", "last_engaged_at")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


# -- field types with RevOps-readable messages ---------------------------------------------------------


def _fail(problem: str, key: str = "") -> PydanticCustomError:
    return PydanticCustomError("leadsync", "{problem}", {"problem": problem, "subpath": key})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float:
    if not _is_number(value):
        raise _fail(f"expected a number, got {show(value)}")
    return float(value)


def _positive(value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise _fail(f"expected a number greater than 0, got {show(value)}")
    return float(value)


def _score_level(value: Any) -> float:
    if not _is_number(value) or not 0 <= value <= 100:
        raise _fail(f"expected a score between 0 and 100, got {show(value)}")
    return float(value)


def _points(value: Any) -> float | tuple[float, ...]:
    if _is_number(value):
        items: tuple[Any, ...] = (value,)
    elif isinstance(value, list | tuple) and 0 < len(value) <= 100 and all(_is_number(v) for v in value):
        items = tuple(value)
    else:
        raise _fail(f"expected a number or a list of numbers, got {show(value)}")
    if any(abs(v) > MAX_POINTS for v in items):
        raise _fail(f"expected points between -{MAX_POINTS} and {MAX_POINTS}, got {show(value)}")
    return float(value) if _is_number(value) else tuple(float(v) for v in items)


def _half_life(value: Any) -> float | None:
    if value is None:
        return None
    if value is False or value == 0 or (isinstance(value, str) and value.lower() in ("off", "none")):
        return 0.0
    if not _is_number(value) or value < 0:
        raise _fail(f"expected a number of days > 0, or 0 / off for no decay, got {show(value)}")
    return float(value)


def _text_list(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(v, str) and v.strip() for v in items):
        raise _fail(f"expected a list of texts, got {show(value)}")
    return tuple(v.strip() for v in items)


def _condition(value: Any) -> Cond:
    try:
        return parse_condition(value)
    except ConditionError as exc:
        raise PydanticCustomError("leadsync", "{problem}", {"problem": exc.problem, "subpath": exc.path}) from None


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise _fail(f"expected a rule name of letters, digits, '_', '.' or '-' (at most 64), got {show(value)}")
    return value


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 60 or any(c in value for c in ";\n\r"):
        raise _fail(f"expected a short text (at most 60 characters, no ';'), got {show(value)}")
    return value.strip()


Number = Annotated[float, PlainValidator(_number)]
Positive = Annotated[float, PlainValidator(_positive)]
ScoreLevel = Annotated[float, PlainValidator(_score_level)]
Points = Annotated[
    float | tuple[float, ...],
    PlainValidator(_points),
    PlainSerializer(lambda v: list(v) if isinstance(v, tuple) else v),
]
HalfLife = Annotated[float | None, PlainValidator(_half_life)]
TextList = Annotated[tuple[str, ...], PlainValidator(_text_list), PlainSerializer(list)]
Condition = Annotated[Cond, PlainValidator(_condition), PlainSerializer(to_json)]
RuleName = Annotated[str, PlainValidator(_name)]
Label = Annotated[str | None, PlainValidator(_label)]
Attribute = Annotated[str, BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)]


def _value_table(value: Any) -> tuple[tuple[TableKey, float], ...]:
    try:
        return parse_value_table(value, MAX_POINTS)
    except TableError as exc:
        raise PydanticCustomError("leadsync", "{problem}", {"problem": exc.problem, "subpath": exc.subpath}) from None


def _range_table(value: Any) -> tuple[Band, ...]:
    try:
        return parse_range_table(value, MAX_POINTS)
    except TableError as exc:
        raise PydanticCustomError("leadsync", "{problem}", {"problem": exc.problem, "subpath": exc.subpath}) from None


def _table_points(value: Any) -> float:
    if not _is_number(value) or abs(value) > MAX_POINTS:
        raise _fail(f"expected a number of points between -{MAX_POINTS} and {MAX_POINTS}, got {show(value)}")
    return float(value)


def _dump_value_table(entries: tuple[tuple[TableKey, float], ...]) -> list[list[Any]]:
    # canonical: keys as they match (case and order do not change the meaning, nor the rules version)
    return sorted(([match_text(k), type(k).__name__, p] for k, p in entries), key=lambda e: (e[0], e[1]))


ValueTableField = Annotated[
    tuple[tuple[TableKey, float], ...], PlainValidator(_value_table), PlainSerializer(_dump_value_table)
]
RangeTableField = Annotated[
    tuple[Band, ...],
    PlainValidator(_range_table),
    PlainSerializer(lambda bands: [b.as_json() for b in sorted_bands(bands)]),
]
TablePoints = Annotated[float, PlainValidator(_table_points)]


def _unset(value: Any) -> bool:
    return value is None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- the rule language ---------------------------------------------------------------------------------


def _kinds(value: Any) -> tuple[str, ...]:
    return tuple(sorted(set(_text_list(value))))


class EventSpec(_Model):
    """Which activities an event rule counts (``kind``: one kind or a list; order and repeats do not
    matter)."""

    kind: Annotated[tuple[str, ...], PlainValidator(_kinds), PlainSerializer(list)]
    where: Condition | None = None
    within_days: Positive | None = None


class RuleSpec(_Model):
    """One rule. Its type follows from its keys: ``event`` (event rule), ``counter`` (counter rule),
    ``points_by_value`` / ``points_by_range`` (a lookup table on ``attribute``), or only ``when``
    (condition rule)."""

    name: RuleName
    label: Label = None
    # absent (None) keys added after the first release are left out of the dump, so that adding them did
    # not change the version of any existing rule set
    points: Points | None = Field(None, exclude_if=_unset)
    attribute: Attribute | None = Field(None, exclude_if=_unset)
    points_by_value: ValueTableField | None = Field(None, exclude_if=_unset)
    points_by_range: RangeTableField | None = Field(None, exclude_if=_unset)
    default: TablePoints | None = Field(None, exclude_if=_unset)
    missing: TablePoints | None = Field(None, exclude_if=_unset)
    when: Condition | None = None
    unless: Condition | None = None
    event: EventSpec | None = None
    counter: Attribute | None = None
    per: Positive = 1.0
    at_least: Number | None = None
    once: bool = False
    cap: Positive | None = None
    half_life_days: HalfLife = None
    decay_from: Attribute | None = None
    group: Attribute | None = None
    #: kept with its points by `leadsync rules fit`; no effect on scoring, nor on the rules version
    locked: bool = Field(False, exclude=True)

    @property
    def kind(self) -> Literal["event", "counter", "value_table", "range_table", "condition"]:
        if self.event is not None:
            return "event"
        if self.counter is not None:
            return "counter"
        if self.points_by_value is not None:
            return "value_table"
        if self.points_by_range is not None:
            return "range_table"
        return "condition"

    @property
    def is_table(self) -> bool:
        return self.points_by_value is not None or self.points_by_range is not None

    @property
    def display_label(self) -> str:
        return self.label or self.name.replace("_", " ")

    @model_validator(mode="after")
    def _check_shape(self) -> RuleSpec:
        if self.event is not None and self.counter is not None:
            raise _fail("expected either `event` or `counter`, not both", ".counter")
        if self.is_table:
            self._check_table()
        else:
            for key in ("attribute", "default", "missing"):
                if getattr(self, key) is not None:
                    raise _fail(f"`{key}` applies to lookup tables only (points_by_value / points_by_range)", f".{key}")
            if self.points is None:
                raise _fail("missing; this key is required", ".points")
        if self.kind == "condition":
            if self.when is None:
                raise _fail(
                    "expected `when` (a condition rule), `event` (an event rule) or `counter` (a counter rule)",
                    ".when",
                )
            if isinstance(self.points, tuple):
                raise _fail(
                    "expected one number: a list of points (escalating / diminishing) needs an `event` "
                    "or `counter` rule",
                    ".points",
                )
            for key in ("cap", "half_life_days"):
                if getattr(self, key) is not None:
                    raise _fail(f"`{key}` applies to event and counter rules only", f".{key}")
        if self.kind != "counter":
            for key, default in (("per", 1.0), ("at_least", None), ("once", False), ("decay_from", None)):
                if getattr(self, key) != default:
                    raise _fail(f"`{key}` applies to counter rules only", f".{key}")
        if self.once and isinstance(self.points, tuple):
            raise _fail("expected one number with `once: true`", ".points")
        if isinstance(self.points, tuple):
            signs = {math.copysign(1.0, p) for p in self.points if p != 0}
            if len(signs) > 1:
                raise _fail("expected points of one sign in the list", ".points")
        return self

    def _check_table(self) -> None:
        if self.points_by_value is not None and self.points_by_range is not None:
            raise _fail("expected either `points_by_value` or `points_by_range`, not both", ".points_by_range")
        table = "points_by_value" if self.points_by_value is not None else "points_by_range"
        if self.event is not None or self.counter is not None:
            key = "event" if self.event is not None else "counter"
            raise _fail(f"expected either `{table}` or `{key}`, not both", f".{key}")
        if self.points is not None:
            raise _fail(f"expected no `points`: the rule's `{table}` gives them", ".points")
        if self.attribute is None:
            raise _fail(f"missing; `{table}` needs the attribute whose value it looks up", ".attribute")
        for key in ("cap", "half_life_days"):
            if getattr(self, key) is not None:
                raise _fail(f"`{key}` applies to event and counter rules only", f".{key}")


class Qualification(_Model):
    """MQL: qualify at ``threshold``; stay qualified until the score falls below ``release``."""

    threshold: ScoreLevel = 60.0
    release: ScoreLevel | None = None

    @model_validator(mode="after")
    def _check(self) -> Qualification:
        if self.release is not None and self.release > self.threshold:
            raise _fail(
                f"expected a release level at or below the threshold ({show(self.threshold)}), "
                f"got {show(self.release)}",
                ".release",
            )
        return self

    @property
    def release_level(self) -> float:
        return self.threshold if self.release is None else self.release


class Grades(_Model):
    hot: ScoreLevel = 70.0
    warm: ScoreLevel = 40.0

    @model_validator(mode="after")
    def _check(self) -> Grades:
        if self.warm > self.hot:
            raise _fail(f"expected warm <= hot ({show(self.hot)}), got {show(self.warm)}", ".warm")
        return self


class Caps(_Model):
    """Upper bounds on the fit and engagement parts and on the size of the penalties part."""

    fit: Positive | None = None
    engagement: Positive | None = None
    penalties: Positive | None = None


class Decay(_Model):
    """Default half-life of event and counter rules (a rule's own ``half_life_days`` wins)."""

    half_life_days: HalfLife = None


class Emails(_Model):
    secondary_attributes: TextList = ()
    role_local_parts: TextList = ()
    competitor_domains: TextList = ()
    extra_free_domains: TextList = ()
    extra_disposable_domains: TextList = ()


class ActivitySettings(_Model):
    """What counts as the lead's own engagement for ``last_engaged_at`` (and so inactivity)."""

    timestamp_attributes: TextList = ()
    ignore_kinds: TextList = ()


class Reasons(_Model):
    max_hits: Annotated[int, PlainValidator(lambda v: _int_between(v, 1, 20))] = 5
    max_length: Annotated[int, PlainValidator(lambda v: _int_between(v, 20, 1000))] = 250


def _int_between(value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(f"expected a whole number from {lo} to {hi}, got {show(value)}")
    return value


class Rules(_Model):
    """A validated, normalized rule set (what ``load_rules`` returns)."""

    base: Literal["defaults", "none"] = "defaults"
    disable: TextList = ()
    qualification: Qualification = Qualification()
    grades: Grades = Grades()
    caps: Caps = Caps()
    decay: Decay = Decay()
    emails: Emails = Emails()
    activity: ActivitySettings = ActivitySettings()
    reasons: Reasons = Reasons()
    fit: tuple[RuleSpec, ...] = ()
    engagement: tuple[RuleSpec, ...] = ()
    penalties: tuple[RuleSpec, ...] = ()

    def iter_rules(self) -> Iterator[tuple[TPart, int, RuleSpec]]:
        for part in PARTS:
            for index, rule in enumerate(getattr(self, part)):
                yield part, index, rule

    def normalized(self) -> dict[str, Any]:
        """The canonical JSON-able form the version is computed from."""
        return self.model_dump(mode="json", exclude={"base", "disable"})

    @property
    def version(self) -> str:
        return rules_version(self)


def rules_version(rules: Rules) -> str:
    """Content hash (12 hex digits) of the normalized rules: formatting, comments, key order and
    shorthand do not change it; any change of meaning does."""
    text = json.dumps(rules.normalized(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# -- loading ---------------------------------------------------------------------------------------------


@cache
def _default_data() -> dict[str, Any]:
    text = resources.files("scoring").joinpath("defaults/rules.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    section = data["scoring"] if isinstance(data, dict) and "scoring" in data else data
    if not isinstance(section, dict):
        raise RulesError("scoring/defaults/rules.yaml", "expected a `scoring:` mapping")
    return section


@cache
def default_rules() -> Rules:
    """The packaged default rules (``scoring/defaults/rules.yaml``)."""
    return _validate(_default_data(), "scoring/defaults/rules.yaml")


_SETTINGS = ("qualification", "grades", "caps", "decay", "emails", "activity", "reasons")


def load_rules(
    data: Mapping[str, Any] | None, *, source: str = "scoring", known_attributes: Collection[str] | None = None
) -> Rules:
    """Validate the ``scoring:`` section of a config; ``None`` or empty gives the packaged defaults.

    ``known_attributes`` are the attributes the lead mapping provides. Given, every ``counter:`` must be one
    of them or a canonical counter (:data:`COUNTERS`), and every event kind (and ``activity.ignore_kinds``)
    one of :data:`ACTIVITY_KINDS`: a misspelled name would otherwise make a rule that silently never fires.
    """
    if data is None or (isinstance(data, Mapping) and not data):
        return default_rules()
    if not isinstance(data, Mapping):
        raise RulesError(source, f"expected a mapping of scoring settings and rules, got {show(data)}")
    base = data.get("base", "defaults")
    if base not in ("defaults", "none"):
        raise RulesError(f"{source}.base", f"expected 'defaults' or 'none', got {show(base)}")
    merged: dict[str, Any]
    if base == "defaults":
        merged = dict(_default_data())
        for key, value in data.items():
            if key in _SETTINGS and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    else:
        merged = dict(data)
    return _validate(merged, source, known_attributes)


def _validate(data: Mapping[str, Any], source: str, known_attributes: Collection[str] | None = None) -> Rules:
    try:
        rules = Rules.model_validate(data)
    except ValidationError as exc:
        # an unknown key (a typo) explains the "missing" error that comes with it: report it first
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        where, problem = _describe_error(errors[0], data, source)
        if len(errors) > 1:
            problem += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise RulesError(where, problem) from None
    if known_attributes is not None:
        _check_names(rules, source, known_attributes)
    return _check_rules(rules, source)


def _where(source: str, loc: tuple[int | str, ...], data: Any) -> str:
    """``('fit', 2, 'points')`` -> ``scoring.fit[2] (rule 'vp_title').points``."""
    out = source
    node: Any = data
    for i, key in enumerate(loc):
        if isinstance(key, int):
            out += f"[{key}]"
            node = node[key] if isinstance(node, list | tuple) and 0 <= key < len(node) else None
            if i == 1 and loc[0] in PARTS and isinstance(node, Mapping) and isinstance(node.get("name"), str):
                out += f" (rule {node['name']!r})"
        else:
            out += f".{key}"
            node = node.get(key) if isinstance(node, Mapping) else None
    return out


_TYPE_MESSAGES = {
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected text",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
}


def _describe_error(error: Any, data: Any, source: str) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "leadsync":
        return _where(source, loc, data) + str(ctx.get("subpath", "")), str(ctx["problem"])
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        keys = list(model.model_fields) if model is not None else []
        return _where(
            source, loc, data
        ), f"unknown key{_did_you_mean(str(loc[-1]), keys)}; expected one of: {', '.join(keys)}"
    if kind == "missing":
        return _where(source, loc, data), "missing; this key is required"
    if kind == "literal_error":
        return _where(source, loc, data), f"expected {ctx.get('expected', '')}, got {show(error['input'])}"
    message = _TYPE_MESSAGES.get(kind, error["msg"])
    return _where(source, loc, data), f"{message}, got {show(error['input'])}"


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Rules
    for key in loc:
        if isinstance(key, int):
            continue
        field = model.model_fields.get(key)
        if field is None:
            return None
        nested = _nested_model(field.annotation)
        if nested is None:
            return None
        model = nested
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _check_rules(rules: Rules, source: str) -> Rules:
    """Checks across rules and parts, then applies ``disable``."""
    seen: dict[str, str] = {}
    groups: dict[str, TPart] = {}
    for part, index, rule in rules.iter_rules():
        where = f"{source}.{part}[{index}] (rule {rule.name!r})"
        if rule.name in seen:
            raise RulesError(f"{where}.name", f"expected a unique rule name; also used at {seen[rule.name]}")
        seen[rule.name] = f"{source}.{part}[{index}]"
        wrong = _wrong_sign(rule, part)
        if wrong is not None:
            key, value = wrong
            expected = (
                "penalties take negative points (e.g. -10)"
                if part == "penalties"
                else f"{part} rules take points >= 0 (negative rules belong in `penalties`)"
            )
            raise RulesError(f"{where}{key}", f"{expected}, got {show(value)}")
        if rule.group is not None:
            other = groups.setdefault(rule.group, part)
            if other != part:
                raise RulesError(
                    f"{where}.group", f"expected rules of one part in a group; {rule.group!r} is in {other}"
                )
    for i, name in enumerate(rules.disable):
        if name not in seen:
            raise RulesError(f"{source}.disable[{i}]", f"expected the name of a rule, got {name!r}")
    if not rules.disable:
        return rules
    off = set(rules.disable)
    return rules.model_copy(
        update={part: tuple(r for r in getattr(rules, part) if r.name not in off) for part in PARTS}
    )


def _check_names(rules: Rules, source: str, known_attributes: Collection[str]) -> None:
    """Counters and event kinds must exist: ``page_veiws`` is a rule that never fires, not a rule."""
    counters = sorted({*COUNTERS, *known_attributes})
    for part, index, rule in rules.iter_rules():
        where = f"{source}.{part}[{index}] (rule {rule.name!r})"
        if rule.counter is not None and rule.counter not in counters:
            raise RulesError(
                f"{where}.counter",
                f"unknown counter {rule.counter!r}{_did_you_mean(rule.counter, counters)}; expected a counter "
                f"({', '.join(COUNTERS)}) or another attribute the mapping provides",
            )
        for kind in rule.event.kind if rule.event is not None else ():
            if kind not in ACTIVITY_KINDS:
                raise RulesError(f"{where}.event.kind", _unknown_kind(kind))
    for i, kind in enumerate(rules.activity.ignore_kinds):
        if kind not in ACTIVITY_KINDS:
            raise RulesError(f"{source}.activity.ignore_kinds[{i}]", _unknown_kind(kind))


def _unknown_kind(kind: str) -> str:
    return (
        f"unknown activity kind {kind!r}{_did_you_mean(kind, list(ACTIVITY_KINDS))}; "
        f"expected one of: {', '.join(ACTIVITY_KINDS)}"
    )


def _wrong_sign(rule: RuleSpec, part: TPart) -> tuple[str, float] | None:
    """The first (key, points) of a rule against its part's sign: fit / engagement >= 0, penalties <= 0."""

    def wrong(p: float) -> bool:
        return p > 0 if part == "penalties" else p < 0

    if rule.points_by_value is not None:
        for key, p in rule.points_by_value:
            if wrong(p):
                return (f".points_by_value.{key}" if isinstance(key, str) else f".points_by_value[{show(key)}]"), p
    if rule.points_by_range is not None:
        for i, band in enumerate(rule.points_by_range):
            if wrong(band.points):
                return f".points_by_range[{i}].points", band.points
    for key in ("default", "missing"):
        p = getattr(rule, key)
        if p is not None and wrong(p):
            return f".{key}", p
    points = rule.points if isinstance(rule.points, tuple) else () if rule.points is None else (rule.points,)
    if any(wrong(p) for p in points):
        return ".points", next((p for p in points if p != 0), points[0])
    return None


# -- what the rules read ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeRef:
    """One attribute an active rule reads, for checks against real data (``leadsync check --input``).

    ``values`` are the literals the rule compares the attribute with for equality (``equals`` / ``in`` /
    ``not_equals`` / ``not_in`` tests and ``points_by_value`` keys), in the order written; ``where`` names
    the place, e.g. ``scoring.fit[2] (rule 'origin').points_by_value``; ``activity`` marks an attribute of
    the lead's activities (``event.where``), not of the lead; ``derived`` one the engine computes.
    """

    rule: str
    part: TPart
    attribute: str
    values: tuple[Scalar, ...]
    where: str
    activity: bool = False

    @property
    def derived(self) -> bool:
        return not self.activity and self.attribute in DERIVED_ATTRIBUTES


_EQUALITY_OPS = ("equals", "not_equals", "in", "not_in")


def attribute_references(rules: Rules, *, source: str = "scoring") -> list[AttributeRef]:
    """Every attribute the active rules use, rule by rule (conditions, tables, counters, the date a decaying
    counter ages from, and the activity attributes of event ``where`` clauses)."""
    return [
        AttributeRef(
            rule.name, part, attribute, values, f"{source}.{part}[{index}] (rule {rule.name!r}){key}", activity
        )
        for part, index, rule in rules.iter_rules()
        for attribute, values, key, activity in _rule_references(rules, rule)
    ]


def _rule_references(rules: Rules, rule: RuleSpec) -> Iterator[tuple[str, tuple[Scalar, ...], str, bool]]:
    """(attribute, literals, key, is an activity attribute) of one rule."""
    for key, cond in ((".when", rule.when), (".unless", rule.unless)):
        for attribute, values in _condition_literals(cond):
            yield attribute, values, key, False
    if rule.event is not None:
        for attribute, values in _condition_literals(rule.event.where):
            yield attribute, values, ".event.where", True
    if rule.counter is not None:
        yield rule.counter, (), ".counter", False
        if effective_half_life(rules, rule):
            yield rule.decay_from or "last_engaged_at", (), ".decay_from", False
    if rule.attribute is not None:
        if rule.points_by_value is not None:
            yield rule.attribute, tuple(k for k, _ in rule.points_by_value), ".points_by_value", False
        else:
            yield rule.attribute, (), ".points_by_range", False


def _condition_literals(cond: Cond | None) -> list[tuple[str, tuple[Scalar, ...]]]:
    """(attribute, equality literals) per attribute of a condition, in order of appearance."""
    by_attribute: dict[str, list[Scalar]] = {}
    for test in tests(cond) if cond is not None else ():
        values = by_attribute.setdefault(test.attribute, [])
        if test.op in _EQUALITY_OPS:
            for value in test.arg if isinstance(test.arg, tuple) else (test.arg,):
                if value not in values:
                    values.append(value)
    return [(attribute, tuple(values)) for attribute, values in by_attribute.items()]


def effective_half_life(rules: Rules, rule: RuleSpec) -> float | None:
    """The half-life an event or counter rule decays with (its own, else ``decay.half_life_days``);
    ``None`` or 0 when it does not decay."""
    if rule.kind not in ("event", "counter"):
        return None
    return rule.half_life_days if rule.half_life_days is not None else rules.decay.half_life_days


class DecayingRule(NamedTuple):
    """A counter rule that decays, and the date it ages from (``decay_from``, default ``last_engaged_at``)."""

    rule: str
    date_attribute: str


def decaying_rules(rules: Rules) -> list[DecayingRule]:
    """The active counter rules that decay, each with the date attribute it ages from.

    On a lead without that date the rule keeps its points undecayed (nothing to age from), so a check of a
    file without date columns can say so once per rule. Event rules are not listed: an activity always has
    its timestamp. :func:`date_sources` tells which attributes give the date.
    """
    return [
        DecayingRule(rule.name, rule.decay_from or "last_engaged_at")
        for _, _, rule in rules.iter_rules()
        if rule.kind == "counter" and effective_half_life(rules, rule)
    ]


def date_sources(rules: Rules, date_attribute: str) -> tuple[str, ...]:
    """The lead attributes a date is read from: for the derived ``last_engaged_at``, ``created_at`` and
    ``activity.timestamp_attributes`` (besides the lead's activities); for any other attribute, itself."""
    if date_attribute == "last_engaged_at":
        return ("created_at", *(a for a in rules.activity.timestamp_attributes if a != "created_at"))
    return (date_attribute,)
