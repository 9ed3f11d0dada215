"""``preview`` on the columnar path (issue 13) says what scoring each cached lead with both rule sets says:
counts, grade matrix, MQL crossings with hysteresis (previous qualification kept) and the examples."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from leadsync import inspect_cache
from leadsync.inspect_cache import Change, Impact, _keep, preview
from mappings import load_mapping
from scoring import compile_rules, default_rules, load_rules
from sync.scoring_step import score_cached
from sync.state import CachedLead, StateStore, StoredScore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    s = StateStore.open(store_url)
    try:
        yield s
    finally:
        s.close()


def _cache(store: StateStore, n: int, seed: int) -> None:
    rng = random.Random(seed)
    leads, scores = [], []
    for i in range(n):
        properties = {
            "email": rng.choice([f"u{i}@acme.com", f"u{i}@gmail.com", f"info@co{i}.com", None]),
            "jobtitle": rng.choice(["VP Marketing", "CEO", "Student", "Engineer", None]),
            "numemployees": rng.choice(["25-50", "1000+", "250", None]),
            "industry": rng.choice(["software", "retail", None]),
            "num_page_views": str(rng.randint(0, 60)),
        }
        activities = [
            {
                "kind": rng.choice(["page_view", "form_submission", "email_open", "meeting"]),
                "timestamp": (NOW - timedelta(days=rng.randint(0, 200))).isoformat(),
                "attributes": {"url": rng.choice(["/pricing", "/blog", "/demo"])},
            }
            for _ in range(rng.randint(0, 8))
        ]
        leads.append(CachedLead(f"L{i:05d}", "contact", properties["email"], properties, activities, NOW))
        if rng.random() < 0.3:
            scores.append(
                StoredScore(f"L{i:05d}", 55, 30, 25, 0, "warm", True, NOW - timedelta(days=3), [], "", "v0", NOW)
            )
    store.upsert_leads(leads)
    store.save_scores(scores)


def _reference(store: StateStore, current, proposed, mapping, examples: int = 5) -> Impact:
    impact = Impact(current_version=current.version, new_version=proposed.version)
    delta_sum = 0
    for chunk in store.iter_leads(chunk_size=700):
        previous = store.get_scores([c.id for c in chunk])
        before = score_cached(current, mapping, chunk, previous, NOW)
        after = score_cached(proposed, mapping, chunk, previous, NOW)
        for (lead, old), (_, new) in zip(before, after, strict=True):
            impact.leads += 1
            delta_sum += new.total - old.total
            impact.score_changes += new.total != old.total
            row = impact.grade_matrix.setdefault(old.grade, {})
            row[new.grade] = row.get(new.grade, 0) + 1
            change = Change(lead.id, lead.email, old.total, new.total, old.grade, new.grade)
            if new.qualified and not old.qualified:
                impact.newly_qualified += 1
                _keep(impact.examples["qualify"], change, examples)
            elif old.qualified and not new.qualified:
                impact.newly_unqualified += 1
                _keep(impact.examples["unqualify"], change, examples)
            if new.grade != old.grade:
                impact.grade_changes += 1
                _keep(impact.examples["regrade"], change, examples)
    impact.mean_delta = round(delta_sum / impact.leads, 2) if impact.leads else 0.0
    return impact


def test_columnar_preview_is_lead_by_lead_preview(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspect_cache, "PREVIEW_CHUNK", 300)  # several chunks: examples merge across them
    _cache(store, 1200, seed=3)
    mapping = load_mapping("hubspot")
    current = compile_rules(default_rules())
    proposed = compile_rules(
        load_rules({"qualification": {"threshold": 35, "release": 25}, "grades": {"hot": 50, "warm": 25}})
    )
    found, expected = preview(store, current, proposed, mapping, NOW), _reference(store, current, proposed, mapping)
    assert found.as_dict() == expected.as_dict()
    assert found.newly_qualified and found.grade_changes and found.leads == 1200
