"""One engine (issue 13): the bulk path (records or the cache mapped column by column, scored as a batch,
read back as arrays) gives every lead exactly what its single-lead explanation (``leadsync explain``)
gives: points, parts, grade, qualification, reasons and hits; and both agree with ``to_lead`` + ``score``.

The leads mix what goes wrong in practice: numbers as text, ranges, unreadable numbers, date-times with Z,
offsets and epoch milliseconds, blanks and absent properties, booleans, an enum map with ``other``, a
fallback property, Salesforce-style native numbers and booleans, activities of several kinds with and
without the attribute a rule reads, and stored qualification states on both sides of the release level.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
import yaml

from connectors.base import RawRecord
from leadsync.inspect_cache import explain
from mappings import load_mapping
from scoring import QualificationState, compile_rules, load_rules
from sync.scoring_step import activities_from_dicts, cache_batch, records_batch, score_batch
from sync.state import CachedLead, StateStore, StoredScore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

MAPPING = {
    "fields": {
        "industry": {"property": "industry", "map": {"computer software": "software", "saas": "software"}},
        "lead_origin": {"property": "lead_origin", "map": {"form": "Lead Add Form"}, "other": "Other"},
        "seats": {"property": ["seats", "seats_estimate"], "type": "int"},
        "time_on_site": {"property": "time_on_site", "type": "float"},
        "trial": {"property": "trial", "type": "bool"},
    }
}
RULES = """
fit:
  - name: origin
    attribute: lead_origin
    label: Lead origin
    points_by_value: {lead add form: 30, other: 5}
    missing: 2
  - name: seats
    attribute: seats
    points_by_range:
      - {below: 10, points: 1}
      - {from: 10, below: 100, points: 8}
      - {from: 100, points: 15}
    missing: 0
  - name: trial
    points: 7
    when: {trial: true}
engagement:
  - name: time_on_site
    attribute: time_on_site
    points_by_range:
      - {below: 100, points: 0}
      - {from: 100, below: 1000, points: 6}
      - {from: 1000, points: 12}
