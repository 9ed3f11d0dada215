"""Lead scoring: YAML rules -> score, grade, qualification and a per-rule explanation.

Pure: no I/O except reading the packaged default rules, and no imports from the rest of leadsync.

    rules = load_rules(config.get("scoring"), source="leadsync.yaml: scoring")
    engine = compile_rules(rules)
    score = engine.score(lead, activities, now, previous)          # one lead (explanations)
    scores = engine.score_many(items, now)                         # many leads, same results
    columns = engine.score_batch(LeadBatch.from_items(items), now) # columnar numpy path, same results
"""

from __future__ import annotations

from .columns import Categorical, Column, LeadBatch
from .engine import CompiledRules, ScoreColumns
from .errors import RulesError, ScoringError
from .model import Activity, Lead, QualificationState, RuleHit, Score
from .rules import Rules, default_rules, load_rules, rules_version


def compile_rules(rules: Rules) -> CompiledRules:
    """Compile validated rules once; the result scores single leads, many leads and columnar batches."""
    return CompiledRules(rules)


__all__ = [
    "Activity",
    "Categorical",
    "Column",
    "CompiledRules",
    "Lead",
    "LeadBatch",
    "QualificationState",
    "RuleHit",
    "Rules",
    "RulesError",
    "Score",
    "ScoreColumns",
    "ScoringError",
    "compile_rules",
    "default_rules",
    "load_rules",
    "rules_version",
]
