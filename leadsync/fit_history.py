"""``leadsync rules fit --from-history``: the fit on the state store's leads, point in time.

The labeled rows come from :mod:`leadsync.training_data` (cache attributes and activity aggregates taken
before each lead's outcome moment, as :mod:`leadsync.evaluate_store` defines it); until that module is in
this build, the option says so and exits 2 rather than fitting on today's values, which would leak.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from leadsync.fit_cmd import FitInputError, FitResult, FitSettings


def run_history_fit(settings: FitSettings, config: Path | None, *, against: Path | None = None) -> FitResult:
    if importlib.util.find_spec("leadsync.training_data") is None:
        raise FitInputError(
            "--from-history needs the point-in-time training rows of the state store (leadsync.training_data), "
            "which this build does not have yet; export a labeled CSV and use --input CSV --label COL"
        )
    raise FitInputError("--from-history: not wired to leadsync.training_data yet; use --input CSV --label COL")
