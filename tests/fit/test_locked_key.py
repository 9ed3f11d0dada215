"""`locked: true` is for `rules fit` only: the engine accepts it and neither scoring nor the version changes."""

from __future__ import annotations

from scoring import load_rules

RULE = {"name": "competitor", "when": {"company": "Rival"}, "points": -40}


def test_locked_changes_neither_the_rules_nor_their_version() -> None:
    plain = load_rules({"base": "none", "penalties": [RULE]})
    locked = load_rules({"base": "none", "penalties": [{**RULE, "locked": True}]})
    assert locked.penalties[0].locked and not plain.penalties[0].locked
    assert locked.version == plain.version
