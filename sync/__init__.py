"""The sync pipeline (pull -> map -> score -> diff -> write back -> trigger), the state store, the daemon,
health and metrics; may import connectors, mappings and scoring, never leadsync."""
