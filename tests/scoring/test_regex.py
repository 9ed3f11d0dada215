"""Rule regexes run on RE2: linear time on hostile CRM text, and backtracking-only syntax refused at load."""

from __future__ import annotations

import pytest

from scoring import RulesError
from scoring.regex import RegexError, compile_rule_regex

from .util import hit, lead, rules_from, score

CATASTROPHIC = """
fit:
  - name: nested
    label: nested quantifiers
    points: 5
    when: {job_title: {regex: '^(a+)+$'}}
"""


@pytest.mark.timeout(60)  # on a backtracking engine this pattern does not finish on 30 characters, let alone 1 MB
def test_a_catastrophic_pattern_on_a_one_megabyte_title_is_harmless() -> None:
    engine = rules_from(CATASTROPHIC)
    hostile = "a" * 1_000_000 + "!"
    result = score(engine, lead(job_title=hostile), [])  # both engines: one lead, and the columnar path
    assert hit(result, "nested") is None
    assert hit(score(engine, lead(job_title="aaaa"), []), "nested") is not None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?<!vice )president", "invalid perl operator: (?<"),
        ("(vp)\\s+\\1", "invalid escape sequence: \\1"),
        ("director(?=,)", "invalid perl operator: (?="),
    ],
)
def test_backtracking_only_syntax_is_refused_when_the_rules_load(pattern: str, reason: str) -> None:
    with pytest.raises(RulesError) as caught:
        rules_from({"fit": [{"name": "t", "points": 1, "when": {"job_title": {"regex": pattern}}}]})
    message = str(caught.value)
    assert message.startswith("scoring.fit[0] (rule 't').when.job_title.regex: invalid regular expression")
    assert reason in message and "no backreferences or lookaround" in message


def test_a_broken_pattern_says_what_is_wrong_without_logging_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RegexError, match=r"missing \]"):
        compile_rule_regex("[abc")
    assert capfd.readouterr().err == ""  # RE2 would print through absl logging unless told not to


def test_case_follows_ignore_case() -> None:
    assert compile_rule_regex("vp", ignore_case=True).search("SVP Sales") is not None
    assert compile_rule_regex("vp").search("SVP Sales") is None


@pytest.mark.parametrize(
    ("title", "c_level", "vp"),
    [
        ("President", True, False),
        ("President & CEO", True, False),
        ("Vice President, Sales", False, True),
        ("Vice-President Marketing", False, True),
        ("Co-founder", True, False),
        ("Presidential advisor", False, False),
    ],
)
def test_the_default_c_level_rule_keeps_vice_presidents_out_without_lookbehind(
    title: str, c_level: bool, vp: bool
) -> None:
    engine = rules_from({}, base="defaults")
    result = score(engine, lead(job_title=title), [])
    assert (hit(result, "title_c_level") is not None) == c_level
    assert (hit(result, "title_vp") is not None) == vp
