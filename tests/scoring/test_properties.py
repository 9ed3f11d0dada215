"""Property-based tests (hypothesis) of the engine, with the default rules and with random rule sets.

Every property is checked on both evaluation paths: ``util.score`` asserts that the row path and the
columnar path give the same ``Score``.
"""

from __future__ import annotations

import itertools
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scoring import (
    Activity,
    Categorical,
    CompiledRules,
    Lead,
    LeadBatch,
    QualificationState,
    Score,
    compile_rules,
    default_rules,
    load_rules,
)

from .util import NOW, score

DEFAULT = compile_rules(default_rules())
#: more examples locally with e.g. SCORING_PROPERTY_EXAMPLES=3000
PROFILE = settings(
    max_examples=int(os.environ.get("SCORING_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KINDS = [
    "page_view",
    "visit",
    "form_submission",
    "email_open",
    "email_click",
    "email_reply",
    "email_sent",
    "meeting",
    "call",
    "chat",
    "download",
    "campaign_response",
    "unsubscribe",
    "something_else",
]
URLS = ["https://acme.io/", "https://acme.io/pricing", "/demo", "https://acme.io/blog/x", None, "", "/PRICING?x=1"]
FORMS = ["Request a demo", "Newsletter", "Contact sales", None]
DOMAINS = ["acme.com", "gmail.com", "qq.com", "mailinator.com", "rivalco.com", "eu.acme.com", "yahoo.co.uk"]
LOCALS = ["jane", "info", "sales-emea", "noreply", "j.doe+x", "a b", ""]
TITLES = ["CEO", "VP Sales", "Vice President", "Director of IT", "Marketing Manager", "Student", "Engineer", None]


#: values of a categorical attribute for lookup tables: text in any case and spacing, numbers, lists, blanks
SEGMENT_VALUES = ["Enterprise", " smb ", "SMB", "mid market", "5", 5, 100.0, "yes", True, "", "n/a"]
SEGMENTS = st.one_of(
    st.none(), st.sampled_from(SEGMENT_VALUES), st.lists(st.sampled_from([*SEGMENT_VALUES, None]), max_size=3)
)


def instants(lo: float = -5, hi: float = 1500) -> st.SearchStrategy[datetime]:
    """Moments around NOW (negative days = the future), some naive (read as UTC)."""
    return st.builds(
        lambda days, naive: (NOW - timedelta(days=days)).replace(tzinfo=None if naive else UTC),
        st.floats(lo, hi, allow_nan=False),
        st.booleans(),
    )


emails = st.one_of(
    st.none(),
    st.builds(lambda local, domain: f"{local}@{domain}", st.sampled_from(LOCALS), st.sampled_from(DOMAINS)),
    st.sampled_from(["not-an-email", "x@", "@acme.com", "a@b"]),
)
counters = st.one_of(st.none(), st.integers(0, 200), st.floats(0, 200, allow_nan=False), st.just("12"))


@st.composite
def leads(draw: st.DrawFn) -> Lead:
    attributes: dict[str, Any] = {}
    for name in ("page_views", "visits", "form_submissions", "email_opens", "email_clicks", "email_replies"):
        value = draw(counters)
        if value is not None:
            attributes[name] = value
    for name in ("last_visit_at", "last_activity_at"):
        if draw(st.booleans()):
            attributes[name] = draw(instants())
    segment = draw(SEGMENTS)
    if segment is not None:
        attributes["segment"] = segment
    if draw(st.integers(0, 4)) == 0:
        attributes["work_email"] = draw(emails)
    if draw(st.integers(0, 4)) == 0:
        attributes["additional_emails"] = draw(st.lists(emails.filter(lambda e: e is not None), max_size=2))
    return Lead(
        id=draw(st.sampled_from(["a", "b", "c"])),
        email=draw(emails),
        job_title=draw(st.sampled_from(TITLES)),
        employees=draw(st.one_of(st.none(), st.integers(0, 20_000))),
        annual_revenue=draw(st.one_of(st.none(), st.floats(0, 1e9, allow_nan=False))),
        industry=draw(st.sampled_from(["Software", "software", "Retail", "Banking", None])),
        country=draw(st.sampled_from(["US", "de", "United Kingdom", "BR", None])),
        opted_out=draw(st.booleans()),
        bounced=draw(st.booleans()),
        created_at=draw(st.one_of(st.none(), instants(0, 1500))),
        attributes=attributes,
    )


@st.composite
def activities(draw: st.DrawFn, kinds: list[str] = KINDS) -> Activity:
    attributes: dict[str, Any] = {}
    url = draw(st.sampled_from(URLS))
    if url is not None:
        attributes["url"] = url
    form = draw(st.sampled_from(FORMS))
    if form is not None:
        attributes["form"] = form
    return Activity("a", draw(st.sampled_from(kinds)), draw(instants()), attributes)


activity_lists = st.lists(activities(), max_size=25)
previous_states = st.one_of(
    st.none(), st.builds(QualificationState, st.booleans(), st.one_of(st.none(), instants(0, 100)))
)


def check_invariants(engine: CompiledRules, result: Score) -> None:
    rules = engine.rules
    assert 0 <= result.total <= 100
    assert result.fit >= 0 and result.engagement >= 0 and result.penalties <= 0
    assert math.isclose(sum(h.points for h in result.hits), result.raw_total, abs_tol=1e-6)
    assert result.total == min(max(math.floor(result.raw_total + 0.5 + 1e-9), 0), 100)
    expected_grade = (
        "hot" if result.total >= engine.hot_threshold else "warm" if result.total >= engine.warm_threshold else "cold"
    )
    assert result.grade == expected_grade
    for part in ("fit", "engagement", "penalties"):
        cap = getattr(rules.caps, part)
        part_points = sum(h.points for h in result.hits if h.part == part)
        if cap is not None:
            assert abs(part_points) <= cap + 1e-9
    specs = {r.name: r for _, _, r in rules.iter_rules()}
    groups: dict[str, int] = {}
    for h in result.hits:
        spec = specs.get(h.rule)
        if spec is None:
            assert h.rule.endswith(" cap")
            continue
        if spec.cap is not None:
            assert abs(h.points) <= spec.cap + 1e-9
        if spec.group is not None:
            groups[spec.group] = groups.get(spec.group, 0) + 1
        assert h.count >= 1
    assert all(n == 1 for n in groups.values())
    assert len(result.reasons) <= rules.reasons.max_length
    if result.qualified:
        assert result.qualified_at is not None and result.total >= engine.release_threshold
    else:
        assert result.qualified_at is None


# -- the default rules ---------------------------------------------------------------------------------


@PROFILE
@given(leads(), activity_lists, previous_states)
def test_default_rules_invariants(lead: Lead, acts: list[Activity], previous: QualificationState | None) -> None:
    result = score(DEFAULT, lead, acts, previous)
    check_invariants(DEFAULT, result)
    # same inputs and now: same output, also from a freshly compiled engine
    assert compile_rules(load_rules(None)).score(lead, acts, NOW, previous) == result


@PROFILE
@given(leads(), activity_lists, activities(), st.integers(0, 25))
def test_adding_an_activity_never_lowers_the_score(
    lead: Lead, acts: list[Activity], extra: Activity, position: int
) -> None:
    before = score(DEFAULT, lead, acts)
    after = score(DEFAULT, lead, [*acts[:position], extra, *acts[position:]])
    assert after.raw_total >= before.raw_total - 1e-9
    assert after.total >= before.total


@PROFILE
@given(leads(), st.lists(activities(), min_size=1, max_size=25), st.data())
def test_older_activity_never_counts_more(lead: Lead, acts: list[Activity], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(acts) - 1))
    older_by = data.draw(st.floats(0, 1000, allow_nan=False))
    moved = Activity(acts[i].lead_id, acts[i].kind, acts[i].timestamp - timedelta(days=older_by), acts[i].attributes)
    newer = score(DEFAULT, lead, acts)
    older = score(DEFAULT, lead, [*acts[:i], moved, *acts[i + 1 :]])
    assert older.raw_total <= newer.raw_total + 1e-9


@PROFILE
@given(st.lists(st.tuples(leads(), activity_lists, previous_states), min_size=1, max_size=12))
def test_batch_paths_agree_with_single_scores(
    items: list[tuple[Lead, list[Activity], QualificationState | None]],
) -> None:
    expected = [DEFAULT.score(lead, acts, NOW, prev) for lead, acts, prev in items]
    batch = DEFAULT.score_batch(LeadBatch.from_items(items), NOW)
    assert batch.scores() == expected
    assert batch.total.tolist() == [s.total for s in expected]
    assert batch.qualified.tolist() == [s.qualified for s in expected]
    assert batch.grades == [s.grade for s in expected]
    assert batch.fit.tolist() == [s.fit for s in expected]
    assert batch.penalties.tolist() == [s.penalties for s in expected]
    assert DEFAULT.score_many(items, NOW, chunk_size=5) == expected


# -- random rule sets ------------------------------------------------------------------------------------

ATTRS = ["job_title", "employees", "industry", "country", "email", "page_views", "company_email", "last_visit_at"]


def value_tests_for(attribute: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(["Software", "US", "ceo", 100, True]),
        st.lists(st.sampled_from(["US", "de", "Retail", 5]), min_size=1, max_size=3),
        st.builds(lambda lo, width: {"between": [lo, lo + width]}, st.integers(0, 5000), st.integers(0, 5000)),
        st.sampled_from(
            [
                {"gte": 10},
                {"lt": 200},
                {"regex": "^(vp|vice)"},
                {"regex": "ceo|director", "ignore_case": False},
                {"contains": ["a", "o"]},
                {"exists": True},
                {"missing": True},
                {"within_days": 30},
                {"older_than_days": 90},
                {"is": "free"},
                {"is": ["role", "invalid"]},
                {"not_in": ["US", "Software"]},
                {"ends_with": ".com"},
            ]
        ),
    )


def conditions(depth: int = 2) -> st.SearchStrategy[Any]:
    leaf = st.sampled_from(ATTRS).flatmap(lambda a: value_tests_for(a).map(lambda t: {a: t}))
    if depth == 0:
        return leaf
    inner = conditions(depth - 1)
    return st.one_of(
        leaf,
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"all": items}),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"any": items}),
        inner.map(lambda c: {"not": c}),
    )


