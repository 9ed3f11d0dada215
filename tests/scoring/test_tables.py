"""Lookup tables (``points_by_value``) and numeric ranges (``points_by_range``): validation, matching,
explanations, and the same points on the row and the columnar path (``util.score`` checks both)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from scoring import Categorical, LeadBatch, RulesError, load_rules
from scoring.rules import AttributeRef, attribute_references

from .util import NOW, hit, lead, points, rules_from, score

ORIGIN = """
fit:
  - name: origin
    attribute: lead_origin
    points_by_value: {lead add form: 30, landing page submission: 5, API: 3}
    default: 1
"""

TIME_ON_SITE = """
engagement:
  - name: time_on_site
    attribute: time_on_site_s
    points_by_range:
      - {below: 100, points: 0}
      - {from: 100, below: 500, points: 5}
      - {from: 500, below: 1000, points: 15}
      - {from: 1000, points: 25}
"""


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(RulesError) as info:
        load_rules({"base": "none", **data})
    return str(info.value)


# -- points_by_value --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Lead Add Form", 30),
        ("  lead add FORM ", 30),  # case-insensitive and trimmed, as text tests
        ("api", 3),
        ("Landing Page Submission", 5),
        ("Cold call", 1),  # any other value: default
        (None, 1),  # missing, and no `missing:`: default
        ("   ", 1),
        (["", "api", "Lead Add Form"], 3),  # a list: its first element in the table
        (["nope"], 1),
    ],
)
def test_value_table_matches_like_text_tests(value: Any, expected: float) -> None:
    engine = rules_from(ORIGIN)
    assert points(score(engine, lead(lead_origin=value)), "origin") == expected


def test_missing_has_its_own_points_and_default_is_optional() -> None:
    engine = rules_from(
        """
penalties:
  - name: origin_penalty
    attribute: lead_origin
    points_by_value: {spam: -20}
    missing: -5
"""
    )
    assert points(score(engine, lead(lead_origin="SPAM")), "origin_penalty") == -20
    assert points(score(engine, lead()), "origin_penalty") == -5
    assert points(score(engine, lead(lead_origin="")), "origin_penalty") == -5
    # no default: any other value is 0 points, and 0 points is no hit at all
    result = score(engine, lead(lead_origin="web"))
    assert hit(result, "origin_penalty") is None and result.raw_total == 0


def test_number_and_flag_keys_match_as_equals_does() -> None:
    engine = rules_from(
        """
fit:
  - name: tier
    attribute: tier
    points_by_value: {3: 10, 2.5: 4, yes: 2}
"""
    )
    assert points(score(engine, lead(tier="3")), "tier") == 10
    assert points(score(engine, lead(tier=3.0)), "tier") == 10
    assert points(score(engine, lead(tier=" 2.50 ")), "tier") == 4
    assert points(score(engine, lead(tier="Yes")), "tier") == 2  # YAML reads `yes:` as true
    assert points(score(engine, lead(tier=True)), "tier") == 2
    assert points(score(engine, lead(tier="4")), "tier") == 0


def test_explanation_and_reasons_name_the_matched_value() -> None:
    engine = rules_from(ORIGIN + TIME_ON_SITE[1:])
    result = score(engine, lead(lead_origin=" Lead Add Form", time_on_site_s=750))
    origin = hit(result, "origin")
    assert origin is not None and origin.value == "Lead Add Form" and origin.count == 1
    assert origin.label == "Lead origin = Lead Add Form"
    tos = hit(result, "time_on_site")
    assert tos is not None and tos.value == "750 (500 to 1000)"
    assert result.reasons == "+30 Lead origin = Lead Add Form; +15 Time on site s = 750 (500 to 1000)"
    assert score(engine, lead(lead_origin="Web")).reasons == "+1 Lead origin = Web"
    labelled = rules_from(ORIGIN.replace("name: origin", "name: origin\n    label: Source"))
    assert score(labelled, lead(lead_origin="api")).reasons == "+3 Source = api"


def test_missing_value_is_explained_as_missing() -> None:
    engine = rules_from(
        "penalties: [{name: no_source, attribute: lead_source, points_by_value: {spam: -9}, missing: -5}]"
    )
    result = score(engine, lead())
    assert result.reasons == "-5 Lead source missing"
    found = hit(result, "no_source")
    assert found is not None and found.value == ""


def test_tables_combine_with_when_unless_and_groups() -> None:
    engine = rules_from(
        """
