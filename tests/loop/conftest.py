"""State-store tests run on SQLite and on PostgreSQL through the shared ``store_url`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.state import StateStore


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    """A migrated store on each backend."""
    s = StateStore.open(store_url)
    try:
        yield s
    finally:
        s.close()
