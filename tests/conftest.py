"""Shared fixtures. Sandbox fixtures start real HTTP servers on free ports, so tests stay parallel-safe."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.sandbox.hubspot import HubSpotSandboxServer, start_hubspot_sandbox
from tests._pg import pg_url  # noqa: F401 (fixture shared by every test package)

#: fixed anchor for synthetic data, so that fixture portals are identical on every run
SANDBOX_NOW = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def hubspot_sandbox_factory() -> Iterator[Callable[..., HubSpotSandboxServer]]:
    """Start HubSpot sandboxes with any options of ``start_hubspot_sandbox``; all are stopped afterwards."""
    started: list[HubSpotSandboxServer] = []

    def start(**options: Any) -> HubSpotSandboxServer:
        options.setdefault("now", SANDBOX_NOW)
        server = start_hubspot_sandbox(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def hubspot_sandbox(hubspot_sandbox_factory: Callable[..., HubSpotSandboxServer]) -> HubSpotSandboxServer:
    """A small seeded HubSpot sandbox (120 contacts, seed 7), no rate limits, no faults."""
    return hubspot_sandbox_factory(contacts=120, seed=7)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.postgres, id="postgresql")])
def store_url(request: pytest.FixtureRequest) -> str:
    """An empty state database of each backend (not migrated): one suite, both backends."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url