"""


def _maybe(rng: random.Random, *values: Any) -> Any:
    return rng.choice([*values, None, ""])


def _properties(rng: random.Random, i: int) -> dict[str, Any]:
    created = NOW - timedelta(days=rng.randint(0, 400), seconds=rng.randint(0, 86_399))
    props: dict[str, Any] = {
        "email": _maybe(rng, f"u{i}@acme{i % 7}.com", f"u{i}@gmail.com", f"info@co{i % 3}.com", "not-an-email"),
        "jobtitle": _maybe(rng, "VP Marketing", "CEO", "Student", "Head of Growth", " director of sales "),
        "numemployees": _maybe(rng, "25-50", "1000+", "250", "1,000-5,000", "lots"),
        "annualrevenue": _maybe(rng, "1500000", "2.5e6", "abc", 750000, 1.25e6),
        "industry": _maybe(rng, "Computer Software", "SaaS", "retail", "software"),
        "country": _maybe(rng, "US", "DE", "fr"),
        "lifecyclestage": _maybe(rng, "lead", "subscriber", "customer", "marketingqualifiedlead"),
        "hs_email_optout": _maybe(rng, "true", "false", True, False, "maybe"),
        "hs_email_hard_bounce_reason": _maybe(rng, "mailbox full", " "),
        "createdate": rng.choice(
            [
                created.isoformat(),
                created.isoformat().replace("+00:00", "Z"),
                created.astimezone(UTC).strftime("%Y-%m-%d"),
                str(int(created.timestamp() * 1000)),
                created.replace(tzinfo=None).isoformat() + "+02:00",
                "yesterday",
                None,
            ]
        ),
        "hs_analytics_num_page_views": _maybe(rng, "0", "12", "57", 3, "7.0", "x"),
        "hs_analytics_num_visits": _maybe(rng, "1", "4", 9),
        "hs_analytics_last_visit_timestamp": _maybe(rng, (NOW - timedelta(days=rng.randint(0, 120))).isoformat()),
        "work_email": _maybe(rng, f"w{i}@acme.com"),
        "lead_origin": _maybe(rng, "Form", "FORM", "Chat", "API"),
        "seats": _maybe(rng, "5", "50", "500", "many"),
        "seats_estimate": _maybe(rng, "12", 120),
        "time_on_site": _maybe(rng, "90", "450.5", "1200", 3000, "n/a"),
        "trial": _maybe(rng, "yes", "no", "1", True),
    }
    return {k: v for k, v in props.items() if v is not None or rng.random() < 0.5}  # absent or null


def _activities(rng: random.Random, lead_id: str) -> list[dict[str, Any]]:
    rows = []
    for _ in range(rng.choice([0, 0, 1, 3, 8, 20])):
        kind = rng.choice(["page_view", "visit", "form_submission", "email_open", "email_click", "meeting", "note"])
        attributes = {"url": rng.choice(["/pricing", "/demo", "/blog/x", "/pricing?plan=pro"])}
        if rng.random() < 0.3:
            attributes = {}
        stamp = NOW - timedelta(days=rng.randint(0, 300), seconds=rng.randint(0, 86_399))
        rows.append({"kind": kind, "timestamp": stamp.isoformat(), "attributes": attributes})
    return rows


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    s = StateStore.open(store_url)
    try:
        yield s
    finally:
        s.close()


def _leads(n: int, seed: int) -> tuple[list[CachedLead], list[StoredScore]]:
    rng = random.Random(seed)
    cached, stored = [], []
    for i in range(n):
        lead_id = f"L{i:04d}"
        props = _properties(rng, i)
        email = props.get("email")
        cached.append(CachedLead(lead_id, "contact", email if isinstance(email, str) else None, props,
                                 _activities(rng, lead_id), NOW))  # fmt: skip
        if rng.random() < 0.4:
            qualified = rng.random() < 0.6
            at = NOW - timedelta(days=rng.randint(1, 30)) if qualified else None
            total = rng.choice([30, 45, 55, 70])
            stored.append(StoredScore(lead_id, total, 0, 0, 0, "warm", qualified, at, [], "", "v0", NOW))
    return cached, stored


def test_bulk_path_equals_the_explanation(store: StateStore) -> None:
    mapping = load_mapping("hubspot", MAPPING)
    base = yaml.safe_load(resources.files("scoring").joinpath("defaults", "rules.yaml").read_text("utf-8"))["scoring"]
    extra = yaml.safe_load(RULES)
    data = {**base, "fit": base["fit"] + extra["fit"], "engagement": base["engagement"] + extra["engagement"]}
    data["qualification"] = {"threshold": 40, "release": 25}
    rules = compile_rules(load_rules(data), mapping_version=mapping.version)
    cached, stored = _leads(400, seed=13)
    store.upsert_leads(cached)
    store.save_scores(stored)
    previous = {s.lead_id: s for s in stored}

    # the pipeline's page path: records and activity objects, mapped column by column
    records = [RawRecord(c.id, c.object_type, c.properties, c.updated_at) for c in cached]
    activities = {c.id: activities_from_dicts(c.id, c.activities) for c in cached}
    states = {s.lead_id: QualificationState(s.qualified, s.qualified_at) for s in stored}
    bad: list[tuple[str, str]] = []
    page = score_batch(
        rules, records_batch(mapping, records, activities, states, lambda r, p, *_: bad.append((r, p))), NOW
    )
    page_scores = page.scores()
    # the cache path: the same leads read in bulk (one query per chunk), as rescoring and preview read them
    chunks = list(store.iter_lead_chunks(chunk_size=150))
    assert [i for c in chunks for i in c.ids] == [c.id for c in cached]
    from_cache = [s for c in chunks for s in score_batch(rules, cache_batch(mapping, c).batch, NOW).scores()]

    reference_bad: list[tuple[str, str]] = []
    fired = set()
    for i, lead in enumerate(cached):
        one = explain(store, rules, mapping, lead.id, NOW)
        assert one is not None
        expected = one.score
        # the same lead on the reference objects: to_lead + one CompiledRules.score call
        obj = mapping.to_lead(lead.id, lead.properties, lambda r, p, *_: reference_bad.append((r, p)))
        prev = previous.get(lead.id)
        state = None if prev is None else QualificationState(prev.qualified, prev.qualified_at)
        assert rules.score(obj, activities[lead.id], NOW, state) == expected, lead.id
        for got in (page_scores[i], from_cache[i]):
            assert got == expected, lead.id
        assert (page.total[i], page.fit[i], page.engagement[i], page.grade[i]) == (
            expected.total, expected.fit, expected.engagement, expected.grade
        )  # fmt: skip
        assert (page.qualified[i], page.qualified_at[i], page.reasons[i]) == (
            expected.qualified, expected.qualified_at, expected.reasons
        )  # fmt: skip
        assert page.columns.points[i] == expected.points
        fired.update(h.rule for h in expected.hits)
    # every unreadable value is reported once per record, as to_lead reports it
    assert sorted(bad) == sorted(reference_bad) and bad
    # the data exercise the rules that read typed values, enums, fallbacks and activities
    assert {"origin", "seats", "trial", "time_on_site", "free_email", "pricing_page"} <= fired
    assert any(s.qualified for s in page_scores) and any(not s.qualified for s in page_scores)
    assert len({s.reasons for s in page_scores}) > 20
