"""``Score.points``: the unclamped total after part caps, beside the 0..100 score (both paths)."""

from __future__ import annotations

from scoring import LeadBatch

from .util import NOW, lead, rules_from, score

RULES = """
caps: {fit: 20, penalties: 50}
fit:
  - {name: vp, points: 15, when: {job_title: vp}}
  - {name: big, points: 15, when: {employees: {gte: 1000}}}
penalties:
  - {name: free, points: -30, when: {email: {is: free}}}
  - {name: student, points: -40, when: {job_title: student}}
  - {name: tiny, points: -2.5, when: {employees: {lt: 10}}}
"""


def test_points_keep_apart_leads_the_clamp_ties_at_zero() -> None:
    engine = rules_from(RULES)
    a = score(engine, lead(email="a@gmail.com", job_title="VP"))
    b = score(engine, lead(email="b@gmail.com", job_title="student", employees=5))
    assert a.total == b.total == 0
    assert (a.points, b.points) == (-15.0, -50.0)  # b: -72.5 of penalties, capped at 50


def test_points_are_the_capped_parts_summed_unrounded() -> None:
    engine = rules_from(RULES)
    result = score(engine, lead(job_title="VP", employees=5000))
    assert result.points == 20.0 and result.total == 20  # fit 30, capped at 20
    result = score(engine, lead(job_title="VP", employees=5))
    assert result.points == 12.5 and result.total == 13
    assert result.points == result.raw_total == sum(h.points for h in result.hits)


def test_the_columnar_result_has_the_points() -> None:
    engine = rules_from(RULES)
    leads = [lead(id="x", job_title="VP", employees=5), lead(id="y", email="y@gmail.com", job_title="student")]
    columns = engine.score_batch(LeadBatch.from_items([(le, [], None) for le in leads]), NOW)
    assert columns.points.tolist() == [12.5, -50.0]
    assert columns.total.tolist() == [13, 0]
