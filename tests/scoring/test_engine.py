"""Every rule type, caps, decay, groups, grades, hysteresis, explanations (both paths, via ``util.score``)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from scoring import Categorical, LeadBatch, QualificationState, ScoringError, compile_rules, default_rules

from .util import NOW, act, ago, hit, lead, points, rules_from, score

# -- event rules ----------------------------------------------------------------------------------------


def test_event_rule_filters_by_kind_and_attributes() -> None:
    engine = rules_from(
        """
        engagement:
          - name: pricing
            label: pricing page
            points: 4
            event: {kind: page_view, where: {url: {contains: /pricing}}}
        """
    )
    acts = [
        act("page_view", 1, url="https://x.io/pricing"),
        act("page_view", 2, url="https://x.io/blog"),
        act("visit", 1, url="https://x.io/pricing"),
        act("page_view", 3, url="https://x.io/pricing?plan=pro"),
    ]
    result = score(engine, lead(), acts)
    found = hit(result, "pricing")
    assert found is not None
    assert (found.points, found.count, found.value) == (8.0, 2, "https://x.io/pricing")
    assert found.label == "pricing page" and found.part == "engagement"
    assert result.total == 8 and result.engagement == 8
    assert result.reasons == "+8 pricing page x2"


def test_event_rule_kind_list_and_value_of_the_latest_match() -> None:
    engine = rules_from(
        """
        engagement:
          - name: hand_raise
            points: 10
            event:
              kind: [form_submission, page_view]
              where: {any: [{form: {contains: demo}}, {url: {contains: /demo}}]}
        """
    )
    acts = [act("form_submission", 5, form="Request a demo"), act("page_view", 1, url="/demo")]
    found = hit(score(engine, lead(), acts), "hand_raise")
    assert found is not None and found.count == 2 and found.value == "/demo"
    # no `where` attribute present on the latest: its kind
    engine = rules_from("engagement: [{name: m, points: 1, event: {kind: meeting}}]")
    found = hit(score(engine, lead(), [act("meeting", 3), act("meeting", 1)]), "m")
    assert found is not None and found.value == "meeting"


@pytest.mark.parametrize(
    ("points_list", "n", "expected"),
    [
        ([2, 5], 1, 2),  # first 2
        ([2, 5], 3, 12),  # first 2, each later 5: escalating
        ([10, 2], 4, 16),  # diminishing
        ([5, 3, 2], 2, 8),
        ([5, 3, 2], 5, 14),
        ([0, 3], 1, 0),  # "return visits": the first earns nothing
        ([0, 3], 4, 9),
    ],
)
def test_escalating_and_diminishing_points(points_list: list[int], n: int, expected: int) -> None:
    engine = rules_from({"engagement": [{"name": "e", "points": points_list, "event": {"kind": "download"}}]})
    result = score(engine, lead(), [act("download", i) for i in range(n)])
    found = hit(result, "e")
    assert found is not None and found.count == n and found.points == expected


def test_per_rule_cap() -> None:
    engine = rules_from({"engagement": [{"name": "e", "points": 4, "cap": 10, "event": {"kind": "page_view"}}]})
    found = hit(score(engine, lead(), [act("page_view", 0)] * 7), "e")
    assert found is not None and found.points == 10 and found.count == 7


def test_recency_window() -> None:
    engine = rules_from({"engagement": [{"name": "e", "points": 1, "event": {"kind": "page_view", "within_days": 30}}]})
    # calendar days: 30 days back is 2025-05-02 (NOW is 2025-06-01 12:00)
    acts = [act("page_view", 29.9), act("page_view", 30.4), act("page_view", 30.6), act("page_view", 400)]
    found = hit(score(engine, lead(), acts), "e")
    assert found is not None and found.count == 2


def test_ages_are_utc_calendar_days_so_scores_hold_all_day() -> None:
    engine = rules_from(
        {"engagement": [{"name": "e", "points": 8, "half_life_days": 1, "event": {"kind": "page_view"}}]}
    )
    midnight = NOW.replace(hour=0, minute=0)
    yesterday_late = [act("page_view", 0, now=midnight - timedelta(minutes=1))]
    today_early = [act("page_view", 0, now=midnight + timedelta(minutes=1))]
    assert points(score(engine, lead(), yesterday_late), "e") == 4  # one day old
    assert points(score(engine, lead(), today_early), "e") == 8
    # the same inputs score the same at any time of the day, and change at 00:00 UTC
    for hour in (0, 7, 23):
        later = midnight + timedelta(hours=hour, minutes=59)
        assert points(score(engine, lead(), yesterday_late, now=later), "e") == 4
    assert points(score(engine, lead(), yesterday_late, now=midnight + timedelta(days=1)), "e") == 2


def test_decay_halves_points_every_half_life() -> None:
    engine = rules_from(
        {"engagement": [{"name": "e", "points": 8, "half_life_days": 30, "event": {"kind": "page_view"}}]}
    )
    assert points(score(engine, lead(), [act("page_view", 0)]), "e") == 8
    assert points(score(engine, lead(), [act("page_view", 30)]), "e") == 4
    assert points(score(engine, lead(), [act("page_view", 60.4)]), "e") == 2  # whole days
    assert points(score(engine, lead(), [act("page_view", 15)]), "e") == pytest.approx(8 * 0.5**0.5, abs=1e-4)
    # the global default applies to rules without their own half-life; 0 / off switches it off
    engine = rules_from(
        {
            "decay": {"half_life_days": 10},
            "engagement": [
                {"name": "a", "points": 8, "event": {"kind": "page_view"}},
                {"name": "b", "points": 8, "half_life_days": "off", "event": {"kind": "page_view"}},
                {"name": "c", "points": 8, "half_life_days": 0, "event": {"kind": "page_view"}},
            ],
        }
    )
    result = score(engine, lead(), [act("page_view", 20)])
    assert (points(result, "a"), points(result, "b"), points(result, "c")) == (2, 8, 8)


def test_decay_gives_the_largest_points_to_the_most_recent_activity() -> None:
    engine = rules_from(
        {"engagement": [{"name": "e", "points": [10, 2], "half_life_days": 10, "event": {"kind": "download"}}]}
    )
    # 10 points to the fresh one, 2 to the old one (not "first in time gets 10")
    result = score(engine, lead(), [act("download", 20), act("download", 0)])
    assert points(result, "e") == pytest.approx(10 + 2 * 0.25)


def test_future_activity_counts_as_now() -> None:
    engine = rules_from(
        {"engagement": [{"name": "e", "points": 5, "half_life_days": 10, "event": {"kind": "page_view"}}]}
    )
    assert points(score(engine, lead(), [act("page_view", -2)]), "e") == 5


def test_event_rule_gated_by_a_lead_condition() -> None:
    engine = rules_from(
        {"engagement": [{"name": "e", "points": 5, "when": {"country": "US"}, "event": {"kind": "page_view"}}]}
    )
    assert hit(score(engine, lead(country="US"), [act("page_view")]), "e") is not None
    assert hit(score(engine, lead(country="DE"), [act("page_view")]), "e") is None


def test_naive_activity_timestamps_are_utc() -> None:
    engine = rules_from(
        {"engagement": [{"name": "e", "points": 8, "half_life_days": 1, "event": {"kind": "page_view"}}]}
    )
    aware = score(engine, lead(), [act("page_view", 2)])
    naive_act = act("page_view", 2)
    naive = score(engine, lead(), [type(naive_act)("L1", "page_view", naive_act.timestamp.replace(tzinfo=None))])
    assert aware == naive and points(aware, "e") == 2


# -- counter rules ------------------------------------------------------------------------------------------


def test_counter_points_per_unit_with_cap() -> None:
    engine = rules_from({"engagement": [{"name": "pv", "points": 1, "cap": 10, "counter": "page_views"}]})
    found = hit(score(engine, lead(page_views=7), []), "pv")
    assert found is not None and (found.points, found.count, found.value) == (7, 7, "7")
    assert points(score(engine, lead(page_views=25), []), "pv") == 10
    assert hit(score(engine, lead(page_views=0), []), "pv") is None
    assert hit(score(engine, lead(), []), "pv") is None
    assert points(score(engine, lead(page_views="12"), []), "pv") == 10  # numeric text


def test_counter_threshold_once_per_and_escalation() -> None:
    engine = rules_from(
        """
        engagement:
          - {name: engaged, points: 10, once: true, at_least: 10, counter: page_views}
          - {name: every_5, points: 2, per: 5, counter: visits}
          - {name: returns, points: [0, 3], cap: 12, counter: logins}
          - {name: after_3, points: 1, at_least: 3, counter: clicks}
        """
    )
    result = score(engine, lead(page_views=10, visits=12, logins=3, clicks=2), [])
    assert points(result, "engaged") == 10 and hit(result, "engaged").count == 1  # type: ignore[union-attr]
    assert points(result, "every_5") == 4  # 12 visits = 2 units of 5
    assert points(result, "returns") == 6  # 0 + 3 + 3
    assert hit(result, "after_3") is None
    result = score(engine, lead(page_views=9.5, visits=4, logins=10, clicks=3), [])
    assert hit(result, "engaged") is None and hit(result, "every_5") is None
    assert points(result, "returns") == 12 and points(result, "after_3") == 3


def test_counter_decays_from_the_latest_engagement() -> None:
    engine = rules_from(
        """
        activity: {timestamp_attributes: [last_visit_at]}
        engagement:
          - {name: pv, points: 1, half_life_days: 30, counter: page_views}
          - {name: pv2, points: 1, half_life_days: 30, decay_from: last_form_at, counter: page_views}
        """
    )
    result = score(engine, lead(page_views=8, last_visit_at=ago(30), last_form_at=ago(60)), [])
    assert points(result, "pv") == 4 and points(result, "pv2") == 2
    # a newer activity makes the counter fresher (never lower)
    fresher = score(engine, lead(page_views=8, last_visit_at=ago(30)), [act("page_view", 0)])
    assert points(fresher, "pv") == 8
    # no date at all (a CSV export without date columns): nothing to age from, so undecayed
    unknown = hit(score(engine, lead(page_views=8), []), "pv")
    assert unknown is not None and unknown.points == 8 and unknown.count == 8


# -- groups, caps, clamping ------------------------------------------------------------------------------------


def test_group_keeps_only_the_strongest_rule() -> None:
    engine = rules_from(
        """
        fit:
          - {name: c_level, group: seniority, points: 20, when: {job_title: {regex: 'chief'}}}
          - {name: vp, group: seniority, points: 15, when: {job_title: {regex: 'vp|vice'}}}
          - {name: any_title, points: 1, when: {job_title: {exists: true}}}
        """
    )
    result = score(engine, lead(job_title="Chief of Staff to the VP"))
    assert [h.rule for h in result.hits] == ["c_level", "any_title"]
    assert result.total == 21


def test_event_and_counter_twins_never_double_count() -> None:
    engine = rules_from(
        """
        engagement:
          - {name: pv_events, group: pv, points: 1, cap: 10, event: {kind: page_view}}
          - {name: pv_counter, group: pv, points: 1, cap: 10, counter: page_views}
        """
    )
    assert score(engine, lead(page_views=4), [act("page_view")] * 6).total == 6
    assert score(engine, lead(page_views=9), [act("page_view")] * 2).total == 9
    assert score(engine, lead(), [act("page_view")] * 3).total == 3


def test_part_caps_are_explained_by_a_synthetic_hit() -> None:
    engine = rules_from(
        """
        caps: {fit: 20, penalties: 15}
        fit:
          - {name: a, points: 15, when: {x: 1}}
          - {name: b, points: 12, when: {x: 1}}
        penalties:
          - {name: p, points: -10, when: {x: 1}}
          - {name: q, points: -10, when: {x: 1}}
        """
    )
    result = score(engine, lead(x=1))
    assert [(h.rule, h.part, h.points) for h in result.hits] == [
        ("a", "fit", 15),
        ("b", "fit", 12),
        ("fit cap", "fit", -7),
        ("p", "penalties", -10),
        ("q", "penalties", -10),
        ("penalties cap", "penalties", 5),
    ]
    assert hit(result, "fit cap").value == "capped at 20"  # type: ignore[union-attr]
    assert (result.fit, result.penalties, result.raw_total, result.total) == (20, -15, 5, 5)
    assert math.isclose(sum(h.points for h in result.hits), result.raw_total)
    assert "cap" not in result.reasons


def test_total_is_clamped_to_0_100_but_raw_total_is_not() -> None:
    engine = rules_from(
        """
        fit: [{name: a, points: 80, when: {x: 1}}, {name: b, points: 70, when: {x: 1}}]
        penalties: [{name: p, points: -500, when: {y: 1}}]
        """
    )
    high = score(engine, lead(x=1))
    assert (high.total, high.raw_total, high.fit) == (100, 150, 150)
    low = score(engine, lead(y=1))
    assert (low.total, low.raw_total, low.penalties) == (0, -500, -500)


def test_rounding_halves_up() -> None:
    engine = rules_from("fit: [{name: a, points: 10.5, when: {x: 1}}, {name: b, points: 0.4, when: {y: 1}}]")
    assert score(engine, lead(x=1)).total == 11
    assert score(engine, lead(y=1)).total == 0
    assert score(engine, lead(y=1)).reasons == ""  # hits that round to 0 points are not in the reasons


# -- grades and qualification -----------------------------------------------------------------------------------

_LEVELS = """
qualification: {threshold: 60, release: 50}
grades: {hot: 70, warm: 40}
fit: [{name: pts, points: 1, counter: pts}]
"""


@pytest.mark.parametrize(("total", "grade"), [(0, "cold"), (39, "cold"), (40, "warm"), (69, "warm"), (70, "hot")])
def test_grades(total: int, grade: str) -> None:
    assert score(rules_from(_LEVELS), lead(pts=total)).grade == grade


def test_hysteresis_and_qualified_at() -> None:
    engine = rules_from(_LEVELS)
    first = score(engine, lead(pts=59))
    assert not first.qualified and first.qualified_at is None
    qualified = score(engine, lead(pts=60), previous=QualificationState(False, None))
    assert qualified.qualified and qualified.qualified_at == NOW
    # stays qualified down to the release level, keeping the original qualified_at
    later = NOW + timedelta(days=3)
    state = QualificationState(True, qualified.qualified_at)
    kept = score(engine, lead(pts=50), previous=state, now=later)
    assert kept.qualified and kept.qualified_at == NOW
    # released below the release level
    released = score(engine, lead(pts=49), previous=state, now=later)
    assert not released.qualified and released.qualified_at is None
    # between release and threshold, a lead that was not qualified does not qualify
    assert not score(engine, lead(pts=55), previous=QualificationState(False, None)).qualified
    # qualifying again sets a new qualified_at
    again = score(engine, lead(pts=65), previous=QualificationState(False, None), now=later)
    assert again.qualified_at == later
    # a naive stored qualified_at is read as UTC; a lost one is set to now
    naive = score(engine, lead(pts=55), previous=QualificationState(True, datetime(2025, 1, 1)), now=later)  # noqa: DTZ001
    assert naive.qualified_at is not None and naive.qualified_at.tzinfo is not None
    lost = score(engine, lead(pts=55), previous=QualificationState(True, None), now=later)
    assert lost.qualified_at == later


def test_now_must_be_timezone_aware() -> None:
    engine = rules_from(_LEVELS)
    with pytest.raises(ScoringError, match="timezone-aware"):
        engine.score(lead(), [], datetime(2025, 1, 1))  # noqa: DTZ001
    with pytest.raises(ScoringError):
        engine.score_batch(LeadBatch.from_items([(lead(), [], None)]), datetime(2025, 1, 1))  # noqa: DTZ001


# -- explanations -----------------------------------------------------------------------------------------------


def test_reasons_text_orders_by_absolute_points_and_is_bounded() -> None:
    engine = rules_from(
        """
        fit: [{name: vp, label: VP title, points: 15, when: {job_title: {regex: vp}}}]
        engagement:
          - {name: pricing, label: pricing page, points: [5, 3, 2], event: {kind: page_view}}
        penalties: [{name: free, label: free email, points: -10, when: {email: {is: free}}}]
        """
    )
    result = score(engine, lead(job_title="VP Sales", email="vp@gmail.com"), [act("page_view")] * 3)
    assert result.reasons == "+15 VP title; +10 pricing page x3; -10 free email"
    many = "\n".join(
        f"  - {{name: r{i}, label: a fairly long label number {i}, points: {i + 1}, when: {{x: 1}}}}" for i in range(30)
    )
    engine = rules_from("fit:\n" + many)
    text = score(engine, lead(x=1)).reasons
    assert len(text) <= 250 and text.startswith("+30 a fairly long label number 29; +29")
    assert text.count(";") <= 4  # at most 5 hits by default
    engine = rules_from("reasons: {max_hits: 20, max_length: 100}\nfit:\n" + many)
    assert len(score(engine, lead(x=1)).reasons) <= 100


def test_every_score_carries_the_rules_version() -> None:
    engine = rules_from(_LEVELS)
    assert score(engine, lead(pts=5)).rules_version == engine.version


def test_same_inputs_same_output() -> None:
    engine = rules_from(_LEVELS)
    assert score(engine, lead(pts=61)) == score(engine, lead(pts=61))


def test_score_many_equals_score_on_each() -> None:
    engine = rules_from(
        """
        fit: [{name: vp, points: 15, when: {job_title: {regex: vp}}}]
        engagement: [{name: pv, points: [1, 2], cap: 9, half_life_days: 7, event: {kind: page_view}}]
        """
    )
    items = [
        (lead(id=f"L{i}", job_title="VP" if i % 3 else "Dev"), [act("page_view", d) for d in range(i % 7)], None)
        for i in range(100)
    ]
    expected = [engine.score(lo, a, NOW, p) for lo, a, p in items]
    assert engine.score_many(items, NOW) == expected
    assert engine.score_many(items, NOW, chunk_size=7) == expected
    assert list(engine.iter_scores(iter(items), NOW, chunk_size=40)) == expected
    batch = engine.score_batch(LeadBatch.from_items(items), NOW)
    assert batch.scores() == expected
    assert batch.total.tolist() == [s.total for s in expected]
    assert ago(0) == NOW


def test_where_on_the_activity_timestamp_and_kind() -> None:
    engine = rules_from(
        """
        engagement:
          - {name: fresh, points: 1, event: {kind: [page_view, visit], where: {timestamp: {within_days: 7}}}}
          - {name: views, points: 1, event: {kind: [page_view, visit], where: {kind: page_view}}}
        """
    )
    result = score(engine, lead(), [act("page_view", 1), act("visit", 2), act("page_view", 10)])
    assert points(result, "fresh") == 2 and points(result, "views") == 2


def test_columnar_input_gives_the_same_scores_as_objects() -> None:
    """``LeadBatch.from_columns`` (arrays, categoricals, datetime64) scores like the same leads as objects."""
    engine = compile_rules(default_rules())
    titles = ["VP Sales", "Student", "CEO"]
    kinds = ["page_view", "email_click", "visit"]
    urls = ["https://a.io/pricing", "https://a.io/blog"]
    epoch = NOW.replace(year=1970, month=1, day=1, hour=0, minute=0)
    leads_ = [
        lead(id="a", email="jane@acme.com", job_title="VP Sales", employees=500, created_at=ago(400), page_views=12.0),
        lead(id="b", email="x@gmail.com", job_title="Student", created_at=ago(10)),
        lead(id="c", email="info@corp.io", job_title="CEO", employees=20, created_at=ago(100), page_views=3.0),
    ]
    acts = {
        "a": [act("page_view", 1, url=urls[0]), act("visit", 3)],
        "b": [],
        "c": [act("email_click", 200), act("page_view", 5, url=urls[1]), act("page_view", 6, url=urls[0])],
    }
    items = [(lo, acts[lo.id], None) for lo in leads_]
    expected = engine.score_batch(LeadBatch.from_items(items), NOW).scores()
    flat = [(i, a) for i, lo in enumerate(leads_) for a in acts[lo.id]]
    batch = LeadBatch.from_columns(
        3,
        {
            "email": [lo.email for lo in leads_],
            "job_title": Categorical(np.array([0, 1, 2]), titles),
            "employees": np.array([500, np.nan, 20]),
            "created_at": np.array([lo.created_at.replace(tzinfo=None) for lo in leads_], dtype="datetime64[us]"),  # type: ignore[union-attr]
            "page_views": np.array([12.0, np.nan, 3.0]),
        },
        ids=["a", "b", "c"],
        activity_lead=np.array([i for i, _ in flat]),
        activity_kind=Categorical(np.array([kinds.index(a.kind) for _, a in flat]), kinds),
        activity_timestamp=np.array([(a.timestamp - epoch) // timedelta(microseconds=1) for _, a in flat]),
        activity_attributes={"url": [a.attributes.get("url") for _, a in flat]},
    )
    got = engine.score_batch(batch, NOW).scores()
    assert [(s.total, s.reasons, [(h.rule, h.points, h.count) for h in s.hits]) for s in got] == [
        (s.total, s.reasons, [(h.rule, h.points, h.count) for h in s.hits]) for s in expected
    ]
