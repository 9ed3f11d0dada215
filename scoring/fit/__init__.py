"""Points fitted from outcomes (``leadsync rules fit``): binning, L1 logistic regression chosen by
cross-validation, integer scorecard tables. Pure: arrays in, tables out, no I/O.

Imports numpy, scikit-learn and ``scoring.evaluation`` only (the rest of ``scoring`` never imports this
package, so scoring a lead does not load scikit-learn).
"""

from __future__ import annotations

from .binning import BinOptions, Bins, Feature, bin_feature, categorical_feature, numeric_feature
from .scorecard import FitOptions, Scorecard, Table, column_auc, fit_scorecard

__all__ = [
    "BinOptions",
    "Bins",
    "Feature",
    "FitOptions",
    "Scorecard",
    "Table",
    "bin_feature",
    "categorical_feature",
    "column_auc",
    "fit_scorecard",
    "numeric_feature",
]
