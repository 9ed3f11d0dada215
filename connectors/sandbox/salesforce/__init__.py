"""The Salesforce sandbox: an org behind a real HTTPS server, one module per API family (see ``app``).

May import ``connectors.sandbox._server`` and ``connectors.sandbox.synthetic``, nothing outside connectors/sandbox.
"""

from connectors.sandbox.salesforce._http import API_VERSIONS, DEFAULT_DAILY_LIMIT
from connectors.sandbox.salesforce.app import (
    CAFileAdapter,
    SalesforceSandbox,
    SalesforceSandboxServer,
    ca_session,
    serve_salesforce_sandbox,
    start_salesforce_sandbox,
)
from connectors.sandbox.salesforce.org import SalesforceOrg
from connectors.sandbox.salesforce.schema import KEY_PREFIXES
from connectors.sandbox.salesforce.store import COLLECTION_MAX_RECORDS, SalesforceError

__all__ = [
    "API_VERSIONS",
    "COLLECTION_MAX_RECORDS",
    "DEFAULT_DAILY_LIMIT",
    "KEY_PREFIXES",
    "CAFileAdapter",
    "SalesforceError",
    "SalesforceOrg",
    "SalesforceSandbox",
    "SalesforceSandboxServer",
    "ca_session",
    "serve_salesforce_sandbox",
    "start_salesforce_sandbox",
]