def point_values(sign: int) -> st.SearchStrategy[Any]:
    number = st.one_of(st.integers(0, 30), st.floats(0, 30, allow_nan=False).map(lambda x: round(x, 2)))
    return st.one_of(number, st.lists(number, min_size=1, max_size=4)).map(
        lambda p: [sign * v for v in p] if isinstance(p, list) else sign * p
    )


TABLE_KEYS = ["enterprise", "SMB", "mid market ", "5", 100, 7.5, True, "software", "US", "ceo"]
TABLE_ATTRS = ["segment", "industry", "country", "job_title", "employees", "page_views", "annual_revenue"]


def table_points(sign: int) -> st.SearchStrategy[float]:
    return st.one_of(st.integers(0, 30), st.floats(0, 30, allow_nan=False).map(lambda x: round(x, 2))).map(
        lambda p: sign * p
    )


@st.composite
def bands(draw: st.DrawFn, sign: int) -> list[dict[str, Any]]:
    """Non-overlapping bands, with gaps and open ends, in any order."""
    cuts = sorted(
        draw(st.sets(st.sampled_from([-10, 0, 1, 5, 10, 12, 50, 100, 200, 1000, 5000, 20_000]), min_size=1, max_size=6))
    )
    edges: list[float | None] = [None if draw(st.booleans()) else cuts[0] - 1, *cuts, None]
    out = []
    for lo, hi in itertools.pairwise(edges):
        if (lo is None and hi is None) or draw(st.integers(0, 3)) == 0:
            continue
        band: dict[str, Any] = {"points": draw(table_points(sign))}
        if lo is not None:
            band["from"] = lo
        if hi is not None:
            band["below"] = hi
        out.append(band)
    if not out:
        out = [{"from": cuts[0], "points": draw(table_points(sign))}]
    return draw(st.permutations(out))


