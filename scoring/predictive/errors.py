"""Errors of the predictive model, under the scoring root (the CLI maps them to exit 2)."""

from __future__ import annotations

from scoring.errors import ScoringError


class ModelError(ScoringError):
    """A model cannot be trained, read or applied; the message says why."""


class ModelGuardError(ModelError):
    """Training refused by a guard (too few labeled leads, one class, a leaky feature, the label as a feature).

    ``kind`` names the guard (``too_few``, ``one_class``, ``leaky``, ``label_is_feature``) for callers that
    react to it (the daemon falls back to rules alone) rather than print it.
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)
