"""Pieces of ``rules fit --from-history`` and of the placeholder finder, without a store."""

from __future__ import annotations

from leadsync.csv_dialect import likely_placeholders
from leadsync.fit_history import event_rule
from scoring.fit.binning import Bins
from scoring.fit.scorecard import Table


def _count_table(name: str, edges: tuple[float, ...], points: tuple[int, ...]) -> Table:
    bins = Bins(name, "numeric", edges=edges, counts=(10,) * (len(edges) + 1), positives=(1,) * (len(edges) + 1))
    return Table(bins, points, tuple(float(p) for p in points), 1.0)


def test_a_count_table_becomes_escalating_event_points() -> None:
    rule = event_rule(_count_table("email_open_30d", (1.0, 3.0), (0, 4, 9)))
    assert (rule.kind, rule.within_days, rule.flattened) == ("email_open", 30, False)
    assert rule.points == (4, 0, 5, 0)  # 1 open: 4, 2 opens: 4, 3 or more: 9
    totals = [sum(rule.points[:n]) if n <= len(rule.points) else sum(rule.points) for n in range(6)]
    assert totals == [0, 4, 4, 9, 9, 9]


def test_a_count_table_that_falls_is_made_non_decreasing_and_says_so() -> None:
    rule = event_rule(_count_table("meeting_count", (1.0, 2.0), (0, 7, 3)))
    assert rule.within_days is None and rule.flattened
    assert rule.points == (7, 0, 0)


def test_placeholders_need_the_wording_and_several_columns() -> None:
    header = ["Specialization", "City", "Search", "Notes"]
    rows = [
        [
            "Select" if i % 4 == 0 else "Finance",
            "Select" if i % 5 == 0 else "Mumbai",
            "No",
            "Unknown" if i == 0 else "x",
        ]
        for i in range(200)
    ]
    assert likely_placeholders(header, rows, {""}) == {"Select": ["Specialization", "City"]}
    assert likely_placeholders(header[:1] + header[2:], [r[:1] + r[2:] for r in rows], {""}) == {}
    assert likely_placeholders(header, rows, {"", "Select"}) == {}  # already a null token
