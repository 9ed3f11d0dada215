"""Loading and validating the rule language: defaults, merging, versions, and error messages."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from scoring import RulesError, compile_rules, default_rules, load_rules
from scoring.rules import Rules


def _error(data: Any, source: str = "scoring") -> str:
    with pytest.raises(RulesError) as info:
        load_rules(data, source=source)
    return str(info.value)


# -- defaults -------------------------------------------------------------------------------------------


def test_none_and_empty_give_the_packaged_defaults() -> None:
    assert load_rules(None) is default_rules()
    assert load_rules({}) is default_rules()
    rules = default_rules()
    assert isinstance(rules, Rules)
    assert rules.qualification.threshold == 60 and rules.qualification.release == 50
    assert rules.grades.hot == 70 and rules.grades.warm == 40
    names = {r.name for _, _, r in rules.iter_rules()}
    for expected in (
        "title_vp",
        "company_size_core",
        "target_industry",
        "pricing_page",
        "demo_request",
        "return_visits",
        "return_visits_count",
        "email_clicks",
        "free_email",
        "disposable_email",
        "role_email",
        "invalid_email",
        "unsubscribed",
        "hard_bounce",
        "student_or_job_seeker",
        "inactive_90d",
    ):
        assert expected in names


def test_compiled_exposes_thresholds() -> None:
    engine = compile_rules(default_rules())
    assert engine.mql_threshold == 60
    assert engine.release_threshold == 50
    assert engine.hot_threshold == 70 and engine.warm_threshold == 40
    assert engine.grade_thresholds == {"hot": 70, "warm": 40}
    assert engine.version == default_rules().version and len(engine.version) == 12


def test_user_sections_replace_or_merge_with_the_defaults() -> None:
    rules = load_rules({"qualification": {"threshold": 70}, "fit": []})
    assert rules.qualification.threshold == 70
    assert rules.qualification.release == 50  # merged key by key
    assert rules.fit == ()  # rule lists are replaced whole
    assert rules.engagement == default_rules().engagement


def test_base_none_starts_from_nothing() -> None:
    rules = load_rules({"base": "none", "fit": [{"name": "x", "points": 1, "when": {"country": "US"}}]})
    assert [r.name for _, _, r in rules.iter_rules()] == ["x"]
    assert rules.emails.role_local_parts == ()
    assert rules.qualification.threshold == 60 and rules.qualification.release is None


def test_disable_switches_default_rules_off() -> None:
    rules = load_rules({"disable": ["student_or_job_seeker", "role_email"]})
    names = {r.name for _, _, r in rules.iter_rules()}
    assert "student_or_job_seeker" not in names and "role_email" not in names
    assert "free_email" in names
    assert "disable[0]" in _error({"disable": ["no_such_rule"]})


# -- version -----------------------------------------------------------------------------------------------

_RULES = """
fit:
  - name: vp
    points: 10
    when: {job_title: {regex: 'vp'}}
engagement:
  - name: pricing
    points: [2, 5]
    cap: 20
    event: {kind: page_view, where: {url: {contains: /pricing}}}
