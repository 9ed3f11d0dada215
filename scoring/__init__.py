"""Lead scoring, pure: rules -> score, grade, qualification, explanation (rules, compiler, engine, batch, explain).
Imports only stdlib, numpy, pydantic, yaml and email-domain lists (scoring.fit, which nothing here imports, also
scikit-learn and scipy): nothing of leadsync, sync, connectors, mappings."""

from __future__ import annotations

from .columns import Categorical, Column, LeadBatch
from .engine import CompiledRules, ScoreColumns
from .errors import RulesError, ScoringError
from .model import Activity, Lead, QualificationState, RuleHit, Score
from .rules import Rules, default_rules, load_rules, rules_version


def compile_rules(rules: Rules, *, mapping_version: str | None = None) -> CompiledRules:
    """Compile validated rules once; the result scores single leads, many leads and columnar batches.

    ``mapping_version`` (the lead mapping's hash) joins the rules version, so a mapping change rescores.
    """
    return CompiledRules(rules, mapping_version=mapping_version)


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
