"""The HubSpot portal: the data store with every API family's operations on it, as one object."""

from __future__ import annotations

from connectors.sandbox.hubspot.companies import CompaniesPortal
from connectors.sandbox.hubspot.objects import ObjectsPortal
from connectors.sandbox.hubspot.search import SearchPortal
from connectors.sandbox.hubspot.workflows import WorkflowsPortal

__all__ = ["HubSpotPortal"]


class HubSpotPortal(ObjectsPortal, SearchPortal, CompaniesPortal, WorkflowsPortal):
    """The in-memory HubSpot account: contacts with indexes, the property schema, deals, companies, enrollments, a
    clock.

    Thread-safe: every public method takes :attr:`lock` (re-entrant; the HTTP app holds it around each
    handler). Raises :class:`PortalError` with HubSpot's status/category/message for refused requests. The
    state lives in :class:`~connectors.sandbox.hubspot.store.PortalStore`; each base adds one API family.
    """
