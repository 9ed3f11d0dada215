"""The HubSpot sandbox: a portal behind a real HTTP server, one module per API family (see ``app``).

May import ``connectors.sandbox._server`` and ``connectors.sandbox.synthetic``, nothing outside connectors/sandbox.
"""

from connectors.sandbox.hubspot._base import (
    ALWAYS_RETURNED_PROPERTIES,
    BATCH_MAX_INPUTS,
    DEFAULT_PROPERTIES,
    LIFECYCLE_ORDER,
    MAX_VALUE_LENGTH,
    SEARCH_RESULT_CAP,
    PortalError,
    SearchLimits,
)
from connectors.sandbox.hubspot.activity_types import (
    ASSOCIATION_BATCH_MAX_INPUTS,
    ASSOCIATION_PAGE_SIZE,
    CALL_DISPOSITIONS,
    COUNTER_KINDS,
    ENGAGEMENT_TYPES,
    NO_ASSOCIATIONS_SUBCATEGORY,
    EngagementType,
    engagement_type,
    seeded_engagements,
)
from connectors.sandbox.hubspot.app import (
    HubSpotSandbox,
    HubSpotSandboxServer,
    serve_hubspot_sandbox,
    start_hubspot_sandbox,
)
from connectors.sandbox.hubspot.portal import HubSpotPortal
from connectors.sandbox.hubspot.properties import STANDARD_PROPERTIES
from connectors.sandbox.hubspot.store import person_properties

__all__ = [
    "ALWAYS_RETURNED_PROPERTIES",
    "ASSOCIATION_BATCH_MAX_INPUTS",
    "ASSOCIATION_PAGE_SIZE",
    "BATCH_MAX_INPUTS",
    "CALL_DISPOSITIONS",
    "COUNTER_KINDS",
    "DEFAULT_PROPERTIES",
    "ENGAGEMENT_TYPES",
    "LIFECYCLE_ORDER",
    "MAX_VALUE_LENGTH",
    "NO_ASSOCIATIONS_SUBCATEGORY",
    "SEARCH_RESULT_CAP",
    "STANDARD_PROPERTIES",
    "EngagementType",
    "HubSpotPortal",
    "HubSpotSandbox",
    "HubSpotSandboxServer",
    "PortalError",
    "SearchLimits",
    "engagement_type",
    "person_properties",
    "seeded_engagements",
    "serve_hubspot_sandbox",
    "start_hubspot_sandbox",
]
