"""CRM connectors behind one small interface (base.py): HubSpot and Salesforce through their official SDKs,
with rate limits, retries and response checks; may import neither scoring, sync, mappings nor leadsync."""
