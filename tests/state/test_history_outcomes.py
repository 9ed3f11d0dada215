"""Score history (compact, append-only) and outcomes (earliest wins), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync.state import HistoryRow, StateStore, StoredOutcome

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def row(
    lead: str, day: int, total: int, grade: str = "cold", qualified: bool = False, arm: str = "champion"
) -> HistoryRow:
    return HistoryRow(lead, T0 + timedelta(days=day), total, grade, qualified, "v1", arm)


def test_history_keeps_only_changes(store: StateStore) -> None:
    assert store.append_history([row("a", 0, 10), row("b", 0, 50, "warm")]) == 2
    # unchanged total/grade/qualified: no row; a changed one: a row
    assert store.append_history([row("a", 1, 10), row("b", 1, 70, "hot", True)]) == 1
    # the same lead twice in one batch: both changes land, in time order
    assert store.append_history([row("a", 3, 30), row("a", 2, 20)]) == 2
    # the challenger arm is its own series
    assert store.append_history([row("a", 3, 30, arm="challenger")]) == 1
    rows = [r for page in store.iter_history(arm="champion", chunk_size=2) for r in page]
    assert [(r.lead_id, r.total) for r in rows] == [("a", 10), ("a", 20), ("a", 30), ("b", 50), ("b", 70)]
    assert rows[-1].qualified is True and rows[-1].at == T0 + timedelta(days=1)
    assert store.count_history() == 6 and store.count_history("challenger") == 1
    assert store.last_history(["a", "b", "zz"])["a"].total == 30
    assert "zz" not in store.last_history(["a", "zz"])


def test_history_refuses_unknown_arm_and_naive_time(store: StateStore) -> None:
    with pytest.raises(ValueError, match="arm"):
        store.append_history([row("a", 0, 1, arm="other")])
    with pytest.raises(ValueError, match="naive"):
        store.append_history([HistoryRow("a", datetime(2025, 1, 1), 1, "cold", False, "v1")])  # noqa: DTZ001
    assert store.count_history() == 0


def test_outcomes_are_idempotent_and_the_earliest_wins(store: StateStore) -> None:
    late = StoredOutcome("a", T0 + timedelta(days=9), "deal:closedwon", {"deal": "7"})
    early = StoredOutcome("a", T0 + timedelta(days=3), "lifecycle:customer", {})
    assert store.upsert_outcomes([late]) == 1
    assert store.upsert_outcomes([late]) == 0  # again: nothing new
    assert store.upsert_outcomes([early, StoredOutcome("b", T0, "lifecycle:customer", {})]) == 1
    assert store.upsert_outcomes([late]) == 0  # a later date never replaces an earlier one
    got = store.get_outcomes(["a", "b"])
    assert got["a"].converted_at == early.converted_at and got["a"].source == "lifecycle:customer"
    assert got["a"].first_seen_at is not None
    assert [o.lead_id for page in store.iter_outcomes(chunk_size=1) for o in page] == ["a", "b"]
    assert store.count_outcomes() == 2


def test_commit_pass_writes_history_and_outcomes_in_one_transaction(store: StateStore) -> None:
    new = store.commit_pass(
        scores=[],
        written={},
        triggers=[],
        watermark=None,
        history=[row("a", 0, 5)],
        outcomes=[StoredOutcome("a", T0, "lifecycle:customer", {})],
    )
    assert new == 1 and store.count_history() == 1 and store.count_outcomes() == 1
    with pytest.raises(ValueError):
        store.commit_pass(
            scores=[],
            written={},
            triggers=[],
            watermark=None,
            history=[row("b", 0, 5)],
            outcomes=[StoredOutcome("b", datetime(2025, 1, 1), "x", {})],  # noqa: DTZ001
        )
    assert store.count_history() == 1 and store.count_outcomes() == 1  # nothing of the failed pass landed
