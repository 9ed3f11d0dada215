"""Local emulators of the HubSpot and Salesforce REST APIs (real HTTP servers) and the synthetic portal;
may import connectors.base and the web stack only (never scoring, sync, mappings or leadsync)."""