fit:
  - name: origin
    attribute: lead_origin
    points_by_value: {api: 3, form: 20}
    when: {country: US}
    unless: {industry: retail}
    group: source
  - name: form_flat
    points: 10
    when: {lead_origin: form}
    group: source
"""
    )
    assert points(score(engine, lead(lead_origin="form", country="us")), "origin") == 20
    assert points(score(engine, lead(lead_origin="form", country="us")), "form_flat") == 0  # group: strongest
    assert points(score(engine, lead(lead_origin="form", country="de")), "form_flat") == 10
    assert points(score(engine, lead(lead_origin="api", country="us", industry="Retail")), "origin") == 0


# -- points_by_range --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (99.99, 0),
        (100, 5),  # from: inclusive
        (499, 5),
        (500, 15),  # below: exclusive
        ("750", 15),  # numeric text counts, as in range tests
        (1000, 25),
        (1e12, 25),
        (float("inf"), 25),
        (-5, 0),
        ("abc", 0),
        (None, 0),
        ([None, "600"], 15),
    ],
)
def test_range_bands(value: Any, expected: float) -> None:
    assert points(score(rules_from(TIME_ON_SITE), lead(time_on_site_s=value)), "time_on_site") == expected


def test_range_gaps_default_and_missing() -> None:
    engine = rules_from(
        """
fit:
  - name: size
    attribute: employees
    points_by_range: [{from: 50, below: 200, points: 10}, {from: 1000, below: 5000, points: 20}]
    default: 2
    missing: 1
"""
    )
    assert points(score(engine, lead(employees=100)), "size") == 10
    assert points(score(engine, lead(employees=500)), "size") == 2  # in no band
    assert points(score(engine, lead(employees=5000)), "size") == 2
    assert points(score(engine, lead()), "size") == 1
    result = score(engine, lead(employees=500))
    found = hit(result, "size")
    assert found is not None and found.value == "500" and result.reasons == "+2 Employees = 500"
    text = rules_from(TIME_ON_SITE + "    default: 3\n")
    assert points(score(text, lead(time_on_site_s="many")), "time_on_site") == 3  # not a number: default


def test_bands_may_be_written_in_any_order() -> None:
    shuffled = TIME_ON_SITE.replace("      - {below: 100, points: 0}\n", "", 1).replace(
        "points_by_range:\n", "points_by_range:\n      - {below: 100, points: 0}\n", 1
    )
    reversed_bands = """
engagement:
  - name: time_on_site
    attribute: time_on_site_s
    points_by_range:
      - {from: 1000, points: 25}
      - {from: 500, below: 1000, points: 15}
      - {from: 100, below: 500, points: 5}
      - {below: 100, points: 0}
"""
    a, b = rules_from(shuffled), rules_from(reversed_bands)
    assert a.version == b.version
    for value in (50, 100, 700, 5000):
        assert score(a, lead(time_on_site_s=value)) == score(b, lead(time_on_site_s=value))


# -- columnar input ---------------------------------------------------------------------------------------


def test_numeric_and_categorical_columns_score_like_objects() -> None:
    engine = rules_from(ORIGIN + TIME_ON_SITE[1:])
    seconds = np.array([50.0, 100.0, np.nan, 999.5, 1000.0, -np.inf, np.inf, 500.0])
    origins = ["api", "Lead add form", None, "x", " API ", "", "landing page submission", "api"]
    categorical = Categorical(np.array([0, 1, -1, 2, 0, 1, 2, 0]), ["API", "lead add form", "web"])
    items = [
        (lead(id=str(i), lead_origin=o, time_on_site_s=s), [], None)
        for i, (o, s) in enumerate(zip(origins, seconds.tolist(), strict=True))
    ]
    expected = [engine.score(le, acts, NOW, prev) for le, acts, prev in items]
    batch = LeadBatch.from_columns(
        len(origins), {"lead_origin": origins, "time_on_site_s": seconds}, ids=[str(i) for i in range(8)]
    )
    assert engine.score_batch(batch, NOW).scores() == expected
    assert engine.score_batch(LeadBatch.from_items(items), NOW).scores() == expected
    cats = [categorical.categories[c] if c >= 0 else None for c in categorical.codes.tolist()]
    items = [
        (lead(id=str(i), lead_origin=o, time_on_site_s=s), [], None)
        for i, (o, s) in enumerate(zip(cats, seconds.tolist(), strict=True))
    ]
    expected = [engine.score(le, acts, NOW, prev) for le, acts, prev in items]
    batch = LeadBatch.from_columns(
        8, {"lead_origin": categorical, "time_on_site_s": seconds}, ids=[str(i) for i in range(8)]
    )
    assert engine.score_batch(batch, NOW).scores() == expected


def test_a_text_column_read_as_numbers_still_knows_what_is_missing() -> None:
    """A range test (or table) reads a column's numbers first; a later `exists` test on the same column
    must still see text that is not a number as present (the columnar path once took NaN for missing)."""
    engine = rules_from(
        """