"""


def test_version_ignores_formatting_and_shorthand_but_not_meaning() -> None:
    base = load_rules({"base": "none", **yaml.safe_load(_RULES)})
    reformatted = load_rules(
        {
            "base": "none",
            "engagement": [
                {
                    "event": {"where": {"url": {"contains": ["/pricing"]}}, "kind": ["page_view"]},
                    "cap": 20.0,
                    "points": [2.0, 5],
                    "name": "pricing",
                }
            ],
            "fit": [{"when": {"job_title": {"regex": "vp"}}, "points": 10.0, "name": "vp"}],
        }
    )
    assert base.version == reformatted.version
    changed = load_rules({"base": "none", **yaml.safe_load(_RULES.replace("cap: 20", "cap: 25"))})
    assert changed.version != base.version
    assert load_rules({"qualification": {"threshold": 61}}).version != default_rules().version


def test_equivalent_shorthands_normalize_to_one_form() -> None:
    def version(test: Any) -> str:
        return load_rules({"base": "none", "fit": [{"name": "a", "points": 1, "when": {"x": test}}]}).version

    assert version("US") == version({"equals": "US"})
    assert version(["US", "CA"]) == version({"in": ["US", "CA"]})
    assert version({"between": [1, 5]}) == version({"gte": 1, "lte": 5})
    assert version({"missing": True}) == version({"exists": False})


# -- error messages name the rule, the key and what is expected ----------------------------------------------


def test_points_error_names_rule_and_key() -> None:
    fit = [
        {"name": "a", "points": 1, "when": {"country": "US"}},
        {"name": "b", "points": 1, "when": {"country": "US"}},
        {"name": "vp_title", "points": "abc", "when": {"job_title": {"regex": "vp"}}},
    ]
    message = _error({"fit": fit})
    assert message == "scoring.fit[2] (rule 'vp_title').points: expected a number or a list of numbers, got 'abc'"


def test_source_prefixes_every_location() -> None:
    message = _error({"fit": [{"name": "x", "points": [], "when": {"a": 1}}]}, source="leadsync.yaml: scoring")
    assert message.startswith("leadsync.yaml: scoring.fit[0] (rule 'x').points: expected a number or a list")


@pytest.mark.parametrize(
    ("data", "where", "expected"),
    [
        ({"fit": [{"name": "r", "points": 5}]}, "scoring.fit[0] (rule 'r').when", "expected `when`"),
        ({"fit": [{"points": 5, "when": {"a": 1}}]}, "scoring.fit[0].name", "missing"),
        (
            {"fit": [{"name": "r", "pionts": 5}]},
            "scoring.fit[0] (rule 'r').pionts",
            "unknown key (did you mean 'points'?); expected one of: name",
        ),
        (
            {"fit": [{"name": "r", "points": 5, "when": {"job_title": {"regexp": "x"}}}]},
            "scoring.fit[0] (rule 'r').when.job_title.regexp",
            "unknown test (did you mean 'regex'?); expected one of",
        ),
        (
            {"fit": [{"name": "r", "points": 5, "when": {"job_title": {"regex": "(vp"}}}]},
            "scoring.fit[0] (rule 'r').when.job_title.regex",
            "invalid regular expression",
        ),
        (
            {"penalties": [{"name": "p", "points": -5, "when": {"email": {"is": "freemail"}}}]},
            "scoring.penalties[0] (rule 'p').when.email.is",
            "expected one of: free, disposable, role, invalid, competitor, company, got 'freemail'",
        ),
        (
            {"fit": [{"name": "r", "points": 5, "when": {"all": [{"a": 1}, {"b": {"gte": "x"}}]}}]},
            "scoring.fit[0] (rule 'r').when.all[1].b.gte",
            "expected a number, got 'x'",
        ),
        (
            {"fit": [{"name": "r", "points": 5, "when": {"a": {"between": [5, 1]}}}]},
            "scoring.fit[0] (rule 'r').when.a.between",
            "expected [low, high] with low <= high",
        ),
        (
            {"fit": [{"name": "r", "points": 5, "when": {"a": None}}]},
            "scoring.fit[0] (rule 'r').when.a",
            "use `missing: true`",
        ),
        (
            {"fit": [{"name": "r", "points": 5, "when": {"d": {"within_days": -1}}}]},
            "scoring.fit[0] (rule 'r').when.d.within_days",
            "expected a number of days >= 0, got -1",
        ),
        (
            {"fit": [{"name": "r", "points": [1, 2], "when": {"a": 1}}]},
            "scoring.fit[0] (rule 'r').points",
            "a list of points (escalating / diminishing) needs an `event` or `counter` rule",
        ),
        (
            {"fit": [{"name": "r", "points": 5, "cap": 3, "when": {"a": 1}}]},
            "scoring.fit[0] (rule 'r').cap",
            "`cap` applies to event and counter rules only",
        ),
        (
            {"fit": [{"name": "r", "points": -5, "when": {"a": 1}}]},
            "scoring.fit[0] (rule 'r').points",
            "fit rules take points >= 0 (negative rules belong in `penalties`), got -5",
        ),
        (
            {"penalties": [{"name": "r", "points": 5, "when": {"a": 1}}]},
            "scoring.penalties[0] (rule 'r').points",
            "penalties take negative points (e.g. -10), got 5",
        ),
        (
            {"engagement": [{"name": "e", "points": 1, "event": {"kind": "page_view", "within_days": 0}}]},
            "scoring.engagement[0] (rule 'e').event.within_days",
            "expected a number greater than 0, got 0",
        ),
        (
            {"engagement": [{"name": "e", "points": 1, "event": {"kind": 5}}]},
            "scoring.engagement[0] (rule 'e').event.kind",
            "expected a list of texts, got 5",
        ),
        (
            {"engagement": [{"name": "e", "points": 1, "event": {"kind": "x"}, "counter": "visits"}]},
            "scoring.engagement[0] (rule 'e').counter",
            "expected either `event` or `counter`, not both",
        ),
        (
            {"engagement": [{"name": "e", "points": 1, "at_least": 3, "event": {"kind": "x"}}]},
            "scoring.engagement[0] (rule 'e').at_least",
            "`at_least` applies to counter rules only",
        ),
        (
            {"engagement": [{"name": "e", "points": [1, 2], "once": True, "counter": "visits"}]},
            "scoring.engagement[0] (rule 'e').points",
            "expected one number with `once: true`",
        ),
        (
            {"engagement": [{"name": "e", "points": 1, "half_life_days": "soon", "counter": "visits"}]},
            "scoring.engagement[0] (rule 'e').half_life_days",
            "expected a number of days > 0, or 0 / off for no decay, got 'soon'",
        ),
        (
            {"fit": [{"name": "bad name!", "points": 1, "when": {"a": 1}}]},
            "scoring.fit[0] (rule 'bad name!').name",
            "expected a rule name of letters",
        ),
        ({"qualification": {"threshold": 50, "release": 60}}, "scoring.qualification.release", "at or below"),
        ({"qualification": {"threshold": 150}}, "scoring.qualification.threshold", "between 0 and 100, got 150"),
        ({"grades": {"hot": 30, "warm": 40}}, "scoring.grades.warm", "expected warm <= hot (30), got 40"),
        ({"caps": {"fit": 0}}, "scoring.caps.fit", "expected a number greater than 0, got 0"),
        (
            {"caps": {"fitt": 10}},
            "scoring.caps.fitt",
            "unknown key (did you mean 'fit'?); expected one of: fit, engagement, penalties",
        ),
        ({"reasons": {"max_length": 5}}, "scoring.reasons.max_length", "expected a whole number from 20 to 1000"),
        ({"fit": {"name": "x"}}, "scoring.fit", "expected a list"),
        ({"base": "everything"}, "scoring.base", "expected 'defaults' or 'none'"),
        ({"emails": {"competitor_domains": [1]}}, "scoring.emails.competitor_domains", "expected a list of texts"),
        ({"bogus": 1}, "scoring.bogus", "unknown key; expected one of: base, disable, qualification"),
    ],
)
def test_error_messages(data: dict[str, Any], where: str, expected: str) -> None:
    message = _error(data)
    assert message.startswith(where + ": "), message
    assert expected in message, message


def test_duplicate_rule_names_and_groups_across_parts() -> None:
    message = _error(
        {
            "base": "none",
            "fit": [{"name": "a", "points": 1, "when": {"x": 1}}],
            "engagement": [{"name": "a", "points": 1, "when": {"x": 1}}],
        }
    )
    assert message.startswith("scoring.engagement[0] (rule 'a').name: expected a unique rule name")
    message = _error(
        {
            "base": "none",
            "fit": [{"name": "a", "points": 1, "group": "g", "when": {"x": 1}}],
            "penalties": [{"name": "b", "points": -1, "group": "g", "when": {"x": 1}}],
        }
    )
    assert "scoring.penalties[0] (rule 'b').group: expected rules of one part in a group" in message


def test_not_a_mapping() -> None:
    assert _error(["a"]) == "scoring: expected a mapping of scoring settings and rules, got a list"


def test_several_problems_are_counted() -> None:
    message = _error({"fit": [{"name": "a", "points": "x", "when": {"b": 1}}], "caps": {"fit": -1}})
    assert "more problem" in message


def test_the_reference_example_is_valid() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "scoring" / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    rules = load_rules(yaml.safe_load(block.group(1))["scoring"], source="scoring/README.md")
    assert [r.name for _, _, r in rules.iter_rules()][:2] == ["vp_title", "icp_company"]
    compile_rules(rules)