@st.composite
def tables(draw: st.DrawFn, sign: int) -> dict[str, Any]:
    """The keys of a lookup-table rule (``points_by_value`` or ``points_by_range``, ``default``, ``missing``)."""
    table: dict[str, Any] = {"attribute": draw(st.sampled_from(TABLE_ATTRS))}
    if draw(st.booleans()):
        keys = draw(
            st.lists(st.sampled_from(TABLE_KEYS), min_size=1, max_size=5, unique_by=lambda k: str(k).strip().casefold())
        )
        table["points_by_value"] = {k: draw(table_points(sign)) for k in keys}
    else:
        table["points_by_range"] = draw(bands(sign))
    for key in ("default", "missing"):
        if draw(st.booleans()):
            table[key] = draw(table_points(sign))
    return table


@st.composite
def rule_sets(draw: st.DrawFn, monotone: bool = False) -> dict[str, Any]:
    """Random, valid rule sets. ``monotone``: only constructs for which more or newer activity can only
    raise the score (positive event and counter rules; no conditions on activity recency)."""
    groups = st.one_of(st.none(), st.sampled_from(["g1", "g2"]))
    events = st.builds(
        lambda kinds, where, within: {
            "kind": kinds,
            **({"where": where} if where else {}),
            **({"within_days": within} if within else {}),
        },
        st.lists(st.sampled_from(KINDS), min_size=1, max_size=3),
        st.one_of(st.none(), st.sampled_from([{"url": {"contains": "pricing"}}, {"form": {"regex": "demo|sales"}}])),
        st.one_of(st.none(), st.integers(1, 400)),
    )
    part_rules: dict[str, list[dict[str, Any]]] = {"fit": [], "engagement": [], "penalties": []}
    n = 0
    for part, sign in (("fit", 1), ("engagement", 1), ("penalties", -1)):
        for _ in range(draw(st.integers(0, 4))):
            n += 1
            rule: dict[str, Any] = {"name": f"r{n}", "points": draw(point_values(sign)), "group": draw(groups)}
            kind = draw(st.sampled_from(["condition", "event", "counter", "table"]))
            if monotone and (part == "penalties" or kind == "condition"):
                kind = "counter"
            if kind == "table":
                del rule["points"]
                rule.update(draw(tables(sign)))
                if not monotone and draw(st.integers(0, 2)) == 0:
                    rule["when"] = draw(conditions(1))
            elif kind == "condition":
                rule["points"] = draw(st.integers(0, 30)) * sign
                rule["when"] = draw(conditions())
            elif kind == "event":
                rule["event"] = draw(events)
            else:
                rule["counter"] = draw(st.sampled_from(["page_views", "visits", "email_clicks"]))
                rule["per"] = draw(st.sampled_from([1, 1, 2, 0.5]))
                if draw(st.booleans()):
                    rule["at_least"] = draw(st.integers(0, 20))
                if draw(st.booleans()) and not isinstance(rule["points"], list):
                    rule["once"] = True
            if kind in ("event", "counter"):
                if draw(st.booleans()):
                    rule["cap"] = draw(st.integers(1, 40))
                rule["half_life_days"] = draw(st.sampled_from([None, 0, 7, 45, 365]))
                if monotone and part == "penalties":
                    rule["half_life_days"] = 0  # decaying penalties would grow as activity gets newer
                if rule["half_life_days"] is None:
                    del rule["half_life_days"]
            if not monotone and draw(st.integers(0, 3)) == 0:
                rule["unless"] = draw(conditions(1))
            if rule["group"] is None:
                del rule["group"]
            else:
                rule["group"] = f"{part}_{rule['group']}"
            part_rules[part].append(rule)
    return {
        "base": "none",
        "caps": {part: draw(st.one_of(st.none(), st.integers(1, 80))) for part in ("fit", "engagement", "penalties")},
        "decay": {"half_life_days": draw(st.sampled_from([None, 30, 90]))},
        "emails": {"secondary_attributes": ["work_email", "additional_emails"], "role_local_parts": ["info", "sales"]},
        "activity": {"timestamp_attributes": ["last_visit_at"], "ignore_kinds": ["email_sent"]},
        "qualification": {"threshold": 50, "release": draw(st.integers(20, 50))},
        **part_rules,
    }