fit:
  - {name: numeric, attribute: industry, points_by_range: [{from: 5, points: 1}]}
  - {name: present, points: 2, when: {industry: {exists: true}}}
"""
    )
    batch = LeadBatch.from_columns(2, {"industry": Categorical(np.array([0, -1]), ["Software"])})
    rows = [engine.score(lead(id=str(i), industry=v), [], NOW) for i, v in enumerate(["Software", None])]
    assert engine.score_batch(batch, NOW).total.tolist() == [r.total for r in rows] == [2, 0]


# -- validation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "where", "expected"),
    [
        (
            {"name": "o", "attribute": "a", "points_by_value": {"x": 5, "y": -1}},
            "scoring.fit[0] (rule 'o').points_by_value.y",
            "fit rules take points >= 0",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_value": {"x": 5}, "default": -2},
            "scoring.fit[0] (rule 'o').default",
            "got -2",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_range": [{"below": 5, "points": 1}, {"from": 5, "points": -3}]},
            "scoring.fit[0] (rule 'o').points_by_range[1].points",
            "fit rules take points >= 0",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_value": {"API": 5, " api ": 3}},
            "scoring.fit[0] (rule 'o').points_by_value.api",
            "expected each value once; 'API' and ' api ' match the same values",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_value": {"1": 5, 1: 3}},
            "scoring.fit[0] (rule 'o').points_by_value[1]",
            "match the same values",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_value": {None: 5}},
            "scoring.fit[0] (rule 'o').points_by_value",
            "use the rule's `missing:` key",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_value": {}},
            "scoring.fit[0] (rule 'o').points_by_value",
            "expected a mapping of value -> points",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_value": {"x": "five"}},
            "scoring.fit[0] (rule 'o').points_by_value.x",
            "expected a number of points, got 'five'",
        ),
        (
            {"name": "o", "points_by_value": {"x": 5}},
            "scoring.fit[0] (rule 'o').attribute",
            "needs the attribute",
        ),
        (
            {"name": "o", "attribute": "a", "points": 3, "points_by_value": {"x": 5}},
            "scoring.fit[0] (rule 'o').points",
            "expected no `points`",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_value": {"x": 5}, "points_by_range": [{"from": 1, "points": 1}]},
            "scoring.fit[0] (rule 'o').points_by_range",
            "not both",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_value": {"x": 5}, "counter": "page_views"},
            "scoring.fit[0] (rule 'o').counter",
            "not both",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_value": {"x": 5}, "cap": 3},
            "scoring.fit[0] (rule 'o').cap",
            "applies to event and counter rules only",
        ),
        (
            {"name": "o", "points": 3, "when": {"a": "x"}, "default": 1},
            "scoring.fit[0] (rule 'o').default",
            "applies to lookup tables only",
        ),
        (
            {"name": "o", "points": 3, "when": {"a": "x"}, "attribute": "a"},
            "scoring.fit[0] (rule 'o').attribute",
            "applies to lookup tables only",
        ),
        (
            {"name": "o", "when": {"a": "x"}},
            "scoring.fit[0] (rule 'o').points",
            "missing; this key is required",
        ),
        (
            {
                "name": "o",
                "attribute": "a",
                "points_by_range": [{"from": 0, "below": 10, "points": 1}, {"from": 5, "points": 2}],
            },
            "scoring.fit[0] (rule 'o').points_by_range[1]",
            "expected bands that do not overlap; [0] and [1] (0 to 10, 5 or more) do",
        ),
        (
            {
                "name": "o",
                "attribute": "a",
                "points_by_range": [{"below": 10, "points": 1}, {"below": 20, "points": 2}],
            },
            "scoring.fit[0] (rule 'o').points_by_range[1]",
            "do not overlap",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_range": [{"from": 10, "below": 10, "points": 1}]},
            "scoring.fit[0] (rule 'o').points_by_range[0].below",
            "expected a number above `from` (10), got 10",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_range": [{"points": 1}]},
            "scoring.fit[0] (rule 'o').points_by_range[0]",
            "expected `from`, `below` or both",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_range": [{"from": 1, "to": 5, "points": 1}]},
            "scoring.fit[0] (rule 'o').points_by_range[0].to",
            "unknown key; expected from (inclusive), below (exclusive), points",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_range": [{"from": "a lot", "points": 1}]},
            "scoring.fit[0] (rule 'o').points_by_range[0].from",
            "expected a number, got 'a lot'",
        ),
        (
            {"name": "o", "attribute": "a", "points_by_range": [{"from": 1}]},
            "scoring.fit[0] (rule 'o').points_by_range[0].points",
            "missing; this key is required",
        ),
    ],
)
def test_table_errors_name_the_place(rule: dict[str, Any], where: str, expected: str) -> None:
    message = _error({"fit": [rule]})
    assert message.startswith(where + ": "), message
    assert expected in message


def test_penalty_tables_take_negative_points() -> None:
    message = _error({"penalties": [{"name": "p", "attribute": "a", "points_by_value": {"x": -5}, "missing": 3}]})
    assert message.startswith("scoring.penalties[0] (rule 'p').missing: penalties take negative points")
    load_rules(
        {"base": "none", "engagement": [{"name": "e", "attribute": "a", "points_by_range": [{"from": 0, "points": 4}]}]}
    )


def test_version_follows_meaning_not_spelling() -> None:
    def version(table: dict[str, Any], **extra: Any) -> str:
        rule = {"name": "o", "attribute": "a", "points_by_value": table, **extra}
        return load_rules({"base": "none", "fit": [rule]}).version

    base = version({"API": 3, "web": 1})
    assert version({"web": 1, " api": 3}) == base
    assert version({"API": 4, "web": 1}) != base
    assert version({"API": 3, "web": 1}, default=0) != base
    assert version({"API": 3, "web": 1}, missing=2) != base


# -- what the rules read ----------------------------------------------------------------------------------


def test_attribute_references_cover_every_rule_kind() -> None:
    rules = load_rules(
        {
            "base": "none",
            "decay": {"half_life_days": 30},
            "fit": [
                {"name": "vp", "points": 5, "when": {"job_title": {"in": ["VP", "CEO"]}}, "unless": {"country": "DE"}},
                {"name": "origin", "attribute": "lead_origin", "points_by_value": {"Lead Add Form": 30, "API": 3}},
            ],
            "engagement": [
                {"name": "tos", "attribute": "time_on_site_s", "points_by_range": [{"from": 0, "points": 1}]},
                {
                    "name": "pricing",
                    "points": 5,
                    "event": {"kind": "page_view", "where": {"url": {"contains": "/pricing"}}},
                },
                {"name": "views", "points": 1, "counter": "page_views", "decay_from": "last_visit_at"},
                {"name": "visits", "points": 1, "counter": "visits", "half_life_days": 0},
            ],
            "penalties": [
                {
                    "name": "free",
                    "points": -5,
                    "when": {"all": [{"email": {"is": "free"}}, {"company_email": {"exists": False}}]},
                }
            ],
            "disable": ["visits"],
        }
    )
    refs = attribute_references(rules)
    assert AttributeRef("vp", "fit", "job_title", ("VP", "CEO"), "scoring.fit[0] (rule 'vp').when") in refs
    assert AttributeRef("vp", "fit", "country", ("DE",), "scoring.fit[0] (rule 'vp').unless") in refs
    origin = AttributeRef(
        "origin", "fit", "lead_origin", ("Lead Add Form", "API"), "scoring.fit[1] (rule 'origin').points_by_value"
    )
    assert origin in refs
    assert (
        AttributeRef("tos", "engagement", "time_on_site_s", (), "scoring.engagement[0] (rule 'tos').points_by_range")
        in refs
    )
    pricing = next(r for r in refs if r.rule == "pricing")
    assert pricing.activity and pricing.attribute == "url" and pricing.where.endswith(".event.where")
    assert {(r.attribute, r.where.rsplit(".", 1)[1]) for r in refs if r.rule == "views"} == {
        ("page_views", "counter"),
        ("last_visit_at", "decay_from"),
    }
    assert not any(r.rule == "visits" for r in refs)  # disabled
    free = [r for r in refs if r.rule == "free"]
    assert [(r.attribute, r.derived) for r in free] == [("email", False), ("company_email", True)]
