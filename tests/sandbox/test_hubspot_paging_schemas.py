"""What other HubSpot clients rely on: ``paging.next.link`` and the properties of every standard object type.

Clients such as dlt's HubSpot source follow ``paging.next.link`` instead of building the next URL, and
discover each object type's properties through ``/crm/v3/properties/{objectType}`` before reading it. The
expected values come from the portal's own data and from the SDK's models (the vendor reference named in
``../shared/specs/SOURCES.md``), never from the sandbox's answers.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hubspot.crm.properties import PropertyCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException

from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.hubspot.object_schemas import STANDARD_OBJECT_TYPES

Factory = Callable[..., HubSpotSandboxServer]


def _get(sandbox: HubSpotSandboxServer, url: str) -> dict:  # type: ignore[type-arg]
    response = requests.get(url, headers={"Authorization": f"Bearer {sandbox.token}"}, timeout=10)
    response.raise_for_status()
    body: dict = response.json()  # type: ignore[type-arg]
    return body


def test_following_list_links_reads_every_contact_once_with_the_properties_asked_for(
    hubspot_sandbox_factory: Factory,
) -> None:
    sandbox = hubspot_sandbox_factory(contacts=230, seed=3)
    url: str | None = f"{sandbox.url}/crm/v3/objects/contacts?limit=100&properties=email,jobtitle&archived=false"
    seen: list[str] = []
    pages = 0
    while url is not None:
        body = _get(sandbox, url)
        pages += 1
        for record in body["results"]:
            seen.append(record["id"])
            assert {"email", "jobtitle"} <= set(record["properties"])
        nxt = (body.get("paging") or {}).get("next")
        if nxt is not None:
            query = parse_qs(urlsplit(nxt["link"]).query)
            assert query["after"] == [nxt["after"]] and query["limit"] == ["100"]
            assert query["properties"] == ["email,jobtitle"] and query["archived"] == ["false"]
            assert nxt["link"].startswith(sandbox.url)
        url = nxt["link"] if nxt else None
    assert pages == 3
    assert seen == sandbox.portal.contact_ids()


def test_search_answers_carry_a_next_link_with_the_cursor(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=50, seed=4)
    body = {"limit": 20, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]}
    page = sandbox.client().crm.contacts.search_api.do_search(public_object_search_request=body)
    assert page.total == 50 and len(page.results) == 20
    assert page.paging.next.after == "20"
    link = urlsplit(page.paging.next.link)
    assert link.path == "/crm/v3/objects/contacts/search" and parse_qs(link.query)["after"] == ["20"]


@pytest.mark.parametrize("object_type", sorted(STANDARD_OBJECT_TYPES))
def test_every_standard_object_type_has_its_properties_by_name_singular_and_type_id(
    hubspot_sandbox: HubSpotSandboxServer, object_type: str
) -> None:
    singular, type_id = STANDARD_OBJECT_TYPES[object_type]
    core = hubspot_sandbox.client().crm.properties.core_api
    names = [{p.name for p in core.get_all(object_type=alias).results} for alias in (object_type, singular, type_id)]
    assert names[0] == names[1] == names[2]
    assert "hs_object_id" in names[0]
    for prop in core.get_all(object_type=object_type).results:  # the SDK's Property model: these are required
        assert prop.name and prop.label and prop.type and prop.field_type and prop.group_name
        if prop.type == "enumeration":
            assert prop.options, prop.name
    assert core.get_by_name(object_type=type_id, property_name="hs_object_id").type == "number"


def test_each_types_own_properties_and_a_property_created_on_one_type_only(
    hubspot_sandbox: HubSpotSandboxServer,
) -> None:
    core = hubspot_sandbox.client().crm.properties.core_api
    deals = {p.name: p for p in core.get_all(object_type="deals").results}
    assert {"dealname", "dealstage", "pipeline", "amount", "closedate", "hs_is_closed_won"} <= set(deals)
    assert "closedwon" in {o.value for o in deals["dealstage"].options}
    calls = {p.name for p in core.get_all(object_type="calls").results}
    assert {"hs_timestamp", "hs_call_disposition", "hs_call_duration"} <= calls and "dealname" not in calls
    assert "email" in {p.name for p in core.get_all(object_type="contacts").results}
    groups = core.get_all(object_type="companies").results
    group = next(g.name for g in hubspot_sandbox.client().crm.properties.groups_api.get_all("companies").results)
    assert group == "companyinformation" and groups
    create = PropertyCreate(name="tier", label="Tier", type="string", field_type="text", group_name=group)
    core.create(object_type="companies", property_create=create)
    assert "tier" in {p.name for p in core.get_all(object_type="0-2").results}
    assert "tier" not in {p.name for p in core.get_all(object_type="contacts").results}
    with pytest.raises(PropertiesApiException) as conflict:
        core.create(object_type="company", property_create=create)
    assert conflict.value.status == 409
    with pytest.raises(PropertiesApiException) as unknown:
        core.get_all(object_type="spaceships")
    assert unknown.value.status == 400
