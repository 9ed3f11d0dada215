"""Shared fixtures. Sandbox fixtures start real HTTP servers on free ports, so tests stay parallel-safe."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from connectors.sandbox.hubspot import HubSpotSandboxServer, start_hubspot_sandbox
from connectors.sandbox.salesforce import SalesforceSandboxServer, start_salesforce_sandbox
from tests._pg import pg_url  # noqa: F401 (fixture shared by every test package)

T = TypeVar("T")

#: fixed anchor for synthetic data, so that fixture portals are identical on every run
SANDBOX_NOW = datetime(2025, 3, 1, tzinfo=UTC)


def _started(start: Callable[..., T], **defaults: Any) -> Iterator[Callable[..., T]]:
    """A factory fixture's body: start servers with ``defaults`` overridable per call; stop all afterwards."""
    started: list[Any] = []

    def run(**options: Any) -> T:
        server = start(**(defaults | options))
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


@pytest.fixture
def hubspot_sandbox_factory() -> Iterator[Callable[..., HubSpotSandboxServer]]:
    """Start HubSpot sandboxes with any options of ``start_hubspot_sandbox``; all are stopped afterwards."""
    yield from _started(start_hubspot_sandbox, now=SANDBOX_NOW)


@pytest.fixture
def salesforce_sandbox_factory() -> Iterator[Callable[..., SalesforceSandboxServer]]:
    """Start Salesforce sandboxes with any options of ``start_salesforce_sandbox``; all are stopped afterwards."""
    yield from _started(start_salesforce_sandbox)


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
