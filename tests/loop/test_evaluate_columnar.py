"""The columnar store labelling (issue 10) equals the row-at-a-time reference on random data, both backends."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

import pytest

from leadsync.config import OutcomesConfig
from leadsync.evaluate_store import label_from_rows, label_from_store
from mappings import load_mapping
from sync.state import CachedLead, HistoryRow, StateStore, StoredOutcome

NOW = datetime(2025, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)
MAPPING = load_mapping("hubspot", None)


def _created(rng: random.Random, when: datetime) -> str:
    """Creation dates as a CRM sends them: ISO in UTC or another offset, epoch ms, blank or unreadable."""
    kind = rng.random()
    if kind < 0.05:
        return ""
    if kind < 0.08:
        return "not a date"
    if kind < 0.2:
        return str(int(when.timestamp() * 1000))
    if kind < 0.35:
        return when.astimezone(timezone(timedelta(hours=-5))).isoformat()
    return when.isoformat()


def seed(store: StateStore, rng: random.Random, n: int) -> None:
    leads, history, outcomes = [], [], []
    for i in range(n):
        lid = f"L{rng.randrange(10**6):06d}-{i}"
        created = NOW - timedelta(days=rng.uniform(0, 300), microseconds=rng.randrange(10**6))
        if rng.random() < 0.9:  # some history belongs to leads no longer cached
            leads.append(CachedLead(lid, "contact", None, {"createdate": _created(rng, created)}, [], None))
        at = created + timedelta(days=rng.uniform(-5, 5))
        for _ in range(rng.randrange(0, 5)):  # some cached leads were never scored
            total = rng.randrange(101)
            history.append(HistoryRow(lid, at, total, rng.choice(["cold", "warm", "hot"]), total > 60, "v"))
            if rng.random() < 0.3:
                history.append(HistoryRow(lid, at, total, "cold", False, "v", "challenger"))
            at += timedelta(days=rng.choice([0.5, 1, 20, 60]))
        if rng.random() < 0.3:
            converted = created + timedelta(days=rng.uniform(-10, 120))
            if rng.random() < 0.1 and history:
                converted = history[-1].at + timedelta(days=1)  # the moment is exactly a history row's time
            outcomes.append(StoredOutcome(lid, converted, "lifecycle:customer", {}))
    store.upsert_leads(leads)
    store.append_history(history)
    store.upsert_outcomes(outcomes)


@pytest.mark.parametrize("window_from", ["created", "first_scored"])
@pytest.mark.parametrize("lead_time", [0, 1, 2.5])
def test_columnar_labels_equal_the_row_path(
    store: StateStore, window_from: Literal["created", "first_scored"], lead_time: float
) -> None:
    seed(store, random.Random(f"{window_from}{lead_time}"), 400)
    settings = OutcomesConfig(window_days=60, window_from=window_from, lead_time_days=lead_time)
    for arm in ("champion", "challenger"):
        want = label_from_rows(store, MAPPING, settings, now=NOW, arm=arm)
        got = label_from_store(store, MAPPING, settings, now=NOW, arm=arm)
        assert got == want
        assert any(want.outcomes) and want.pending and want.converted_before_anchor  # every branch is reached
        if window_from == "created":
            assert want.no_anchor and want.no_history


def test_history_columns_page_like_the_rows(store: StateStore) -> None:
    seed(store, random.Random(3), 60)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rows = [(r.lead_id, r.at, r.total, r.grade, r.qualified) for page in store.iter_history() for r in page]
    pages = list(store.iter_history_columns(chunk_size=7))
    cols = [
        (lead, epoch + timedelta(microseconds=at), total, grade, qualified)
        for p in pages
        for lead, at, total, grade, qualified in zip(p.lead_ids, p.at_us, p.totals, p.grades, p.qualified, strict=True)
    ]
    assert cols == rows and len(pages) > 1
    assert all(p.lead_ids[-1] != q.lead_ids[0] for p, q in itertools.pairwise(pages))  # whole leads
    converted = {o.lead_id: o.converted_at for page in store.iter_outcomes() for o in page}
    got = {
        i: epoch + timedelta(microseconds=at)
        for ids, ats in store.iter_outcome_columns(5)
        for i, at in zip(ids, ats, strict=True)
    }
    assert got == converted
