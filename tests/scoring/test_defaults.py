"""The packaged default rules: every penalty, the self-lifting free-email penalty, counters-only CRMs."""

from __future__ import annotations

import math
from typing import Any

import pytest

from scoring import Score, compile_rules, default_rules, load_rules

from .util import act, ago, hit, lead, points, score

ENGINE = compile_rules(default_rules())

#: a good ICP lead at a company domain, recently active
GOOD: dict[str, Any] = {
    "email": "jane.doe@acme-robotics.com",
    "job_title": "VP of Marketing",
    "employees": 800,
    "industry": "Software",
    "country": "US",
    "created_at": ago(120),
}


def good(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def scored(fields: dict[str, Any], activities: list[Any] | None = None) -> Score:
    return score(ENGINE, lead(**fields), activities or [act("page_view", 2, url="https://acme.io/pricing")])


def test_a_good_lead_is_fit_engaged_and_unpenalized() -> None:
    result = scored(
        GOOD,
        [
            act("form_submission", 1, form="Request a demo"),
            act("page_view", 1, url="https://acme.io/pricing"),
            act("page_view", 3, url="https://acme.io/pricing"),
            act("email_click", 2),
        ],
    )
    assert result.penalties == 0
    assert result.fit == 45  # VP 15 + mid-market 15 + software 10 + US 5
    assert hit(result, "demo_request") is not None and hit(result, "pricing_page") is not None
    assert result.qualified and result.grade == "hot"
    assert result.reasons.startswith("+25 demo request; +15 VP title; +15 mid-market company")
    assert math.isclose(sum(h.points for h in result.hits), result.raw_total)


def test_gmail_scores_lower_than_the_same_lead_at_a_company_domain() -> None:
    company = scored(GOOD)
    gmail = scored(good(email="jane.doe@gmail.com"))
    assert gmail.total < company.total
    assert points(gmail, "free_email") == -10 and "-10 free email" in gmail.reasons


def test_free_email_penalty_lifts_itself_when_a_company_email_appears() -> None:
    base = good(email="jane.doe@gmail.com")
    assert hit(scored(base), "free_email") is not None
    for extra in (
        {"work_email": "jane@acme-robotics.com"},
        {"additional_emails": "jane@yahoo.com;jane@acme-robotics.com"},
        {"additional_emails": ["jane@acme-robotics.com"]},
        {"secondary_email": "JANE@ACME-ROBOTICS.COM"},
    ):
        lifted = scored({**base, **extra})
        assert hit(lifted, "free_email") is None, extra
        assert lifted.total == scored(GOOD).total
    # another free address does not lift it
    assert hit(scored({**base, "work_email": "jane@hotmail.com"}), "free_email") is not None


@pytest.mark.parametrize(
    ("changes", "rule", "expected"),
    [
        ({"email": "zz@mailinator.com"}, "disposable_email", -25),
        ({"email": "info@acme-robotics.com"}, "role_email", -10),
        ({"email": "noreply@acme-robotics.com"}, "role_email", -10),
        ({"email": "jane.doe@acme"}, "invalid_email", -20),
        ({"opted_out": True}, "unsubscribed", -20),
        ({"bounced": True}, "hard_bounce", -20),
        ({"job_title": "Student"}, "student_or_job_seeker", -25),
        ({"job_title": "Marketing Intern"}, "student_or_job_seeker", -25),
        ({"job_title": "Job seeker, ex-VP"}, "student_or_job_seeker", -25),
        ({"email": "jane@qq.com"}, "free_email", -10),
        ({"email": "jane@mail.ru"}, "free_email", -10),
    ],
)
def test_each_default_penalty(changes: dict[str, Any], rule: str, expected: int) -> None:
    result = scored(good(**changes))
    assert points(result, rule) == expected
    assert result.total < scored(GOOD).total


def test_disposable_counts_once_even_though_it_is_also_free() -> None:
    result = scored(good(email="zz@mailinator.com"))  # mailinator.com is on both lists
    assert points(result, "disposable_email") == -25 and hit(result, "free_email") is None


def test_competitor_penalty_uses_the_configured_domains() -> None:
    engine = compile_rules(load_rules({"emails": {"competitor_domains": ["rivalco.com"]}}))
    result = score(engine, lead(**good(email="spy@rivalco.com")), [])
    assert points(result, "competitor") == -50
    assert hit(scored(good(email="spy@rivalco.com")), "competitor") is None  # empty list by default


def test_inactivity_penalty_after_90_and_180_days() -> None:
    old = good(created_at=ago(400))
    assert hit(score(ENGINE, lead(**old), [act("page_view", 10)]), "inactive_90d") is None
    assert points(score(ENGINE, lead(**old), [act("page_view", 100)]), "inactive_90d") == -10
    result = score(ENGINE, lead(**old), [act("page_view", 200)])
    assert points(result, "inactive_180d") == -20 and hit(result, "inactive_90d") is None
    # HubSpot's last_visit_at / last_activity_at count as engagement too
    assert hit(score(ENGINE, lead(**old, last_visit_at=ago(5)), []), "inactive_90d") is None
    assert hit(score(ENGINE, lead(**old, last_activity_at=ago(5)), []), "inactive_90d") is None
    # emails WE sent are not the lead's engagement
    assert points(score(ENGINE, lead(**old), [act("email_sent", 1)]), "inactive_180d") == -20
    # a new lead is not inactive; a lead with no date at all is
    assert hit(score(ENGINE, lead(**good(created_at=ago(3))), []), "inactive_90d") is None
    assert hit(score(ENGINE, lead(**good(created_at=None)), []), "inactive_180d") is not None


def test_works_with_hubspot_counters_only() -> None:
    counters = {
        "page_views": 30,
        "visits": 5,
        "form_submissions": 2,
        "email_opens": 12,
        "email_clicks": 3,
        "email_replies": 1,
        "last_visit_at": ago(2),
        "last_activity_at": ago(1),
    }
    result = score(ENGINE, lead(**good(), **counters), [])
    names = {h.rule for h in result.hits}
    assert {
        "page_views_count",
        "return_visits_count",
        "form_submissions_count",
        "email_opens_count",
        "email_clicks_count",
        "email_replies_count",
    } <= names
    assert result.engagement > 40 and result.qualified
    # the same counts long ago decay (and the inactivity penalty applies)
    stale = {**counters, "last_visit_at": ago(200), "last_activity_at": ago(200)}
    old = score(ENGINE, lead(**good(created_at=ago(400)), **stale), [])
    assert old.engagement < 10 and hit(old, "inactive_180d") is not None
    assert old.total < result.total


def test_works_with_activities_and_counters_together_without_double_counting() -> None:
    acts = [act("page_view", d, url="https://acme.io/docs") for d in range(5)]
    both = score(ENGINE, lead(**good(), page_views=3, last_visit_at=ago(0)), acts)
    assert hit(both, "page_views") is not None and hit(both, "page_views_count") is None
    assert points(both, "page_views") == pytest.approx(sum(0.5 ** (d / 45) for d in range(5)), abs=1e-3)


def test_seniority_is_not_double_counted_and_vice_president_is_vp() -> None:
    result = scored(good(job_title="Vice President, Sales"))
    assert hit(result, "title_vp") is not None and hit(result, "title_c_level") is None
    assert hit(scored(good(job_title="President & CEO")), "title_c_level") is not None
    assert hit(scored(good(job_title="Lead Generation Specialist")), "title_manager") is None


def test_part_caps_hold_with_the_defaults() -> None:
    busy = [act("form_submission", 0, form="Request a demo")] + [
        act(kind, 0, url="https://acme.io/pricing")
        for kind in ["page_view"] * 30 + ["email_click"] * 10 + ["meeting"] * 3 + ["chat"] * 3 + ["email_reply"] * 2
    ]
    result = score(ENGINE, lead(**good(job_title="CEO", annual_revenue=5e7)), busy)
    assert result.engagement == 60 and hit(result, "engagement cap") is not None
    assert result.fit == 50 and hit(result, "fit cap") is not None
    assert result.total == 100
