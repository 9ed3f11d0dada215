"""Fixtures of the Salesforce sandbox tests (a HubSpot module's own ``sandbox`` fixture overrides this one)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
from simple_salesforce.api import Salesforce

from connectors.sandbox.salesforce import (
    SalesforceSandboxServer,
    start_salesforce_sandbox,
)
from tests.conftest import SANDBOX_NOW
from tests.sandbox._salesforce import Factory, _client


@pytest.fixture
def sf_factory(salesforce_sandbox_factory: Factory) -> Factory:
    """Salesforce sandboxes anchored at ``SANDBOX_NOW`` unless a test says otherwise."""
    return functools.partial(salesforce_sandbox_factory, now=SANDBOX_NOW)


@pytest.fixture
def sandbox(sf_factory: Factory) -> SalesforceSandboxServer:
    """A small seeded org: 150 leads (some converted) and 60 contacts, seed 7."""
    return sf_factory(leads=150, contacts=60, seed=7)


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[SalesforceSandboxServer]:
    """The same org as ``sandbox``, shared by the read-only tests of this module (parametrized ones mostly)."""
    server = start_salesforce_sandbox(leads=150, contacts=60, seed=7, now=SANDBOX_NOW)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_client(shared_sandbox: SalesforceSandboxServer) -> Salesforce:
    return _client(shared_sandbox)