@PROFILE
@given(rule_sets(), st.lists(st.tuples(leads(), activity_lists, previous_states), min_size=1, max_size=6))
def test_random_rules_invariants_and_path_agreement(
    data: dict[str, Any], items: list[tuple[Lead, list[Activity], QualificationState | None]]
) -> None:
    engine = compile_rules(load_rules(data))
    expected = []
    for lead, acts, prev in items:
        result = score(engine, lead, acts, prev)
        check_invariants(engine, result)
        expected.append(result)
    assert engine.score_batch(LeadBatch.from_items(items), NOW).scores() == expected


@PROFILE
@given(rule_sets(monotone=True), leads(), activity_lists, activities(), st.integers(0, 25), st.data())
def test_random_rules_monotone_in_activity(
    data: dict[str, Any], lead: Lead, acts: list[Activity], extra: Activity, position: int, more: st.DataObject
) -> None:
    engine = compile_rules(load_rules(data))
    before = score(engine, lead, acts)
    after = score(engine, lead, [*acts[:position], extra, *acts[position:]])
    assert after.raw_total >= before.raw_total - 1e-9
    assume(acts)
    i = more.draw(st.integers(0, len(acts) - 1))
    moved = Activity("a", acts[i].kind, acts[i].timestamp - timedelta(days=more.draw(st.floats(0, 500))), {})
    moved = Activity("a", moved.kind, moved.timestamp, acts[i].attributes)
    older = score(engine, lead, [*acts[:i], moved, *acts[i + 1 :]])
    assert older.raw_total <= before.raw_total + 1e-9


