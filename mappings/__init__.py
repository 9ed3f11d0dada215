"""CRM field -> canonical lead attribute: loading, validation and the shipped default mappings;
may import scoring (for the canonical model) only."""

from mappings.errors import MappingError
from mappings.mapping import FieldSpec, LeadMapping, default_mapping_data, load_mapping, to_activities

__all__ = ["FieldSpec", "LeadMapping", "MappingError", "default_mapping_data", "load_mapping", "to_activities"]
