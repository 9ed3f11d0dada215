"""The Salesforce org: the data store with every API family's operations on it, as one object."""

from __future__ import annotations

from connectors.sandbox.salesforce.bulk import BulkOrg
from connectors.sandbox.salesforce.fields import FieldsOrg
from connectors.sandbox.salesforce.flows import FlowsOrg
from connectors.sandbox.salesforce.records import RecordsOrg
from connectors.sandbox.salesforce.seeding import SeedingOrg

__all__ = ["SalesforceOrg"]


class SalesforceOrg(SeedingOrg, RecordsOrg, FieldsOrg, BulkOrg, FlowsOrg):
    """The in-memory org. Thread-safe: public methods take :attr:`lock` (the HTTP app holds it too).

    The state lives in :class:`~connectors.sandbox.salesforce.store.OrgStore`; each base adds one API family.
    """
