"""Default mappings, overrides and value conversion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mappings import MappingError, load_mapping


def test_default_hubspot_mapping_reads_standard_properties() -> None:
    mapping = load_mapping("hubspot")
    lead = mapping.to_lead(
        "101",
        {
            "email": "ana@acme.io",
            "jobtitle": "VP Sales",
            "numemployees": "100-500",
            "annualrevenue": "2500000.5",
            "hs_email_optout": "true",
            "hs_email_hard_bounce_reason": "",
            "createdate": "2025-03-01T10:00:00.000Z",
            "hs_analytics_num_page_views": "17",
            "hs_analytics_last_visit_timestamp": "1735689600000",
        },
    )
    assert lead.id == "101" and lead.object_type == "contact"
    assert lead.email == "ana@acme.io" and lead.job_title == "VP Sales"
    assert lead.employees == 100 and lead.annual_revenue == 2500000.5
    assert lead.opted_out is True and lead.bounced is False
    assert lead.created_at == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert lead.get("page_views") == 17
    assert lead.get("last_visit_at") == datetime(2025, 1, 1, tzinfo=UTC)


def test_bad_crm_value_is_reported_not_fatal() -> None:
    seen: list[tuple[str, str, Any, str]] = []
    lead = load_mapping("hubspot").to_lead(
        "7", {"email": "a@b.co", "hs_analytics_num_page_views": "lots"}, lambda *a: seen.append(a)
    )
    assert lead.get("page_views") is None
    assert seen and seen[0][:3] == ("7", "hs_analytics_num_page_views", "lots")
    assert "expected a whole number for page_views" in seen[0][3]


def test_override_replaces_and_removes_fields() -> None:
    mapping = load_mapping(
        "hubspot",
        {"fields": {"job_title": "hs_persona", "seats": {"property": "seats", "type": "int"}, "country": None}},
    )
    assert mapping.fields["job_title"].property == "hs_persona"
    assert "country" not in mapping.fields
    lead = mapping.to_lead("1", {"email": "x@y.z", "hs_persona": "CTO", "seats": "12"})
    assert lead.job_title == "CTO" and lead.get("seats") == 12


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ({"fields": {"seats": {"property": "seats", "type": "integer"}}}, "mapping.fields.seats.type"),
        ({"fields": {"email": None}}, "mapping.fields.email"),
        ({"feilds": {}}, "mapping.feilds"),
    ],
)
def test_bad_override_names_the_key(override: dict[str, Any], where: str) -> None:
    with pytest.raises(MappingError) as info:
        load_mapping("hubspot", override)
    assert str(info.value).startswith(where)


def test_validate_against_schema_lists_missing_and_mistyped() -> None:
    mapping = load_mapping("hubspot", {"fields": {"seats": {"property": "seats", "type": "int"}}})
    schema = {spec.property: "string" for spec in mapping.fields.values()}
    schema.pop("seats")
    schema["hs_email_optout"] = "datetime"
    problems = mapping.validate_against(schema)
    assert any("'seats' does not exist" in p for p in problems)
    assert any("hs_email_optout" in p and "bool" in p for p in problems)


def test_salesforce_mapping_picks_fields_by_object_type() -> None:
    mapping = load_mapping("salesforce", {"objects": {"contact": {"country": "OtherCountry"}}})
    props = {"Email": "a@acme.io", "Industry": "Banking", "Account.Industry": "Retail", "Status": "Working - Contacted"}
    lead = mapping.to_lead("00Q1", props | {"Country": "France"}, object_type="lead")
    contact = mapping.to_lead("0031", props | {"OtherCountry": "Spain"}, object_type="contact")
    assert (lead.object_type, lead.industry, lead.lifecycle_stage, lead.country) == (
        "lead",
        "Banking",
        "Working - Contacted",
        "France",
    )
    assert (contact.object_type, contact.industry, contact.lifecycle_stage, contact.country) == (
        "contact",
        "Retail",
        None,
        "Spain",
    )
    assert {"Account.Industry", "Industry", "OtherCountry"} <= set(mapping.properties)
    assert "Status" not in mapping.properties_for("contact")
    # the one-object API keeps working
    assert load_mapping("hubspot").to_lead("1", {"email": "a@b.co"}).object_type == "contact"
