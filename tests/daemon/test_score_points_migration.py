"""Revision 0004_score_points: ``scores.points`` (Score.points) added to a filled store, and taken away again.

The style of ``test_migrations.py``: the store is brought to the revision before, filled through the API,
upgraded; the old rows keep every value and have no points until scored again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect

from sync.state import StateStore, StoredScore

from .test_migrations import alembic_config, snapshot, upgrade_to

BEFORE = "0005_models"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _score(lead_id: str, total: int, points: float | None = None) -> StoredScore:
    return StoredScore(lead_id, total, 0, 10, -40, "cold", False, None, [], "-40 free email", "abc", T0, points)


def test_upgrade_keeps_scores_and_leaves_their_points_empty(store_url: str) -> None:
    store = StateStore(store_url)
    try:
        upgrade_to(store, BEFORE)
        store.save_scores([_score("a", 0), _score("b", 3)])  # as the release before wrote them: no points
        before = snapshot(store)["scores"]
        store.migrate()
        assert store.schema_revision() == store.head_revision()  # 0004_score_points and what followed it
        after = snapshot(store)["scores"]
        assert [{k: row[k] for k in old} for row, old in zip(after, before, strict=True)] == before
        assert [row["points"] for row in after] == [None, None]
        assert store.get_scores(["a"])["a"].points is None

        # scored again: the points land, and two leads that both score 0 stay apart
        store.save_scores([_score("a", 0, -30.0), _score("c", 0, -12.5)])
        found = store.get_scores(["a", "b", "c"])
        assert (found["a"].points, found["b"].points, found["c"].points) == (-30.0, None, -12.5)
        # a score without points leaves the stored points alone rather than erasing them
        store.save_scores([_score("c", 0)])
        assert store.get_scores(["c"])["c"].points == -12.5
    finally:
        store.close()


def test_downgrade_drops_only_the_points(store_url: str) -> None:
    store = StateStore.open(store_url)
    try:
        store.save_scores([_score("a", 0, -30.0)])
        config = alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, BEFORE)
        assert store.schema_revision() == BEFORE
        assert "points" not in {c["name"] for c in inspect(store.engine).get_columns("scores")}
        assert snapshot(store)["scores"][0]["total"] == 0
        store.migrate()
        assert store.get_scores(["a"])["a"].points is None
    finally:
        store.close()
