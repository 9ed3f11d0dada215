"""The HubSpot sandbox, driven through the official ``hubspot-api-client`` over real HTTP.

Expected values are computed here from the portal's stored data with plain Python, never copied from the
sandbox's answers, so a wrong filter, sort or paging rule fails a test.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import urllib3
from hubspot import Client
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    BatchResponseSimplePublicObject,
    BatchResponseSimplePublicObjectWithErrors,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException, NotFoundException, ServiceException, UnauthorizedException
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException

from connectors.sandbox._server import RateLimit, parse_rate_limit
from connectors.sandbox.hubspot import (
    MAX_VALUE_LENGTH,
    SEARCH_RESULT_CAP,
    HubSpotPortal,
    HubSpotSandboxServer,
)
from connectors.sandbox.synthetic import EVENT_KINDS, SENIORITIES, generate_people
from tests.conftest import SANDBOX_NOW

Factory = Callable[..., HubSpotSandboxServer]
#: the SDK's default urllib3 retry re-sends GETs after drops and honours Retry-After on 429/503
NO_RETRY = urllib3.Retry(total=0, status=0, connect=0, read=0, redirect=0)
Row = Mapping[str, str]


def _all_rows(sandbox: HubSpotSandboxServer) -> dict[str, Row]:
    portal = sandbox.portal
    rows = {i: portal.contact(i) for i in portal.contact_ids()}
    return {i: row for i, row in rows.items() if row is not None}


def _search_all(client: Client, request: dict[str, Any], page: int = 200) -> list[str]:
    ids: list[str] = []
    after: str | None = None
    while True:
        body = PublicObjectSearchRequest(**request, limit=page, after=after)
        result = client.crm.contacts.search_api.do_search(public_object_search_request=body)
        ids.extend(r.id for r in result.results)
        if result.paging is None:
            return ids
        after = result.paging.next.after


def _ms(text: str | None) -> int | None:
    return int(datetime.fromisoformat(text).timestamp() * 1000) if text else None


def _num(row: Row, name: str) -> float | None:
    value = row.get(name)
    return float(value) if value else None


def _error(exc: ApiException | PropertiesApiException) -> dict[str, Any]:
    body = exc.body.decode() if isinstance(exc.body, bytes) else exc.body
    parsed: dict[str, Any] = json.loads(body)
    return parsed


# auth and stats ------------------------------------------------------------------------------------------


def test_wrong_or_missing_token_answers_401_with_hubspot_body(hubspot_sandbox: HubSpotSandboxServer) -> None:
    bad = hubspot_sandbox.client(token="not-the-token")
    with pytest.raises(UnauthorizedException) as caught:
        bad.crm.contacts.basic_api.get_page(limit=1)
    body = _error(caught.value)
    assert caught.value.status == 401
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["correlationId"]
    assert requests.get(f"{hubspot_sandbox.url}/crm/v3/objects/contacts", timeout=5).status_code == 401
    # the right token works, and the internal stats endpoint needs none
    assert hubspot_sandbox.client().crm.contacts.basic_api.get_page(limit=1).results
    assert requests.get(f"{hubspot_sandbox.url}/__sandbox/stats", timeout=5).status_code == 200


def test_expired_token_answers_expired_authentication(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    client.crm.contacts.basic_api.get_page(limit=1)
    hubspot_sandbox.sandbox.expire_token(hubspot_sandbox.token)
    with pytest.raises(UnauthorizedException) as caught:
        client.crm.contacts.basic_api.get_page(limit=1)
    assert _error(caught.value)["category"] == "EXPIRED_AUTHENTICATION"


def test_stats_count_requests_by_endpoint_template(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    first = hubspot_sandbox.portal.contact_ids()[0]
    client.crm.contacts.basic_api.get_page(limit=5)
    client.crm.contacts.basic_api.get_page(limit=5)
    client.crm.contacts.basic_api.get_by_id(first)
    client.crm.contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(limit=1))
    with pytest.raises(UnauthorizedException):
        hubspot_sandbox.client(token="nope").crm.contacts.basic_api.get_by_id(first)

    stats = requests.get(f"{hubspot_sandbox.url}/__sandbox/stats", timeout=5).json()
    assert set(stats) >= {"requests", "by_endpoint", "throttled", "faults"}
    assert stats["requests"] == 5  # the 401 counts; the stats calls do not
    assert stats["by_endpoint"] == {
        "GET /crm/v3/objects/contacts": 2,
        "GET /crm/v3/objects/contacts/{contactId}": 2,
        "POST /crm/v3/objects/contacts/search": 1,
    }
    assert stats["throttled"] == 0
    assert stats["faults"] == 0

    assert requests.post(f"{hubspot_sandbox.url}/__sandbox/reset-stats", timeout=5).status_code == 204
    assert requests.get(f"{hubspot_sandbox.url}/__sandbox/stats", timeout=5).json()["requests"] == 0


# reading -------------------------------------------------------------------------------------------------


def test_list_paging_covers_every_contact_exactly_once(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=250, seed=11)
    client = sandbox.client()
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = client.crm.contacts.basic_api.get_page(limit=100, after=after, properties=["email", "jobtitle"])
        pages += 1
        for record in page.results:
            seen.append(record.id)
            assert set(record.properties) == {"email", "jobtitle", "createdate", "hs_object_id", "lastmodifieddate"}
            assert record.properties["hs_object_id"] == record.id
        if page.paging is None:
            break
        after = page.paging.next.after
    assert pages == 3
    assert len(seen) == len(set(seen)) == 250
    assert seen == sorted(seen, key=int)
    assert seen == sandbox.portal.contact_ids()


def test_get_by_id_and_by_email_with_properties(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    rows = _all_rows(hubspot_sandbox)
    contact_id, row = next((i, r) for i, r in rows.items() if r.get("email") and r.get("jobtitle"))
    record = client.crm.contacts.basic_api.get_by_id(contact_id, properties=["jobtitle", "lifecyclestage"])
    assert record.properties["jobtitle"] == row["jobtitle"]
    assert record.properties["lifecyclestage"] == row.get("lifecyclestage")
    by_email = client.crm.contacts.basic_api.get_by_id(row["email"].upper(), id_property="email")
    assert by_email.id == contact_id
    assert by_email.properties["email"] == row["email"]  # the default property set
    with pytest.raises(NotFoundException):
        client.crm.contacts.basic_api.get_by_id("999999999")


def test_created_contact_has_ids_and_timestamps_and_archive_hides_it(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    created = client.crm.contacts.basic_api.create(
        simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
            properties={"email": "new.person@example.org", "firstname": "New", "annualrevenue": "1200000"}
        )
    )
    assert int(created.id) > max(int(i) for i in hubspot_sandbox.portal.contact_ids() if i != created.id)
    assert created.properties["hs_object_id"] == created.id
    assert created.properties["createdate"].endswith("Z") and len(created.properties["createdate"]) == 24
    with pytest.raises(ApiException) as conflict:
        client.crm.contacts.basic_api.create(
            simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
                properties={"email": "NEW.person@example.org"}
            )
        )
    assert conflict.value.status == 409
    assert created.id in _error(conflict.value)["message"]

    search = PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "email", "operator": "EQ", "value": "new.person@example.org"}]}]
    )
    assert [r.id for r in client.crm.contacts.search_api.do_search(public_object_search_request=search).results] == [
        created.id
    ]
    client.crm.contacts.basic_api.archive(created.id)
    assert client.crm.contacts.search_api.do_search(public_object_search_request=search).total == 0
    assert created.id not in hubspot_sandbox.portal.contact_ids()
    archived = client.crm.contacts.basic_api.get_by_id(created.id, archived=True)
    assert archived.archived is True
    with pytest.raises(NotFoundException):
        client.crm.contacts.basic_api.get_by_id(created.id)


# search --------------------------------------------------------------------------------------------------

_CUTOFF = "2024-12-01T00:00:00.000Z"
_CUTOFF_MS = _ms(_CUTOFF)

SEARCH_CASES: list[tuple[str, dict[str, Any], Callable[[Row], bool]]] = [
    (
        "and-within-or-across",
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "hs_analytics_num_page_views", "operator": "GTE", "value": "5"},
                        {
                            "propertyName": "lifecyclestage",
                            "operator": "IN",
                            "values": ["lead", "marketingqualifiedlead"],
                        },
                    ]
                },
                {"filters": [{"propertyName": "country", "operator": "EQ", "value": "germany"}]},
            ]
        },
        lambda r: (
            (
                (_num(r, "hs_analytics_num_page_views") or 0) >= 5
                and r.get("lifecyclestage") in ("lead", "marketingqualifiedlead")
            )
            or r.get("country") == "Germany"
        ),
    ),
    (
        "datetime-gte-epoch-ms",
        {"filterGroups": [{"filters": [{"propertyName": "createdate", "operator": "GTE", "value": str(_CUTOFF_MS)}]}]},
        lambda r: (_ms(r.get("createdate")) or 0) >= (_CUTOFF_MS or 0),
    ),
    (
        "datetime-lt-iso",
        {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "LT", "value": _CUTOFF}]}]},
        lambda r: (_ms(r.get("lastmodifieddate")) or 0) < (_CUTOFF_MS or 0),
    ),
    (
        "between-numbers",
        {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "hs_email_open",
                            "operator": "BETWEEN",
                            "value": "2",
                            "highValue": "10",
                        }
                    ]
                }
            ]
        },
        lambda r: 2 <= (_num(r, "hs_email_open") or -1) <= 10,
    ),
    (
        "contains-token-wildcard-and-neq",
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@gmail.com"},
                        {"propertyName": "lifecyclestage", "operator": "NEQ", "value": "subscriber"},
                    ]
                }
            ]
        },
        lambda r: r.get("email", "").lower().endswith("@gmail.com") and r.get("lifecyclestage") != "subscriber",
    ),
    (
        "has-and-not-has-property",
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "hs_analytics_last_visit_timestamp", "operator": "HAS_PROPERTY"},
                        {"propertyName": "annualrevenue", "operator": "NOT_HAS_PROPERTY"},
                    ]
                }
            ]
        },
        lambda r: bool(r.get("hs_analytics_last_visit_timestamp")) and not r.get("annualrevenue"),
    ),
    (
        "indexed-ranges-or-groups",
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": _CUTOFF},
                        {"propertyName": "hs_analytics_num_visits", "operator": "LTE", "value": "3"},
                    ]
                },
                {
                    "filters": [
                        {"propertyName": "hs_object_id", "operator": "BETWEEN", "value": "150", "highValue": "170"}
                    ]
                },
            ]
        },
        lambda r: (
            (
                (_ms(r.get("hs_lastmodifieddate")) or 0) > (_CUTOFF_MS or 0)
                and (_num(r, "hs_analytics_num_visits") or 0) <= 3
            )
            or 150 <= int(r["hs_object_id"]) <= 170
        ),
    ),
    (
        "not-in-and-bool",
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "numemployees", "operator": "NOT_IN", "values": ["1-5", "5-25"]},
                        {"propertyName": "hs_email_optout", "operator": "EQ", "value": "false"},
                    ]
                }
            ]
        },
        lambda r: r.get("numemployees") not in ("1-5", "5-25") and r.get("hs_email_optout") == "false",
    ),
]


@pytest.mark.parametrize(("request_body", "expected"), [c[1:] for c in SEARCH_CASES], ids=[c[0] for c in SEARCH_CASES])
def test_search_filters_match_a_plain_python_reference(
    hubspot_sandbox: HubSpotSandboxServer, request_body: dict[str, Any], expected: Callable[[Row], bool]
) -> None:
    rows = _all_rows(hubspot_sandbox)
    want = [i for i, row in rows.items() if expected(row)]  # ids ascending: the default order
    assert 0 < len(want) < len(rows), "the case must split the portal to prove anything"
    got = _search_all(hubspot_sandbox.client(), {"filter_groups": request_body["filterGroups"]}, page=7)
    assert got == want


@pytest.mark.parametrize("direction", ["ASCENDING", "DESCENDING"])
def test_search_sort_puts_missing_values_last_and_breaks_ties_by_id(
    hubspot_sandbox: HubSpotSandboxServer, direction: str
) -> None:
    rows = _all_rows(hubspot_sandbox)
    present = [(float(r["annualrevenue"]), int(i)) for i, r in rows.items() if r.get("annualrevenue")]
    missing = [int(i) for i, r in rows.items() if not r.get("annualrevenue")]
    assert present and missing
    descending = direction == "DESCENDING"
    present.sort(key=lambda p: (-p[0] if descending else p[0], p[1]))
    want = [str(i) for _v, i in present] + [str(i) for i in sorted(missing)]
    got = _search_all(
        hubspot_sandbox.client(), {"sorts": [{"propertyName": "annualrevenue", "direction": direction}]}, page=50
    )
    assert got == want


def test_search_limit_total_properties_and_default_limit(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    default = client.crm.contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest())
    assert len(default.results) == 10
    assert default.total == len(hubspot_sandbox.portal)
    assert default.paging.next.after == "10"
    assert set(default.results[0].properties) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }
    picked = client.crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(limit=3, after="117", properties=["jobtitle"])
    )
    assert [r.id for r in picked.results] == hubspot_sandbox.portal.contact_ids()[117:120]
    assert picked.paging is None
    assert "jobtitle" in picked.results[0].properties
    with pytest.raises(ApiException) as too_big:
        client.crm.contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(limit=201))
    assert too_big.value.status == 400


@pytest.mark.parametrize(
    ("groups", "filters_per_group"),
    [(6, 1), (1, 7), (4, 5)],  # too many groups; too many in one group; 20 > 18 in total
)
def test_search_filter_limits_answer_400(
    hubspot_sandbox: HubSpotSandboxServer, groups: int, filters_per_group: int
) -> None:
    one = {"propertyName": "hs_analytics_num_visits", "operator": "GTE", "value": "0"}
    body = PublicObjectSearchRequest(filter_groups=[{"filters": [one] * filters_per_group}] * groups)
    with pytest.raises(ApiException) as caught:
        hubspot_sandbox.client().crm.contacts.search_api.do_search(public_object_search_request=body)
    assert caught.value.status == 400
    assert _error(caught.value)["category"] == "VALIDATION_ERROR"
    # within the limits the same filter works
    ok = PublicObjectSearchRequest(filter_groups=[{"filters": [one] * 3}] * 5)
    assert hubspot_sandbox.client().crm.contacts.search_api.do_search(public_object_search_request=ok).total == 120


def test_search_caps_at_10000_results_even_when_they_share_one_timestamp(hubspot_sandbox_factory: Factory) -> None:
    count = SEARCH_RESULT_CAP + 150
    sandbox = hubspot_sandbox_factory(contacts=count, seed=3)
    stamp = sandbox.portal.bulk_stamp()  # a bulk edit: every record gets the same lastmodifieddate
    client = sandbox.client()
    same_stamp = {"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(stamp)}

    last = client.crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[{"filters": [same_stamp]}], limit=200, after=str(SEARCH_RESULT_CAP - 200)
        )
    )
    assert last.total == count
    assert len(last.results) == 200
    assert last.paging.next.after == str(SEARCH_RESULT_CAP)  # a naive pager is led into the wall...
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.search_api.do_search(
            public_object_search_request=PublicObjectSearchRequest(
                filter_groups=[{"filters": [same_stamp]}], limit=200, after=str(SEARCH_RESULT_CAP)
            )
        )
    assert caught.value.status == 400  # ...and hits it
    assert _error(caught.value)["category"] == "VALIDATION_ERROR"

    # paging by (timestamp, id) instead of offset reads every record exactly once
    seen: list[str] = []
    last_id = "0"
    while True:
        page = client.crm.contacts.search_api.do_search(
            public_object_search_request=PublicObjectSearchRequest(
                filter_groups=[
                    {"filters": [same_stamp, {"propertyName": "hs_object_id", "operator": "GT", "value": last_id}]}
                ],
                sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                limit=200,
                properties=["lastmodifieddate"],
            )
        )
        if not page.results:
            break
        seen.extend(r.id for r in page.results)
        last_id = page.results[-1].id
    assert seen == sandbox.portal.contact_ids()


def test_search_index_lag_serves_the_previous_version(hubspot_sandbox_factory: Factory) -> None:
    lag = 2.0  # long enough that the lagging searches below run inside it on a loaded machine
    sandbox = hubspot_sandbox_factory(contacts=30, seed=5, index_lag_s=lag)
    client = sandbox.client()
    target = sandbox.portal.contact_ids()[0]
    before = sandbox.portal.contact(target)
    assert before is not None
    client.crm.contacts.basic_api.update(target, SimplePublicObjectInput(properties={"jobtitle": "Chief Lag Officer"}))
    created = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "fresh@example.com"})
    )
    changed_at = time.monotonic()

    def search(prop: str, value: str) -> list[str]:
        body = PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}],
            properties=["jobtitle"],
        )
        return [r.id for r in client.crm.contacts.search_api.do_search(public_object_search_request=body).results]

    assert search("jobtitle", "Chief Lag Officer") == []
    old = client.crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": target}]}],
            properties=["jobtitle"],
        )
    )
    assert old.results[0].properties["jobtitle"] == before.get("jobtitle")
    assert search("email", "fresh@example.com") == []
    # reads by id are immediate; only search lags
    assert client.crm.contacts.basic_api.get_by_id(target, properties=["jobtitle"]).properties["jobtitle"] == (
        "Chief Lag Officer"
    )
    time.sleep(max(lag - (time.monotonic() - changed_at), 0) + 0.05)
    assert search("jobtitle", "Chief Lag Officer") == [target]
    assert search("email", "fresh@example.com") == [created.id]


# writes --------------------------------------------------------------------------------------------------


def _batch_update(client: Client, inputs: list[tuple[str, dict[str, str]]]) -> Any:
    body = BatchInputSimplePublicObjectBatchInput(
        inputs=[SimplePublicObjectBatchInput(id=i, properties=p) for i, p in inputs]
    )
    return client.crm.contacts.batch_api.update(batch_input_simple_public_object_batch_input=body)


def test_batch_update_lands_good_records_and_reports_bad_ones_207(hubspot_sandbox: HubSpotSandboxServer) -> None:
    portal = hubspot_sandbox.portal
    ids = portal.contact_ids()
    good_a, good_b, bad_enum, bad_number, bad_name = ids[:5]
    before = {i: portal.contact(i) for i in (bad_enum, bad_number, bad_name)}
    result = _batch_update(
        hubspot_sandbox.client(),
        [
            (good_a, {"jobtitle": "VP Sales"}),
            ("999999999", {"jobtitle": "Ghost"}),
            (bad_enum, {"numemployees": "lots"}),
            (good_b, {"annualrevenue": "2500000", "hs_lead_status": "CONNECTED"}),
            (bad_number, {"annualrevenue": "a lot"}),
            (bad_name, {"no_such_property": "x"}),
        ],
    )
    assert isinstance(result, BatchResponseSimplePublicObjectWithErrors)
    assert result.status == "COMPLETE"
    assert sorted(r.id for r in result.results) == sorted([good_a, good_b])
    assert result.num_errors == len(result.errors) == 4
    failed = {i for e in result.errors for i in e.context["ids"]}
    assert failed == {"999999999", bad_enum, bad_number, bad_name}
    missing = next(e for e in result.errors if e.context["ids"] == ["999999999"])
    assert missing.category == "OBJECT_NOT_FOUND"
    enum_error = next(e for e in result.errors if e.context["ids"] == [bad_enum])
    assert enum_error.category == "VALIDATION_ERROR" and "INVALID_OPTION" in enum_error.message

    assert (portal.contact(good_a) or {})["jobtitle"] == "VP Sales"
    assert (portal.contact(good_b) or {})["annualrevenue"] == "2500000"
    assert (portal.contact(good_b) or {})["hs_lead_status"] == "CONNECTED"
    for contact_id, row in before.items():
        assert portal.contact(contact_id) == row


def test_batch_update_all_good_is_200_and_batch_read_reports_missing(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    ids = hubspot_sandbox.portal.contact_ids()[:3]
    result = _batch_update(client, [(i, {"jobtitle": f"Title {n}"}) for n, i in enumerate(ids)])
    assert isinstance(result, BatchResponseSimplePublicObject)
    assert [r.properties["jobtitle"] for r in sorted(result.results, key=lambda r: int(r.id))] == [
        "Title 0",
        "Title 1",
        "Title 2",
    ]
    read = client.crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in [*ids, "424242424"]],
            properties=["jobtitle"],
            properties_with_history=[],
        )
    )
    assert isinstance(read, BatchResponseSimplePublicObjectWithErrors)
    assert sorted(r.id for r in read.results) == sorted(ids)
    assert read.errors[0].context["ids"] == ["424242424"]


@pytest.mark.parametrize(
    "bad_properties",
    [{"jobtitle": "x" * (MAX_VALUE_LENGTH + 1)}, {"email": "not-an-email@"}],
    ids=["value-too-long", "invalid-email"],
)
def test_some_bad_values_reject_the_whole_batch_with_400(
    hubspot_sandbox: HubSpotSandboxServer, bad_properties: dict[str, str]
) -> None:
    portal = hubspot_sandbox.portal
    good, bad = portal.contact_ids()[:2]
    before = {i: portal.contact(i) for i in (good, bad)}
    with pytest.raises(ApiException) as caught:
        _batch_update(hubspot_sandbox.client(), [(good, {"jobtitle": "Should not land"}), (bad, bad_properties)])
    assert caught.value.status == 400
    assert _error(caught.value)["category"] == "VALIDATION_ERROR"
    assert {i: portal.contact(i) for i in (good, bad)} == before
    # alone, the good record lands: a connector isolates the bad one by splitting the batch
    assert isinstance(
        _batch_update(hubspot_sandbox.client(), [(good, {"jobtitle": "Landed"})]), BatchResponseSimplePublicObject
    )
    assert (portal.contact(good) or {})["jobtitle"] == "Landed"


def test_more_than_100_inputs_is_400(hubspot_sandbox: HubSpotSandboxServer) -> None:
    ids = hubspot_sandbox.portal.contact_ids()[:101]
    with pytest.raises(ApiException) as caught:
        _batch_update(hubspot_sandbox.client(), [(i, {"jobtitle": "Too many"}) for i in ids])
    assert caught.value.status == 400
    assert all((hubspot_sandbox.portal.contact(i) or {}).get("jobtitle") != "Too many" for i in ids)
    assert isinstance(
        _batch_update(hubspot_sandbox.client(), [(i, {"jobtitle": "Just right"}) for i in ids[:100]]),
        BatchResponseSimplePublicObject,
    )


def test_writes_bump_lastmodifieddate_strictly_and_noop_writes_do_not(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    contact_id = hubspot_sandbox.portal.contact_ids()[0]
    start = hubspot_sandbox.portal.contact(contact_id) or {}
    stamps = [_ms(start["lastmodifieddate"]) or 0]
    for n in range(5):
        updated = client.crm.contacts.basic_api.update(
            contact_id, SimplePublicObjectInput(properties={"firstname": f"Name{n}"})
        )
        stamps.append(_ms(updated.properties["lastmodifieddate"]) or 0)
        assert updated.updated_at is not None
    assert all(b >= a for a, b in itertools.pairwise(stamps)), stamps
    assert stamps[-1] > stamps[0]
    row = hubspot_sandbox.portal.contact(contact_id) or {}
    assert row["hs_lastmodifieddate"] == row["lastmodifieddate"]
    # a batch of API writes is stamped with the wall clock: ties are possible, running ahead is not
    ids = hubspot_sandbox.portal.contact_ids()[1:21]
    before = time.time_ns() // 1_000_000
    _batch_update(client, [(i, {"jobtitle": "Batch"}) for i in ids])
    after = time.time_ns() // 1_000_000
    batch_stamps = [_ms((hubspot_sandbox.portal.contact(i) or {})["lastmodifieddate"]) or 0 for i in ids]
    assert all(before <= ms <= after for ms in batch_stamps), (before, batch_stamps, after)
    # writing the same value again changes nothing, so the cursor does not move
    client.crm.contacts.basic_api.update(contact_id, SimplePublicObjectInput(properties={"firstname": "Name4"}))
    assert (hubspot_sandbox.portal.contact(contact_id) or {})["lastmodifieddate"] == row["lastmodifieddate"]


def test_lifecycle_stage_never_moves_backwards(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    rows = _all_rows(hubspot_sandbox)
    customer = next(i for i, r in rows.items() if r.get("lifecyclestage") == "customer")
    lead = next(i for i, r in rows.items() if r.get("lifecyclestage") == "lead")
    stamp = rows[customer]["lastmodifieddate"]

    answer = client.crm.contacts.basic_api.update(
        customer, SimplePublicObjectInput(properties={"lifecyclestage": "lead"})
    )
    assert answer.properties["lifecyclestage"] == "customer"  # 200, value kept
    assert (hubspot_sandbox.portal.contact(customer) or {})["lastmodifieddate"] == stamp
    result = _batch_update(client, [(customer, {"lifecyclestage": "marketingqualifiedlead"})])
    assert isinstance(result, BatchResponseSimplePublicObject)
    assert (hubspot_sandbox.portal.contact(customer) or {})["lifecyclestage"] == "customer"

    forward = client.crm.contacts.basic_api.update(
        lead, SimplePublicObjectInput(properties={"lifecyclestage": "salesqualifiedlead"})
    )
    assert forward.properties["lifecyclestage"] == "salesqualifiedlead"
    assert (hubspot_sandbox.portal.contact(lead) or {}).get("hs_lifecyclestage_salesqualifiedlead_date")

    # going back takes two writes: clear, then set
    client.crm.contacts.basic_api.update(customer, SimplePublicObjectInput(properties={"lifecyclestage": ""}))
    assert "lifecyclestage" not in (hubspot_sandbox.portal.contact(customer) or {})
    client.crm.contacts.basic_api.update(customer, SimplePublicObjectInput(properties={"lifecyclestage": "lead"}))
    assert (hubspot_sandbox.portal.contact(customer) or {})["lifecyclestage"] == "lead"


def test_property_create_conflict_and_typed_writes(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    group = client.crm.properties.groups_api.create(
        "contacts", PropertyGroupCreate(name="leadsync", label="Leadsync", display_order=-1)
    )
    assert group.name == "leadsync"
    spec = PropertyCreate(
        name="leadsync_score", label="Leadsync score", type="number", field_type="number", group_name="leadsync"
    )
    created = client.crm.properties.core_api.create("contacts", spec)
    assert (created.name, created.type, created.hubspot_defined) == ("leadsync_score", "number", False)
    with pytest.raises(PropertiesApiException) as conflict:
        client.crm.properties.core_api.create("contacts", spec)
    assert conflict.value.status == 409
    assert _error(conflict.value)["category"] == "OBJECT_ALREADY_EXISTS"
    with pytest.raises(PropertiesApiException) as no_group:
        client.crm.properties.core_api.create(
            "contacts",
            PropertyCreate(name="other_prop", label="x", type="string", field_type="text", group_name="nope"),
        )
    assert no_group.value.status == 400

    names = {p.name: p.type for p in client.crm.properties.core_api.get_all("contacts").results}
    assert names["leadsync_score"] == "number"
    assert names["lifecyclestage"] == "enumeration"
    assert names["lastmodifieddate"] == "datetime"
    assert names["hs_email_optout"] == "bool"
    numemployees = client.crm.properties.core_api.get_by_name("contacts", "numemployees")
    assert [o.value for o in numemployees.options] == ["1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+"]

    ids = hubspot_sandbox.portal.contact_ids()[:3]
    result = _batch_update(client, [(ids[0], {"leadsync_score": "87"}), (ids[1], {"leadsync_score": "high"})])
    assert isinstance(result, BatchResponseSimplePublicObjectWithErrors)
    assert result.errors[0].context["ids"] == [ids[1]]
    found = client.crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "leadsync_score", "operator": "GT", "value": "50"}]}]
        )
    )
    assert [r.id for r in found.results] == [ids[0]]


def test_workflow_enrollment_is_recorded_and_unknown_email_is_404(hubspot_sandbox: HubSpotSandboxServer) -> None:
    client = hubspot_sandbox.client()
    email = next(r["email"] for r in _all_rows(hubspot_sandbox).values() if r.get("email"))
    ok = client.api_request({"method": "POST", "path": f"/automation/v2/workflows/123/enrollments/contacts/{email}"})
    assert ok.status_code == 204
    missing = client.api_request(
        {"method": "POST", "path": "/automation/v2/workflows/123/enrollments/contacts/nobody@nowhere.test"}
    )
    assert missing.status_code == 404
    enrolled = requests.get(f"{hubspot_sandbox.url}/__sandbox/enrollments", timeout=5).json()["results"]
    assert [(e["workflowId"], e["email"]) for e in enrolled] == [("123", email)]
    assert enrolled[0]["contactId"] == hubspot_sandbox.portal.find_by_email(email)
    assert hubspot_sandbox.stats()["enrollments"] == 1


# rate limits and faults ----------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_hubspot_headers(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=5, seed=1, rate_limit="4/10s", daily_limit=1000)
    # urllib3's default retry would sleep Retry-After and try again: see the 429 itself
    api = sandbox.client(retry=NO_RETRY).crm.contacts.basic_api
    remaining = []
    for _ in range(4):
        _data, status, headers = api.get_page_with_http_info(limit=1)
        assert status == 200
        assert headers["X-HubSpot-RateLimit-Max"] == "4"
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert headers["X-HubSpot-RateLimit-Daily"] == "1000"
        remaining.append(int(headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [3, 2, 1, 0]
    assert int(headers["X-HubSpot-RateLimit-Daily-Remaining"]) == 996
    with pytest.raises(ApiException) as caught:
        api.get_page(limit=1)
    assert caught.value.status == 429
    body = _error(caught.value)
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 10
    # another token has its own window
    sandbox.sandbox.add_token("second-token")
    assert sandbox.client(token="second-token").crm.contacts.basic_api.get_page(limit=1).results
    assert sandbox.stats()["throttled"] == 1


def test_search_has_its_own_secondly_limit_and_no_rate_limit_headers(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=5, seed=1, rate_limit=100, search_rate_limit=2)
    search = sandbox.client(retry=NO_RETRY).crm.contacts.search_api
    request = PublicObjectSearchRequest(limit=1)
    started = time.monotonic()
    _data, _status, headers = search.do_search_with_http_info(request)
    assert not any(name.lower().startswith("x-hubspot-ratelimit") for name in headers)
    search.do_search(request)
    with pytest.raises(ApiException) as caught:
        search.do_search(request)
    assert time.monotonic() - started < 1.0, "the three searches must fall in one second for this test"
    assert caught.value.status == 429
    assert _error(caught.value)["message"] == "You have reached your secondly limit."
    assert caught.value.headers["Retry-After"] == "1"


def test_daily_limit_answers_429_daily(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=3, seed=1, rate_limit=100, daily_limit=2)
    api = sandbox.client(retry=NO_RETRY).crm.contacts.basic_api
    api.get_page(limit=1)
    api.get_page(limit=1)
    with pytest.raises(ApiException) as caught:
        api.get_page(limit=1)
    assert caught.value.status == 429
    assert _error(caught.value)["policyName"] == "DAILY"


def test_injected_5xx_faults_are_counted(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=5, seed=2, fault_rate=0.5, fault_kinds=("500", "502", "503"))
    api = sandbox.client(retry=NO_RETRY).crm.contacts.search_api
    statuses = []
    for _ in range(40):
        try:
            api.do_search(PublicObjectSearchRequest(limit=1))
            statuses.append(200)
        except ServiceException as exc:
            assert _error(exc)["status"] == "error"
            statuses.append(exc.status)
    failures = [s for s in statuses if s != 200]
    assert set(failures) <= {500, 502, 503}
    assert 5 <= len(failures) <= 35, "a 0.5 fault rate must inject some faults but not only faults"
    stats = sandbox.stats()
    assert stats["faults"] == len(failures)
    assert stats["requests"] == 40


def test_dropped_connection_and_slow_response_faults(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=3, seed=2, fault_rate=1.0, fault_kinds=("drop",))
    search = sandbox.client(retry=NO_RETRY).crm.contacts.search_api
    with pytest.raises((urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError)):
        search.do_search(PublicObjectSearchRequest(limit=1))
    assert sandbox.stats()["faults"] == 1

    slow = hubspot_sandbox_factory(contacts=3, seed=2, fault_rate=1.0, fault_kinds=("slow",), slow_response_s=5.0)
    api = slow.client(retry=NO_RETRY).crm.contacts.basic_api
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)):
        api.get_page(limit=1, _request_timeout=0.2)
    started = time.monotonic()
    slow.stop()  # ends the injected sleep instead of waiting it out
    assert time.monotonic() - started < 2.0
    slow.sandbox.faults.rate = 0.0
    assert slow.stats()["faults"] == 1


def test_stop_leaves_no_thread_running(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=5, seed=1)
    client = sandbox.client()
    for _ in range(3):
        client.crm.contacts.basic_api.get_page(limit=2)
    port = sandbox.port
    sandbox.stop()
    leftover = [t.name for t in threading.enumerate() if t.name.endswith(f"-{port}") and t.is_alive()]
    assert leftover == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sandbox.url}/__sandbox/stats", timeout=2)


# determinism ---------------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_portal_and_another_seed_does_not(hubspot_sandbox_factory: Factory) -> None:
    def snapshot(sandbox: HubSpotSandboxServer) -> list[tuple[str, dict[str, str | None]]]:
        client = sandbox.client()
        out: list[tuple[str, dict[str, str | None]]] = []
        after = None
        names = ["email", "jobtitle", "lifecyclestage", "hs_analytics_num_page_views", "lastmodifieddate"]
        while True:
            page = client.crm.contacts.basic_api.get_page(limit=100, after=after, properties=names)
            out.extend((r.id, r.properties) for r in page.results)
            if page.paging is None:
                return out
            after = page.paging.next.after

    first = snapshot(hubspot_sandbox_factory(contacts=150, seed=42))
    again = snapshot(hubspot_sandbox_factory(contacts=150, seed=42))
    other = snapshot(hubspot_sandbox_factory(contacts=150, seed=43))
    assert first == again
    assert len(first) == 150
    assert [p for _i, p in first] != [p for _i, p in other]


def test_portal_seeding_is_complete() -> None:
    # speed is measured by benchmarks/, never by a timed test on a shared machine
    people = generate_people(20_000, seed=1, now=SANDBOX_NOW)
    portal = HubSpotPortal(seed=1)
    portal.seed_people(people)
    assert len(portal) == 20_000
    row = portal.contact(portal.contact_ids()[-1]) or {}
    assert row["hs_object_id"] == portal.contact_ids()[-1]
    assert _ms(row["createdate"]) <= _ms(row["lastmodifieddate"])  # type: ignore[operator]
    assert _ms(row["lastmodifieddate"]) <= int(SANDBOX_NOW.timestamp() * 1000)  # type: ignore[operator]


# small pieces --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100/10s", RateLimit(100, 10.0)),
        ("100", RateLimit(100, 10.0)),
        ("5/s", RateLimit(5, 1.0)),
        ("600/1m", RateLimit(600, 60.0)),
        ("50/500ms", RateLimit(50, 0.5)),
        ("0", None),
        (None, None),
        (7, RateLimit(7, 10.0)),
    ],
)
def test_parse_rate_limit(text: str | int | None, expected: RateLimit | None) -> None:
    assert parse_rate_limit(text) == expected


@pytest.mark.parametrize("text", ["fast", "10/", "-1/10s", "10/0s"])
def test_parse_rate_limit_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        parse_rate_limit(text)


def test_sandbox_dates_are_utc_iso_with_milliseconds(hubspot_sandbox: HubSpotSandboxServer) -> None:
    record = (
        hubspot_sandbox.client()
        .crm.contacts.basic_api.get_page(limit=1, properties=["hs_analytics_last_visit_timestamp"])
        .results[0]
    )
    stamp = record.properties["lastmodifieddate"]
    assert stamp.endswith("Z") and stamp[19] == "." and len(stamp) == 24
    assert datetime.fromisoformat(stamp).tzinfo == UTC
    assert record.updated_at == datetime.fromisoformat(stamp)


def test_concurrent_writes_and_searches_are_consistent(hubspot_sandbox_factory: Factory) -> None:
    sandbox = hubspot_sandbox_factory(contacts=200, seed=9)
    ids = sandbox.portal.contact_ids()
    chunks = [ids[n::4] for n in range(4)]
    errors: list[BaseException] = []

    def writer(chunk: list[str], worker: int) -> None:
        try:
            client = sandbox.client()
            for start in range(0, len(chunk), 10):
                _batch_update(client, [(i, {"jobtitle": f"Worker {worker}"}) for i in chunk[start : start + 10]])
                client.crm.contacts.search_api.do_search(
                    public_object_search_request=PublicObjectSearchRequest(limit=5)
                )
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(chunk, n)) for n, chunk in enumerate(chunks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    rows = _all_rows(sandbox)
    for worker, chunk in enumerate(chunks):
        assert all(rows[i]["jobtitle"] == f"Worker {worker}" for i in chunk)
    now_ms = time.time_ns() // 1_000_000
    assert all((_ms(r["lastmodifieddate"]) or 0) <= now_ms for r in rows.values())  # the clock never runs ahead
    found = _search_all(
        sandbox.client(),
        {"filter_groups": [{"filters": [{"propertyName": "jobtitle", "operator": "EQ", "value": "worker 2"}]}]},
    )
    assert found == sorted(chunks[2], key=int)


# synthetic portal ----------------------------------------------------------------------------------------


def test_synthetic_people_look_like_a_real_portal() -> None:
    people = generate_people(4000, seed=21, now=SANDBOX_NOW)
    share = {
        kind: sum(p.email_kind == kind for p in people) / len(people)
        for kind in ("free", "disposable", "role", "invalid")
    }
    assert 0.18 <= share["free"] <= 0.27
    assert 0.005 <= share["disposable"] <= 0.05
    assert 0.01 <= share["role"] <= 0.06
    assert 0.003 <= share["invalid"] <= 0.03
    assert any(p.email_kind == "free" and p.work_email for p in people)
    assert {p.seniority for p in people} == set(SENIORITIES)
    assert len({p.email.lower() for p in people if p.email}) == sum(1 for p in people if p.email)
    oldest = min(p.created_at for p in people)
    assert (SANDBOX_NOW - oldest).days > 600
    for p in people:
        assert p.created_at <= p.updated_at <= SANDBOX_NOW
        if p.converted:
            assert p.customer_at is not None and p.created_at <= p.customer_at <= p.updated_at
            assert p.lifecycle_stage in ("customer", "evangelist")
        else:
            assert p.customer_at is None and p.lifecycle_stage not in ("customer", "evangelist")


def test_hidden_propensity_drives_fit_engagement_and_conversion() -> None:
    people = generate_people(6000, seed=8, now=SANDBOX_NOW)
    converted = [p for p in people if p.converted]
    others = [p for p in people if not p.converted]
    assert 0.05 <= len(converted) / len(people) <= 0.25

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    assert mean([p.propensity for p in converted]) > 2 * mean([p.propensity for p in others])
    assert mean([p.page_views for p in converted]) > 1.5 * mean([p.page_views for p in others])
    senior = {"c_level", "vp", "director"}
    rate_senior = mean([p.converted for p in people if p.seniority in senior])
    rate_students = mean([p.converted for p in people if p.seniority in ("student", "job_seeker")])
    assert rate_senior > 3 * rate_students
    # a ranking by the hidden propensity separates converters well: AUC by pairwise comparison on a sample
    sample_c, sample_o = converted[:200], others[:800]
    wins = sum((c.propensity > o.propensity) + 0.5 * (c.propensity == o.propensity) for c in sample_c for o in sample_o)
    assert wins / (len(sample_c) * len(sample_o)) > 0.75


def test_synthetic_events_agree_with_the_counters() -> None:
    for person in generate_people(300, seed=4, now=SANDBOX_NOW):
        events = person.events()
        kinds = Counter(e.kind for e in events)
        assert kinds["visit"] == person.visits
        assert kinds["page_view"] == person.page_views
        assert kinds["form_submission"] == person.form_submissions
        assert kinds["email_open"] == person.email_opens
        assert kinds["email_click"] == person.email_clicks
        assert kinds["email_reply"] == person.email_replies
        assert kinds["meeting"] == person.meetings
        assert kinds["call"] == person.calls
        assert set(kinds) <= set(EVENT_KINDS)
        assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
        if events:
            assert person.created_at <= events[0].timestamp and events[-1].timestamp <= person.updated_at
        visits = [e.timestamp for e in events if e.kind == "visit"]
        assert (max(visits) if visits else None) == person.last_visit_at
        assert all(e.attributes["url"].startswith("/") for e in events if e.kind == "page_view")
        assert events == person.events()  # lazily generated, but deterministic
