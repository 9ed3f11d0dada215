"""Errors of the scoring package (its own root: scoring imports nothing from the rest of leadsync)."""

from __future__ import annotations


class ScoringError(Exception):
    """Root of every error raised by ``scoring``."""


class RulesError(ScoringError):
    """The scoring rules are invalid; the message names the rule, the key and what is expected."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")