@PROFILE
@given(rule_sets(), leads(), activity_lists)
def test_same_inputs_and_now_same_output(data: dict[str, Any], lead: Lead, acts: list[Activity]) -> None:
    first = compile_rules(load_rules(data)).score(lead, acts, NOW)
    second = compile_rules(load_rules(data)).score(lead, list(acts), NOW)
    assert first == second
    assert load_rules(data).version == first.rules_version


@PROFILE
@given(
    st.data(),
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["Enterprise", " smb ", "SMB", "mid market", "x"])),
            st.one_of(st.none(), st.floats(allow_nan=True), st.sampled_from([-10.0, 0.0, 5.0, 100.0, 999.0, 1000.0])),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_tables_on_numeric_and_categorical_columns_agree_with_rows(
    data: st.DataObject, values: list[tuple[str | None, float | None]]
) -> None:
    """``points_by_range`` on a float64 column (NaN, infinities; the vectorized band search) and
    ``points_by_value`` on a categorical column give what the row path gives on the same values."""
    by_value = {"name": "v", **data.draw(tables(1)), "attribute": "segment"}
    by_range = {"name": "r", "attribute": "seconds", "points_by_range": data.draw(bands(-1))}
    for key in ("default", "missing"):
        if data.draw(st.booleans()):
            by_range[key] = -data.draw(st.integers(0, 9))
    engine = compile_rules(load_rules({"base": "none", "fit": [by_value], "penalties": [by_range]}))
    segments = [s for s, _ in values]
    seconds = np.array([math.nan if x is None else x for _, x in values], dtype=np.float64)
    categories = sorted({s for s in segments if s is not None})
    codes = np.array([-1 if s is None else categories.index(s) for s in segments])
    n = len(values)
    batch = LeadBatch.from_columns(
        n, {"segment": Categorical(codes, categories), "seconds": seconds}, ids=[str(i) for i in range(n)]
    )
    rows = [
        engine.score(
            Lead(str(i), attributes={"segment": s, "seconds": None if x is None or math.isnan(x) else x}), [], NOW
        )
        for i, (s, x) in enumerate(values)
    ]
    columns = engine.score_batch(batch, NOW)
    assert columns.scores() == rows
    assert columns.total.tolist() == [r.total for r in rows]
