"""The sandbox's companies and contact <-> company associations, over real HTTP, in HubSpot's shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from hubspot.crm.companies import Filter, FilterGroup, PublicObjectSearchRequest, SimplePublicObjectInput

from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.synthetic import generate_people
from tests.conftest import SANDBOX_NOW

Factory = Callable[..., HubSpotSandboxServer]


@pytest.fixture
def sandbox(hubspot_sandbox_factory: Factory) -> HubSpotSandboxServer:
    return hubspot_sandbox_factory(contacts=300, seed=9)


def call(server: HubSpotSandboxServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    return requests.request(method, f"{server.url}{path}", headers=headers, timeout=5, **kwargs)


def test_each_known_employer_is_a_primary_company_with_complete_firmographics(sandbox: HubSpotSandboxServer) -> None:
    people = generate_people(300, seed=9, now=SANDBOX_NOW)
    portal = sandbox.portal
    ids = portal.contact_ids()
    for person, contact_id in zip(people, ids, strict=True):
        company_id = portal.primary_company(contact_id)
        assert (company_id is None) == (person.account is None)
        if person.account is not None and company_id is not None:
            company = portal.company(company_id) or {}
            assert company["domain"] == person.account.domain and company["industry"] == person.account.industry
    blank = [i for i in ids if portal.primary_company(i) and not (portal.contact(i) or {}).get("industry")]
    assert blank  # contacts whose own record has no industry, whose company has one
    assert all((portal.company(portal.primary_company(i) or "") or {}).get("industry") for i in blank)


def test_associations_mark_the_primary_company_and_batch_reads_page_like_hubspot(sandbox: HubSpotSandboxServer) -> None:
    ids = sandbox.portal.contact_ids()
    body = {"inputs": [{"id": i} for i in ids]}
    answer = call(sandbox, "POST", "/crm/v4/associations/contacts/companies/batch/read", json=body)
    assert answer.status_code == 207  # contacts without a company are error entries
    results = answer.json()["results"]
    two = [r for r in results if len(r["to"]) > 1]
    assert two  # some contacts have a second, non-primary company
    for result in results:
        primary = [t for t in result["to"] if any(k["typeId"] == 1 for k in t["associationTypes"])]
        assert len(primary) == 1 and str(primary[0]["toObjectId"]) == sandbox.portal.primary_company(
            result["from"]["id"]
        )
        assert all(any(k["typeId"] == 279 for k in t["associationTypes"]) for t in result["to"])
    company = str(results[0]["to"][0]["toObjectId"])
    back = call(sandbox, "GET", f"/crm/v4/objects/companies/{company}/associations/contacts").json()["results"]
    assert {str(r["toObjectId"]) for r in back} >= set(sandbox.portal.company_contacts(company))
    too_many = call(sandbox, "POST", "/crm/v3/objects/companies/batch/read", json={"inputs": [{"id": "1"}] * 101})
    assert too_many.status_code == 400


def test_company_search_filters_sorts_and_sees_an_edit(sandbox: HubSpotSandboxServer) -> None:
    client = sandbox.client()
    company = sandbox.portal.company_ids()[3]
    before = sandbox.portal.company(company) or {}
    updated = client.crm.companies.basic_api.update(
        company, SimplePublicObjectInput(properties={"industry": "Banking"})
    )
    assert updated.properties["industry"] == "Banking"
    assert updated.properties["hs_lastmodifieddate"] > before["hs_lastmodifieddate"]
    since = Filter(property_name="hs_lastmodifieddate", operator="GTE", value=updated.properties["hs_lastmodifieddate"])
    found = client.crm.companies.search_api.do_search(
        PublicObjectSearchRequest(filter_groups=[FilterGroup(filters=[since])], properties=["industry"], limit=200)
    )
    assert [c.id for c in found.results] == [company] and found.results[0].properties["industry"] == "Banking"
    big = Filter(property_name="numberofemployees", operator="GTE", value="1000")
    by_size = client.crm.companies.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[big])],
            sorts=[{"propertyName": "numberofemployees", "direction": "DESCENDING"}],
            properties=["numberofemployees"],
            limit=50,
        )
    )
    sizes = [float(c.properties["numberofemployees"]) for c in by_size.results]
    assert sizes and all(s >= 1000 for s in sizes) and sizes == sorted(sizes, reverse=True)
    unknown = call(
        sandbox,
        "POST",
        "/crm/v3/objects/companies/search",
        json={"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]},
    )
    assert unknown.status_code == 400
    stats = sandbox.stats()["by_endpoint"]
    assert stats["POST /crm/v3/objects/companies/search"] == 3
    assert stats["PATCH /crm/v3/objects/companies/{companyId}"] == 1
