"""The predictive model (likelihood to close), pure: feature encoding, training, calibration, guards, leakage
checks, metrics, priority tiers, per-lead contributions and (de)serialisation to bytes with skops.

Part of ``scoring``, so it imports only stdlib, numpy, scikit-learn and skops (plus ``scoring`` itself):
nothing of leadsync, sync, connectors or mappings, and no file or network I/O (callers store the bytes).
"""

from __future__ import annotations

from .errors import ModelError, ModelGuardError
from .features import FeatureSpec, FeatureTable, infer_specs
from .leads import LEAKY_BY_CONSTRUCTION, LeadFeatures
from .model import PRIORITIES, Prediction, PredictiveModel
from .train import TrainOptions, TrainResult, train_model

__all__ = [
    "LEAKY_BY_CONSTRUCTION",
    "PRIORITIES",
    "FeatureSpec",
    "FeatureTable",
    "LeadFeatures",
    "ModelError",
    "ModelGuardError",
    "Prediction",
    "PredictiveModel",
    "TrainOptions",
    "TrainResult",
    "infer_specs",
    "train_model",
]
