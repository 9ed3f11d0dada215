"""A trained model: encoding, gradient boosting, calibrator and priority cut-offs; applied in bulk, explained per
lead, and turned into bytes with skops (never pickle: loading checks every type against a fixed allowlist)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import skops.io
from threadpoolctl import threadpool_limits

from .contrib import path_contributions, raw_predict
from .errors import ModelError
from .features import FeatureSpec, FeatureTable, encode

F64 = npt.NDArray[np.float64]
#: priority tiers, from the top quartile of the training scores down (HubSpot's contact priority)
PRIORITIES: Final = ("very_high", "high", "medium", "low")
#: the only types a model file may hold beyond skops' defaults (what the estimator and calibrators are made of)
TRUSTED_TYPES: Final = frozenset(
    {
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "builtins.dict",
        "builtins.list",
        "builtins.str",
        "builtins.tuple",
        "builtins.float",
        "builtins.int",
        "builtins.bool",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.int64",
        "numpy.uint8",
        "numpy.uint32",
        "functools.partial",
        "sklearn.utils.validation.check_array",
        "scipy.interpolate._interpolate.interp1d",
        "collections.OrderedDict",
    }
)


@dataclass(frozen=True)
class Prediction:
    """Calibrated likelihoods (0..1) and priority tiers of a batch of leads."""

    likelihood: F64
    priority: list[str]

    def percent(self) -> list[int]:
        """The likelihood as an integer 0..100 (what the CRM holds)."""
        return [int(v) for v in np.rint(self.likelihood * 100).astype(np.int64)]


class PredictiveModel:
    """Everything needed to score new leads exactly as the training rows were scored."""

    def __init__(
        self,
        estimator: Any,
        calibrator: Any,
        specs: Sequence[FeatureSpec],
        tiers: Sequence[float],
        method: str,
        card: dict[str, Any] | None = None,
        source: str = "store",
    ) -> None:
        self.estimator = estimator
        self.calibrator = calibrator
        self.specs = list(specs)
        #: likelihood cut-offs of very_high, high and medium (the training scores' quartiles), descending
        self.tiers = tuple(float(t) for t in tiers)
        #: "isotonic" or "sigmoid"
        self.method = method
        self.card = card or {}
        #: what the features were built from: "store" (cached leads) or "csv" (a labeled file's columns)
        self.source = source
        #: OpenMP threads for applying it (1: the daemon shares its machine; see TrainOptions.threads)
        self.threads = 1

    @property
    def feature_names(self) -> list[str]:
        return [s.name for s in self.specs]

    def matrix(self, table: FeatureTable) -> F64:
        return encode(self.specs, table)

    def raw(self, x: F64) -> F64:
        """The gradient boosting's log-odds (the estimator's own trees, walked on binned rows: see raw_predict)."""
        if not len(x):
            return np.zeros(0)
        with threadpool_limits(limits=self.threads):
            return raw_predict(self.estimator, x)

    def calibrate(self, raw: F64) -> F64:
        if self.method == "sigmoid":
            return np.asarray(self.calibrator.predict_proba(raw.reshape(-1, 1))[:, 1], dtype=np.float64)
        return np.clip(np.asarray(self.calibrator.predict(raw), dtype=np.float64), 0.0, 1.0)

    def probabilities(self, x: F64) -> F64:
        return self.calibrate(self.raw(x))

    def priority(self, likelihood: F64) -> list[str]:
        index = np.searchsorted(-np.asarray(self.tiers), -likelihood, side="right")
        return [PRIORITIES[i] for i in index.tolist()]

    def predict(self, table: FeatureTable) -> Prediction:
        p = self.probabilities(self.matrix(table))
        return Prediction(p, self.priority(p))

    def contributions(self, x: F64) -> tuple[F64, F64]:
        """(bias, per-feature contributions) to the log-odds of each row; they add up to :meth:`raw`."""
        with threadpool_limits(limits=self.threads):
            return path_contributions(self.estimator, x)

    def factors(self, x: F64, row: int, top: int = 5) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The features pushing lead ``row`` up and down most, with its values (log-odds contributions)."""
        _, contrib = self.contributions(x[row : row + 1])
        c = contrib[0]
        order = np.argsort(-np.abs(c), kind="stable")

        def item(j: int) -> dict[str, Any]:
            spec = self.specs[j]
            return {"feature": spec.name, "value": spec.label(float(x[row, j])), "contribution": round(float(c[j]), 4)}

        up = [item(j) for j in order if c[j] > 1e-9][:top]
        down = [item(j) for j in order if c[j] < -1e-9][:top]
        return up, down

    def reasons(self, x: F64, top: int = 3, max_length: int = 250) -> list[str]:
        """Per row, the ``top`` strongest factors as short text: ``+form_submissions=3; -email_type=free``."""
        if not len(x):
            return []
        _, contrib = self.contributions(x)
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :top]
        out = []
        for i, picks in enumerate(order.tolist()):
            parts = []
            for j in picks:
                c = contrib[i, j]
                if abs(c) < 1e-6:
                    continue
                spec = self.specs[j]
                parts.append(f"{'+' if c > 0 else '-'}{spec.name}={spec.label(float(x[i, j]))}")
            out.append("; ".join(parts)[:max_length])
        return out

    # -- persistence -------------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "specs": [s.as_dict() for s in self.specs],
            "tiers": list(self.tiers),
            "method": self.method,
            "source": self.source,
        }

    def to_bytes(self) -> bytes:
        """The model as a skops file (the card travels separately, as JSON in the state store)."""
        data: bytes = skops.io.dumps(
            {"estimator": self.estimator, "calibrator": self.calibrator, "meta": json.dumps(self.meta())}
        )
        return data

    @classmethod
    def from_bytes(cls, data: bytes, card: dict[str, Any] | None = None) -> PredictiveModel:
        """Load a skops model file; any type outside :data:`TRUSTED_TYPES` is refused, never loaded.

        :raises ModelError: the bytes are not a model file, or hold a type that is not trusted.
        """
        try:
            untrusted = skops.io.get_untrusted_types(file=io.BytesIO(data))
        except Exception as exc:
            raise ModelError(f"not a leadsync model file (skops could not read it: {exc})") from None
        refused = sorted(set(untrusted) - TRUSTED_TYPES)
        if refused:
            raise ModelError(f"the model file holds types that are not trusted, refused: {', '.join(refused)}")
        try:
            loaded = skops.io.load(io.BytesIO(data), trusted=list(untrusted))
            meta = json.loads(loaded["meta"])
            specs = [FeatureSpec.from_dict(s) for s in meta["specs"]]
            return cls(
                loaded["estimator"], loaded["calibrator"], specs, meta["tiers"], meta["method"], card, meta["source"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"not a leadsync model file ({type(exc).__name__}: {exc})") from None
