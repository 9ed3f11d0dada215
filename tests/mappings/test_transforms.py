"""Transforms declared in the mapping YAML: precedence, enum maps, defaults, ISO countries, and the version."""

from __future__ import annotations

import pytest

from mappings import MappingError, load_mapping


def test_sources_map_compute_and_default_apply_in_order() -> None:
    mapping = load_mapping(
        "hubspot",
        {
            "fields": {
                "email": {"property": ["work_email", "email"]},
                "industry": {"property": "industry", "map": {"Computer Software": "software", "SaaS": "software"}},
                "country": {"property": ["country", "ip_country"], "compute": "country_code"},
                "tier": {"property": "tier", "map": {"Gold": 1}, "other": 3, "default": 9, "type": "int"},
            }
        },
    )
    lead = mapping.to_lead(
        "1",
        {
            "work_email": " ",
            "email": "a@acme.com",
            "industry": "computer  SOFTWARE",
            "ip_country": "Russia",
            "tier": "",
        },
    )
    assert lead.email == "a@acme.com"  # the blank work email gives way to the next source
    assert lead.industry == "software"  # keys compared regardless of case and spacing
    assert lead.country == "RU"
    assert lead.attributes["tier"] == 9
    other = mapping.to_lead(
        "2", {"work_email": "w@acme.com", "email": "p@gmail.com", "industry": "Retail", "tier": "x"}
    )
    assert other.email == "w@acme.com"
    assert other.industry == "Retail"  # not in the map: kept as it is
    assert other.attributes["tier"] == 3
    assert mapping.to_lead("3", {"country": "nowhere"}).country is None
    assert {"work_email", "email", "ip_country"} <= set(mapping.properties)


def test_the_mapping_version_follows_meaning_not_spelling() -> None:
    plain = load_mapping("hubspot")
    same = {"property": "industry", "company": "company.industry", "prefer": "contact"}
    assert load_mapping("hubspot", {"fields": {"industry": same}}).version == plain.version
    mapped = load_mapping("hubspot", {"fields": {"industry": {**same, "map": {"x": "y"}}}})
    assert mapped.version != plain.version
    # without its company-level source the attribute reads something else: another version
    assert load_mapping("hubspot", {"fields": {"industry": "industry"}}).version != plain.version
    preferred = load_mapping("hubspot", {"fields": {"industry": {**same, "prefer": "company"}}})
    assert preferred.version != plain.version
    assert load_mapping("hubspot", {"fields": {"job_title": "hs_title"}}).version != plain.version


def test_an_unknown_compute_is_refused_with_its_place() -> None:
    with pytest.raises(MappingError) as caught:
        load_mapping("hubspot", {"fields": {"country": {"property": "country", "compute": "country_flag"}}})
    assert "fields.country.compute" in caught.value.where


def test_the_mapping_joins_the_rules_version() -> None:
    from leadsync.app import load_scoring

    base = load_scoring(None, load_mapping("hubspot"))
    changed = load_scoring(
        None, load_mapping("hubspot", {"fields": {"country": {"property": "country", "compute": "country_code"}}})
    )
    assert base.rules.version == changed.rules.version  # the same rules...
    assert base.version != changed.version  # ...read through another mapping: every cached lead is rescored
