"""Model tests: the shared synthetic labeled file, and the store on both backends (``tests/state``'s fixture)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.model.synthetic import labeled_rows
from tests.state.conftest import store  # noqa: F401 (a migrated store on SQLite and PostgreSQL)


@pytest.fixture(scope="session")
def rows() -> list[dict[str, Any]]:
    """3,000 labeled synthetic leads (deterministic)."""
    return labeled_rows(3000, seed=5)
