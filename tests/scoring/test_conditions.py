"""Every condition test, on leads (both evaluation paths, via ``util.score``)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from scoring import Activity, Lead

from .util import NOW, ago, hit, lead, rules_from, score


def fires(when: Any, the_lead: Lead, activities: list[Activity] | None = None, /, **settings: Any) -> bool:
    engine = rules_from({"fit": [{"name": "r", "points": 10, "when": when}], **settings})
    result = score(engine, the_lead, activities or [])
    return hit(result, "r") is not None


def test_equals_is_case_insensitive_by_default_and_coerces() -> None:
    assert fires({"industry": "software"}, lead(industry="Software"))
    assert not fires({"industry": {"equals": "software", "ignore_case": False}}, lead(industry="Software"))
    assert fires({"industry": {"equals": "Software", "ignore_case": False}}, lead(industry="Software"))
    assert fires({"employees": 500}, lead(employees=500))
    assert fires({"employees": 500}, lead(attributes={"employees_text": "x"}, employees=500))
    assert fires({"size": 500}, lead(size="500"))  # numeric text
    assert fires({"size": "500"}, lead(size=500.0))  # number as text, no spurious ".0"
    assert fires({"opted_out": True}, lead(opted_out=True))
    assert not fires({"opted_out": True}, lead(opted_out=False))
    assert fires({"vip": True}, lead(vip="yes"))
    assert not fires({"industry": "software"}, lead())


def test_in_and_not_in() -> None:
    assert fires({"country": ["US", "CA"]}, lead(country="ca"))
    assert fires({"country": {"in": ["US", "CA"]}}, lead(country="US"))
    assert not fires({"country": {"in": ["US", "CA"]}}, lead(country="FR"))
    assert fires({"country": {"not_in": ["US", "CA"]}}, lead(country="FR"))
    assert not fires({"country": {"not_in": ["US", "CA"]}}, lead(country="us"))
    # a missing value satisfies no value test, but `not` of one
    assert not fires({"country": {"not_in": ["US"]}}, lead())
    assert fires({"not": {"country": {"in": ["US"]}}}, lead())
    assert fires({"country": {"not_equals": "US"}}, lead(country="DE"))
    assert not fires({"country": {"not_equals": "US"}}, lead())


def test_multi_valued_attributes_match_any_element() -> None:
    assert fires({"tags": "partner"}, lead(tags=["customer", "Partner"]))
    assert not fires({"tags": {"not_in": ["partner"]}}, lead(tags=["customer", "partner"]))
    assert fires({"scores": {"gte": 10}}, lead(scores=[1, 12]))
    assert fires({"tags": {"contains": "part"}}, lead(tags=("x", "partner")))


@pytest.mark.parametrize(
    ("test", "value", "expected"),
    [
        ({"gte": 200}, 200, True),
        ({"gt": 200}, 200, False),
        ({"lt": 50}, 49.5, True),
        ({"lte": 50}, 51, False),
        ({"between": [200, 4999]}, 4999, True),
        ({"between": [200, 4999]}, 5000, False),
        ({"gte": 10, "lt": 20}, 15, True),
        ({"gte": 10, "lt": 20}, 20, False),
        ({"gte": 10}, "25", True),
        ({"gte": 10}, "lots", False),
        ({"gte": 10}, None, False),
        ({"gte": 10}, True, False),
    ],
)
def test_numeric_ranges(test: dict[str, Any], value: Any, expected: bool) -> None:
    assert fires({"employees_n": test}, lead(employees_n=value)) is expected


def test_regex_and_text_tests() -> None:
    assert fires({"job_title": {"regex": r"\bvp\b"}}, lead(job_title="VP Marketing"))
    assert not fires({"job_title": {"regex": r"\bvp\b", "ignore_case": False}}, lead(job_title="VP Marketing"))
    assert not fires({"job_title": {"regex": r"\bvp\b"}}, lead(job_title="MVP builder"))
    assert fires({"job_title": {"regex": "^head of"}}, lead(job_title="Head of Growth"))
    assert fires({"website": {"contains": "ACME"}}, lead(website="https://acme.io"))
    assert fires({"website": {"starts_with": ["http://", "https://"]}}, lead(website="https://acme.io"))
    assert fires({"website": {"ends_with": ".io"}}, lead(website="https://acme.IO"))
    assert not fires({"website": {"ends_with": ".io", "ignore_case": False}}, lead(website="https://acme.IO"))


def test_exists_and_missing() -> None:
    assert fires({"phone": {"exists": True}}, lead(phone="+1 555"))
    assert not fires({"phone": {"exists": True}}, lead(phone="   "))
    assert fires({"phone": {"missing": True}}, lead(phone=""))
    assert fires({"phone": {"exists": False}}, lead())
    assert fires({"tags": {"missing": True}}, lead(tags=[]))
    assert fires({"job_title": {"exists": True}}, lead(job_title="CEO"))
    assert not fires({"job_title": {"exists": True}}, lead())


def test_dates_within_and_older_than() -> None:
    # in UTC calendar days: NOW is 2025-06-01 12:00, 7 days back is 2025-05-25 (any time that day)
    assert fires({"last_visit_at": {"within_days": 7}}, lead(last_visit_at=ago(6.9)))
    assert fires({"last_visit_at": {"within_days": 7}}, lead(last_visit_at=ago(7.4)))  # 05-25 02:24
    assert not fires({"last_visit_at": {"within_days": 7}}, lead(last_visit_at=ago(7.6)))  # 05-24 21:36
    assert fires({"last_visit_at": {"older_than_days": 7}}, lead(last_visit_at=ago(7.6)))
    assert not fires({"last_visit_at": {"older_than_days": 7}}, lead(last_visit_at=ago(7.4)))
    assert not fires({"last_visit_at": {"older_than_days": 7}}, lead())  # missing: neither
    assert not fires({"last_visit_at": {"within_days": 7}}, lead())
    # ISO text, dates and naive datetimes (read as UTC)
    assert fires({"seen": {"within_days": 2}}, lead(seen=ago(1).isoformat()))
    assert fires({"seen": {"within_days": 2}}, lead(seen=ago(1).replace(tzinfo=None)))
    assert fires({"seen": {"older_than_days": 30}}, lead(seen=date(2020, 1, 1)))
    assert fires({"seen": {"within_days": 0}}, lead(seen=ago(-1)))  # the future is "within"
    assert not fires({"seen": {"within_days": 2}}, lead(seen="not a date"))


def test_email_checks() -> None:
    settings = {"emails": {"role_local_parts": ["info", "sales"], "competitor_domains": ["rival.com"]}}
    for email, check in [
        ("jane@gmail.com", "free"),
        ("jane@qq.com", "free"),
        ("jane@mail.ru", "free"),
        ("x@mailinator.com", "disposable"),
        ("x@guerrillamail.com", "disposable"),
        ("info@acme.com", "role"),
        ("sales-emea@acme.com", "role"),
        ("info+news@acme.com", "role"),
        ("jane@", "invalid"),
        ("jane@acme", "invalid"),
        ("jane doe@acme.com", "invalid"),
        ("jane@@acme.com", "invalid"),
        ("j@rival.com", "competitor"),
        ("j@eu.rival.com", "competitor"),
        ("jane@acme.com", "company"),
        ("Jane@ACME.com", "company"),
    ]:
        assert fires({"email": {"is": check}}, lead(email=email), **settings), (email, check)
    for email, check in [
        ("jane@acme.com", "free"),
        ("jane@gmail.com", "company"),
        ("salesforce-admin@acme.com", "role"),
        ("jane@acme.com", "invalid"),
        ("jane@rival.co", "competitor"),
        ("x@mailinator.com", "company"),
    ]:
        assert not fires({"email": {"is": check}}, lead(email=email), **settings), (email, check)
    # a missing email is not an invalid one
    assert not fires({"email": {"is": "invalid"}}, lead(), **settings)
    # `is` with a list means any of them
    assert fires({"email": {"is": ["free", "disposable"]}}, lead(email="x@mailinator.com"), **settings)
    # several addresses in one attribute (HubSpot's additional emails)
    assert fires({"other": {"is": "company"}}, lead(other="a@gmail.com;b@acme.com"), **settings)


def test_combinators() -> None:
    senior_in_software = {"all": [{"job_title": {"regex": "vp"}}, {"industry": "software"}]}
    assert fires(senior_in_software, lead(job_title="VP", industry="Software"))
    assert not fires(senior_in_software, lead(job_title="VP", industry="Retail"))
    either = {"any": [{"country": "US"}, {"employees": {"gte": 1000}}]}
    assert fires(either, lead(country="DE", employees=5000))
    assert not fires(either, lead(country="DE", employees=50))
    assert fires({"not": {"country": "US"}}, lead(country="DE"))
    # several keys in one mapping must all hold
    assert fires({"country": "US", "industry": "software"}, lead(country="US", industry="software"))
    assert not fires({"country": "US", "industry": "software"}, lead(country="US"))
    nested = {"any": [{"all": [{"a": 1}, {"not": {"b": 2}}]}, {"c": {"exists": True}}]}
    assert fires(nested, lead(a=1, b=3))
    assert not fires(nested, lead(a=1, b=2))
    assert fires(nested, lead(c="x"))


def test_derived_attributes() -> None:
    settings = {"emails": {"secondary_attributes": ["work_email", "additional_emails"]}}
    assert fires({"email_domain": "acme.com"}, lead(email="Jane@Acme.com"))
    assert fires({"company_email": {"exists": True}}, lead(email="jane@acme.com"), **settings)
    assert not fires({"company_email": {"exists": True}}, lead(email="jane@gmail.com"), **settings)
    assert fires(
        {"company_email": {"ends_with": "@acme.com"}},
        lead(email="jane@gmail.com", work_email="Jane@ACME.com"),
        **settings,
    )
    assert fires(
        {"company_email": {"exists": True}},
        lead(email="jane@gmail.com", additional_emails="a@yahoo.com; jane@acme.com"),
        **settings,
    )
    # last_engaged_at: the latest of created_at, the timestamp attributes and the lead's own activities
    activity = {"activity": {"timestamp_attributes": ["last_visit_at"], "ignore_kinds": ["email_sent"]}}
    quiet = {"last_engaged_at": {"older_than_days": 90}}
    assert fires(quiet, lead(created_at=ago(200)), **activity)
    assert not fires(quiet, lead(created_at=ago(200), last_visit_at=ago(10)), **activity)
    assert not fires(quiet, lead(created_at=ago(200)), [Activity("L1", "page_view", ago(5))], **activity)
    assert fires(quiet, lead(created_at=ago(200)), [Activity("L1", "email_sent", ago(5))], **activity)
    assert not fires(quiet, lead())  # nothing known: not inactive
    assert NOW  # (the fixed clock used by every test)
