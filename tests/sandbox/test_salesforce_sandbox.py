"""The Salesforce sandbox, driven through ``simple-salesforce`` itself over real HTTPS with a trustme CA.

Expected values are computed here from the org's stored records with plain Python (or from the synthetic
people), never copied from the sandbox's answers, so that a wrong filter, sort or paging rule fails a test.
Clients are built the way the connector does it: the token from ``/services/oauth2/token`` with requests,
then ``Salesforce(instance_url=..., session_id=..., session=<session trusting the CA>)``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.sandbox.salesforce import (
    API_VERSIONS,
    SalesforceSandboxServer,
    ca_session,
)
from connectors.sandbox.salesforce.schema import make_id, to_18
from connectors.sandbox.synthetic import generate_people
from tests.conftest import SANDBOX_NOW
from tests.sandbox._salesforce import SCORE_FIELD, Factory, _client, _code, _login, _open_leads, _records, _strip

# TLS --------------------------------------------------------------------------------------------------------


def test_https_with_the_trustme_ca_and_the_ca_bundle_override(
    sandbox: SalesforceSandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi

    assert sandbox.url.startswith("https://127.0.0.1:")
    assert sandbox.instance_url == sandbox.url
    pem = Path(sandbox.ca_pem_path).read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    # requests' CA environment variables beat Session.verify: a session trusting only the sandbox CA that
    # way fails whenever REQUESTS_CA_BUNDLE is set (it is on these machines and many corporate ones) ...
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    naive = requests.Session()
    naive.verify = sandbox.ca_pem_path
    with pytest.raises(requests.exceptions.SSLError):
        naive.get(f"{sandbox.url}/services/data", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{sandbox.url}/services/data", timeout=5)
    # ... while an adapter mounted for the sandbox URL, or trust_env=False, trusts the test CA
    assert sandbox.session().get(f"{sandbox.url}/services/data", timeout=5).status_code == 200
    assert ca_session(sandbox.ca_pem_path).get(f"{sandbox.url}/services/data", timeout=5).status_code == 200
    isolated = requests.Session()
    isolated.trust_env = False
    isolated.verify = sandbox.ca_pem_path
    assert isolated.get(f"{sandbox.url}/services/data", timeout=5).status_code == 200


def test_ca_file_is_written_where_asked_and_temp_ca_removed_on_stop(sf_factory: Factory, tmp_path: Path) -> None:
    target = tmp_path / "certs" / "sandbox-ca.pem"
    server = sf_factory(ca_file=target)
    assert server.ca_pem_path == str(target)
    assert target.read_text().startswith("-----BEGIN CERTIFICATE-----")
    temp = sf_factory()
    path = temp.ca_pem_path
    temp.stop()
    server.stop()
    assert target.exists()
    assert not Path(path).exists()


# OAuth and sessions ----------------------------------------------------------------------------------------


def test_client_credentials_in_form_or_basic_and_the_token_answer(sandbox: SalesforceSandboxServer) -> None:
    session, answer = _login(sandbox)
    assert set(answer) >= {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}
    assert answer["token_type"] == "Bearer"
    assert answer["instance_url"] == sandbox.url
    assert re.fullmatch(r"\d{13}", answer["issued_at"])
    assert answer["id"] == f"{sandbox.url}/id/{sandbox.org.org_id}/{sandbox.org.integration_user_id}"
    basic = session.post(
        sandbox.token_url,
        data={"grant_type": "client_credentials"},
        auth=(sandbox.client_id, sandbox.client_secret),
        timeout=5,
    )
    assert basic.status_code == 200
    assert basic.json()["access_token"] != answer["access_token"]
    for token in (answer["access_token"], basic.json()["access_token"], sandbox.token):
        sf = Salesforce(instance_url=sandbox.url, session_id=token, session=session)
        assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 150


@pytest.mark.parametrize(
    ("data", "auth", "error"),
    [
        (
            {"grant_type": "client_credentials", "client_id": "leadsync", "client_secret": "wrong"},
            None,
            "invalid_client",
        ),
        ({"grant_type": "client_credentials"}, ("someone-else", "sandbox-secret"), "invalid_client_id"),
        ({"grant_type": "password", "username": "u", "password": "p"}, None, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, None, "invalid_grant"),
        (
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "not-a-jwt"},
            None,
            "invalid_grant",
        ),
    ],
)
def test_token_errors_are_400_with_oauth_bodies(
    sandbox: SalesforceSandboxServer, data: dict[str, str], auth: tuple[str, str] | None, error: str
) -> None:
    response = sandbox.session().post(sandbox.token_url, data=data, auth=auth, timeout=5)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]


def test_refresh_token_grant(sandbox: SalesforceSandboxServer) -> None:
    refresh = sandbox.sandbox.issue_refresh_token()
    response = sandbox.session().post(
        sandbox.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": sandbox.client_id},
        timeout=5,
    )
    assert response.status_code == 200
    assert "refresh_token" not in response.json()
    assert sandbox.client(token=response.json()["access_token"]).query("SELECT Id FROM Lead LIMIT 1")["totalSize"] == 1


def _rsa_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def test_jwt_bearer_verified_against_the_configured_public_key(sf_factory: Factory) -> None:
    private, public = _rsa_pair()
    other_private, _ = _rsa_pair()
    server = sf_factory(jwt_public_key=public)
    session = server.session()
    exp = int(time.time()) + 180

    def grant(claims: dict[str, Any], key: bytes = private, algorithm: str = "RS256") -> requests.Response:
        assertion = jwt.encode(
            claims, key if algorithm == "RS256" else "shared-secret-of-32-bytes-or-more!!", algorithm
        )
        return session.post(
            server.token_url,
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
            timeout=5,
        )

    good = {
        "iss": server.client_id,
        "sub": "integration@acme.example",
        "aud": "https://login.salesforce.com",
        "exp": exp,
    }
    ok = grant(good)
    assert ok.status_code == 200, ok.text
    assert server.client(token=ok.json()["access_token"]).query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    assert grant(good, other_private).json()["error"] == "invalid_grant"  # signed by another key
    assert grant(good, algorithm="HS256").json()["error"] == "invalid_grant"
    assert grant({**good, "iss": "someone-else"}).json()["error"] == "invalid_client_id"
    assert grant({**good, "exp": int(time.time()) - 600}).json()["error"] == "invalid_grant"
    assert grant({k: v for k, v in good.items() if k != "sub"}).json()["error"] == "invalid_grant"


def test_simple_salesforce_own_logins_reach_the_sandbox(sf_factory: Factory) -> None:
    """``login_domain`` makes simple-salesforce's hard-coded ``https://{domain}.salesforce.com`` token URL
    land here; with its own login it also re-authenticates by itself after INVALID_SESSION_ID."""
    private, _ = _rsa_pair()
    server = sf_factory(leads=20, seed=1)
    sf = Salesforce(
        consumer_key=server.client_id,
        consumer_secret=server.client_secret,
        domain=server.login_domain,
        session=server.session(),
    )
    assert sf.auth_type == "client-credentials"
    assert sf.sf_instance == f"127.0.0.1:{server.port}"
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 20
    server.sandbox.expire_sessions()
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 20  # logged in again on the 401
    assert server.stats()["sessions_issued"] == 2
    jwt_sf = Salesforce(
        username="integration@acme.example",
        consumer_key=server.client_id,
        privatekey=private.decode(),
        domain=server.login_domain,
        session=server.session(),
    )
    assert jwt_sf.auth_type == "jwt-bearer"
    assert jwt_sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 20
    with pytest.raises(SalesforceAuthenticationFailed):
        Salesforce(
            consumer_key=server.client_id, consumer_secret="wrong", domain=server.login_domain, session=server.session()
        )


def test_sessions_expire_after_their_ttl_and_on_demand(sf_factory: Factory) -> None:
    server = sf_factory(leads=5, session_ttl_s=0.3)
    sf = _client(server)
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 5
    time.sleep(0.4)
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT COUNT() FROM Lead")
    assert caught.value.status == 401
    assert caught.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    raw = server.session().get(
        f"{server.url}/services/data/v59.0/limits", headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert raw.status_code == 401
    assert raw.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    # the fixed token does not expire with time, only on demand (and can be brought back)
    fixed = server.client()
    assert fixed.query("SELECT COUNT() FROM Lead")["totalSize"] == 5
    server.sandbox.expire_sessions()
    with pytest.raises(SalesforceExpiredSession):
        fixed.query("SELECT COUNT() FROM Lead")
    server.sandbox.add_token(server.token)
    assert fixed.query("SELECT COUNT() FROM Lead")["totalSize"] == 5
    expired = server.session().post(f"{server.url}/__sandbox/expire-sessions", timeout=5).json()
    assert expired == {"expired": 1}


# versions, limits ------------------------------------------------------------------------------------------


def test_versions_limits_and_the_usage_header(sandbox: SalesforceSandboxServer) -> None:
    session = sandbox.session()
    versions = session.get(f"{sandbox.url}/services/data/", timeout=5).json()  # no auth needed
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    assert [v["version"] for v in versions] == list(API_VERSIONS)
    sf = _client(sandbox)
    sf.query("SELECT Id FROM Lead LIMIT 1")
    sf.query("SELECT Id FROM Lead LIMIT 1")
    assert sf.api_usage["api-usage"].used == 2
    assert sf.api_usage["api-usage"].total == 100_000
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 100_000, "Remaining": 100_000 - 3}
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    response = session.get(f"{sandbox.url}/services/data/v59.0/limits", headers=headers, timeout=5)
    assert response.headers["Sforce-Limit-Info"] == "api-usage=4/100000"
    missing = session.get(f"{sandbox.url}/services/data/v12.0/limits", headers=headers, timeout=5)
    assert missing.status_code == 404
    assert missing.json()[0]["errorCode"] == "NOT_FOUND"


def test_daily_limit_answers_403_request_limit_exceeded(sf_factory: Factory) -> None:
    server = sf_factory(leads=3, daily_limit=3)
    sf = _client(server)  # the token call is not counted
    for _ in range(3):
        sf.query("SELECT Id FROM Lead")
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Lead")
    assert caught.value.status == 403
    assert caught.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert server.stats()["throttled"] == 1


def test_rate_limit_window_answers_the_same_403(sf_factory: Factory) -> None:
    server = sf_factory(leads=3, rate_limit="2/10s")
    sf = _client(server)
    sf.query("SELECT Id FROM Lead")
    sf.query("SELECT Id FROM Lead")
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Lead")
    assert _code(caught.value) == "REQUEST_LIMIT_EXCEEDED"
    assert server.stats()["throttled"] == 1


# describe and custom fields --------------------------------------------------------------------------------


def test_describe_matches_what_simple_salesforce_expects(shared_client: Salesforce) -> None:
    sf = shared_client
    lead = sf.Lead.describe()
    assert (lead["name"], lead["keyPrefix"]) == ("Lead", "00Q")
    fields = {f["name"]: f for f in lead["fields"]}
    for name in (
        "Id", "Email", "FirstName", "LastName", "Company", "Title", "NumberOfEmployees", "AnnualRevenue", "Industry",
        "Country", "Status", "LeadSource", "HasOptedOutOfEmail", "EmailBouncedReason", "EmailBouncedDate",
        "IsConverted", "ConvertedContactId", "ConvertedAccountId", "ConvertedDate", "OwnerId", "CreatedDate",
        "LastModifiedDate", "SystemModstamp", "IsDeleted",
    ):  # fmt: skip
        assert name in fields
        assert set(fields[name]) >= {
            "name", "type", "label", "updateable", "custom", "picklistValues", "length", "precision", "scale",
        }  # fmt: skip
    status = fields["Status"]
    assert status["type"] == "picklist"
    assert status["restrictedPicklist"]
    assert [p["value"] for p in status["picklistValues"]] == [
        "Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted",
    ]  # fmt: skip
    assert fields["SystemModstamp"]["type"] == "datetime"
    assert not fields["SystemModstamp"]["updateable"]
    assert not fields["IsConverted"]["updateable"]
    assert fields["ConvertedContactId"]["referenceTo"] == ["Contact"]
    assert fields["NumberOfEmployees"]["type"] == "int"
    assert not any(f["custom"] for f in lead["fields"])  # no Leadsync_*__c fields until created
    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert contact["AccountId"]["relationshipName"] == "Account"
    objects = {o["name"]: o["keyPrefix"] for o in sf.describe()["sobjects"]}
    assert objects | {"Lead": "00Q"} == objects
    assert {"Account": "001", "Contact": "003", "Task": "00T", "Event": "00U", "CampaignMember": "00v"}.items() <= (
        objects.items()
    )
    with pytest.raises(SalesforceResourceNotFound):
        sf.Bogus__c.describe()


def test_tooling_creates_custom_fields_that_describe_query_and_writes_see(sandbox: SalesforceSandboxServer) -> None:
    sf = _client(sandbox)
    lead_id = next(r["Id"] for r in sandbox.org.records("Lead") if not r["IsConverted"])
    before = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Lead"}, "id": lead_id, "Leadsync_Score__c": 10}]},
    )
    assert before[0]["errors"][0]["statusCode"] == "INVALID_FIELD"
    specs: list[dict[str, Any]] = [
        {
            "FullName": "Lead.Leadsync_Score__c",
            "Metadata": {"label": "Leadsync Score", "type": "Number", "precision": 3, "scale": 0},
        },
        {"FullName": "Lead.Leadsync_Reasons__c", "Metadata": {"label": "Reasons", "type": "Text", "length": 20}},
        {"FullName": "Lead.Leadsync_Qualified_At__c", "Metadata": {"label": "Qualified At", "type": "DateTime"}},
        {
            "FullName": "Lead.Leadsync_Grade__c",
            "Metadata": {
                "label": "Leadsync Grade",
                "type": "Picklist",
                "valueSet": {
                    "restricted": True,
                    "valueSetDefinition": {"value": [{"fullName": g, "label": g} for g in ("hot", "warm", "cold")]},
                },
            },
        },
    ]  # fmt: skip
    created = [sf.toolingexecute("sobjects/CustomField", method="POST", data=spec) for spec in specs]
    assert all(c["success"] and c["id"].startswith("00N") for c in created)
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    score = fields["Leadsync_Score__c"]
    assert (score["type"], score["custom"], score["precision"], score["scale"], score["updateable"]) == (
        "double", True, 3, 0, True,
    )  # fmt: skip
    assert (fields["Leadsync_Reasons__c"]["type"], fields["Leadsync_Reasons__c"]["length"]) == ("string", 20)
    assert [p["value"] for p in fields["Leadsync_Grade__c"]["picklistValues"]] == ["hot", "warm", "cold"]
    read_back = sf.toolingexecute(f"sobjects/CustomField/{created[0]['id']}")
    assert read_back["FullName"] == "Lead.Leadsync_Score__c"
    assert read_back["Metadata"]["precision"] == 3

    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {
                    "attributes": {"type": "Lead"},
                    "id": lead_id,
                    "Leadsync_Score__c": 87,
                    "Leadsync_Reasons__c": "+15 VP; +10 pricing",
                    "Leadsync_Qualified_At__c": "2025-02-01T10:00:00+01:00",
                    "Leadsync_Grade__c": "hot",
                }
            ]
        },
    )
    assert results == [{"id": lead_id, "success": True, "errors": []}]
    row = sf.query(
        f"SELECT Leadsync_Score__c, leadsync_reasons__c, Leadsync_Qualified_At__c, Leadsync_Grade__c FROM Lead "
        f"WHERE Id = '{lead_id[:15]}' AND Leadsync_Score__c >= 87 AND Leadsync_Qualified_At__c = 2025-02-01T09:00:00Z"
    )["records"]
    assert _strip(row[0]) == {
        "Leadsync_Score__c": 87.0,
        "Leadsync_Reasons__c": "+15 VP; +10 pricing",
        "Leadsync_Qualified_At__c": "2025-02-01T09:00:00.000+0000",
        "Leadsync_Grade__c": "hot",
    }
    bad = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Lead"}, "id": lead_id, "Leadsync_Reasons__c": "x" * 21},
                {"attributes": {"type": "Lead"}, "id": lead_id, "Leadsync_Grade__c": "lukewarm"},
                {"attributes": {"type": "Lead"}, "id": lead_id, "Leadsync_Score__c": 1000},
                {"attributes": {"type": "Lead"}, "id": lead_id, "IsConverted": True},
            ]
        },
    )
    assert [r["errors"][0]["statusCode"] for r in bad] == [
        "STRING_TOO_LONG",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
    ]


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        (
            {"FullName": "Lead.Leadsync_Score__c", "Metadata": {"label": "S", "type": "Number"}},
            "DUPLICATE_DEVELOPER_NAME",
        ),
        ({"FullName": "Lead.Score", "Metadata": {"label": "S", "type": "Number"}}, "FIELD_INTEGRITY_EXCEPTION"),
        ({"FullName": "Lead.Bad__Name__c", "Metadata": {"label": "S", "type": "Number"}}, "FIELD_INTEGRITY_EXCEPTION"),
        ({"FullName": "Lead.X__c", "Metadata": {"label": "S", "type": "Text"}}, "FIELD_INTEGRITY_EXCEPTION"),
        ({"FullName": "Lead.X__c", "Metadata": {"label": "S", "type": "Hologram"}}, "FIELD_INTEGRITY_EXCEPTION"),
        ({"FullName": "Lead.X__c", "Metadata": {"type": "Number"}}, "FIELD_INTEGRITY_EXCEPTION"),
        ({"FullName": "Nope.X__c", "Metadata": {"label": "S", "type": "Number"}}, "INVALID_TYPE"),
    ],
)
def test_tooling_refuses_bad_or_duplicate_fields(sf_factory: Factory, spec: dict[str, Any], code: str) -> None:
    server = sf_factory(custom_fields=SCORE_FIELD)
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _client(server).toolingexecute("sobjects/CustomField", method="POST", data=spec)
    assert _code(caught.value) == code


# writes ----------------------------------------------------------------------------------------------------


def test_collections_partial_failure_in_order(sf_factory: Factory) -> None:
    server = sf_factory(leads=80, seed=8, custom_fields=SCORE_FIELD)
    sf = _client(server)
    open_ids = _open_leads(server)
    converted = next(r["Id"] for r in server.org.records("Lead") if r["IsConverted"])
    deleted = open_ids[5]
    server.org.delete_record("Lead", deleted)
    before = _records(server, "Lead", include_deleted=True)
    payload = [
        {"attributes": {"type": "Lead"}, "id": open_ids[0], "Leadsync_Score__c": 40},
        {"attributes": {"type": "Lead"}, "id": converted, "Leadsync_Score__c": 40},
        {"attributes": {"type": "Lead"}, "id": open_ids[1], "Bogus__c": 1},
        {"attributes": {"type": "Lead"}, "id": "001xx000003DGb2999", "Leadsync_Score__c": 1},
        {"attributes": {"type": "Lead"}, "id": open_ids[2], "Status": "Hot Prospect"},
        {"attributes": {"type": "Lead"}, "id": deleted, "Leadsync_Score__c": 1},
        {"attributes": {"type": "Lead"}, "Leadsync_Score__c": 1},
        {"attributes": {"type": "Lead"}, "id": open_ids[3][:15], "Status": "Working - Contacted", "Title": "VP Sales"},
        {"attributes": {"type": "Lead"}, "id": open_ids[4], "LastName": None},
        {"attributes": {"type": "Lead"}, "id": open_ids[6], "Email": "not-an-email"},
    ]
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": payload})
    assert [r["success"] for r in results] == [True, False, False, False, False, False, False, True, False, False]
    codes = [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]
    assert codes == [
        None,
        "CANNOT_UPDATE_CONVERTED_LEAD",
        "INVALID_FIELD",
        "MALFORMED_ID",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "ENTITY_IS_DELETED",
        "MISSING_ARGUMENT",
        None,
        "REQUIRED_FIELD_MISSING",
        "INVALID_EMAIL_ADDRESS",
    ]
    assert results[0] == {"id": open_ids[0], "success": True, "errors": []}
    assert results[3] == {
        "success": False,
        "errors": [
            {
                "statusCode": "MALFORMED_ID",
                "message": "Lead ID: id value of incorrect type: 001xx000003DGb2999",
                "fields": ["Id"],
            }
        ],
    }
    assert results[7]["id"] == open_ids[3]  # a 15-character id is accepted, the answer has 18
    after = _records(server, "Lead", include_deleted=True)
    changed = {i for i in after if after[i] != before[i]}
    assert changed == {open_ids[0], open_ids[3]}
    assert after[open_ids[3]]["Status"] == "Working - Contacted"
    assert after[open_ids[3]]["Title"] == "VP Sales"
    assert after[open_ids[0]]["Leadsync_Score__c"] == 40.0
    assert after[open_ids[0]]["LastModifiedById"] == server.org.integration_user_id


def test_collections_all_or_none_rolls_everything_back(sf_factory: Factory) -> None:
    server = sf_factory(leads=40, seed=9, custom_fields=SCORE_FIELD)
    sf = _client(server)
    ids = _open_leads(server)
    before = _records(server, "Lead")
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Lead"}, "id": ids[0], "Leadsync_Score__c": 1},
                {"attributes": {"type": "Lead"}, "id": ids[1], "Nope__c": 1},
                {"attributes": {"type": "Lead"}, "id": ids[2], "Leadsync_Score__c": 3},
            ],
        },
    )
    assert [r["success"] for r in results] == [False, False, False]
    assert [r["errors"][0]["statusCode"] for r in results] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "INVALID_FIELD",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    ]
    assert _records(server, "Lead") == before
    ok = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": True,
            "records": [{"attributes": {"type": "Lead"}, "id": i, "Leadsync_Score__c": 5} for i in ids[:3]],
        },
    )
    assert all(r["success"] for r in ok)


def test_collections_over_200_records_or_unbindable_values_fail_whole(sf_factory: Factory) -> None:
    server = sf_factory(leads=220, seed=10, custom_fields=SCORE_FIELD)
    sf = _client(server)
    ids = _open_leads(server)
    records = [{"attributes": {"type": "Lead"}, "id": i, "Leadsync_Score__c": 1} for i in ids[:201]]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="PATCH", json={"records": records})
    assert _code(caught.value) == "EXCEEDED_ID_LIMIT"
    before = _records(server, "Lead")
    for bad in ({"Leadsync_Score__c": "eighty"}, {"EmailBouncedDate": "yesterday"}, {"HasOptedOutOfEmail": "maybe"}):
        records = [{"attributes": {"type": "Lead"}, "id": ids[0], "Leadsync_Score__c": 2}]
        records.append({"attributes": {"type": "Lead"}, "id": ids[1], **bad})
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.restful("composite/sobjects", method="PATCH", json={"records": records})
        assert _code(caught.value) == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="PATCH", json={"records": [{"id": ids[0], "Title": "x"}]})
    assert _code(caught.value) == "INVALID_TYPE"
    assert _records(server, "Lead") == before
    exactly_200 = [{"attributes": {"type": "Lead"}, "id": i, "Leadsync_Score__c": 3} for i in ids[:200]]
    assert all(r["success"] for r in sf.restful("composite/sobjects", method="PATCH", json={"records": exactly_200}))


def test_single_record_get_patch_delete_and_converted_leads(sf_factory: Factory) -> None:
    server = sf_factory(leads=60, seed=11)
    sf = _client(server)
    ids = _open_leads(server)
    record = sf.Lead.get(ids[0])
    assert _strip(record) == server.org.record("Lead", ids[0])
    assert sf.Lead.update(ids[0], {"Title": "Head of RevOps", "NumberOfEmployees": "250"}) == 204
    stored = server.org.record("Lead", ids[0])
    assert stored is not None
    assert (stored["Title"], stored["NumberOfEmployees"]) == ("Head of RevOps", 250)
    assert stored["SystemModstamp"] == stored["LastModifiedDate"] > record["SystemModstamp"]
    converted = next(r for r in server.org.records("Lead") if r["IsConverted"])
    contact = server.org.record("Contact", converted["ConvertedContactId"])
    assert contact is not None and contact["Email"] == converted["Email"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.update(converted["Id"], {"Title": "x"})
    assert _code(caught.value) == "CANNOT_UPDATE_CONVERTED_LEAD"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.update(ids[1], {"Nope__c": 1})
    assert _code(caught.value) == "INVALID_FIELD"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.update(make_id("00Q", 5), {"Title": "x"})
    assert sf.Lead.delete(ids[2]) == 204
    with pytest.raises(SalesforceResourceNotFound) as caught_deleted:
        sf.Lead.update(ids[2], {"Title": "x"})
    assert _code(caught_deleted.value) == "ENTITY_IS_DELETED"
    created = sf.Lead.create({"LastName": "Nakamura", "Company": "Orbit Labs", "Email": "kenji@orbitlabs.io"})
    assert created["success"]
    new = server.org.record("Lead", created["id"])
    assert new is not None
    assert (new["Status"], new["Name"], new["OwnerId"]) == (
        "Open - Not Contacted",
        "Nakamura",
        server.org.integration_user_id,
    )
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.create({"FirstName": "No", "Company": "Last name"})
    assert _code(caught.value) == "REQUIRED_FIELD_MISSING"


def test_convert_lead_moves_activities_and_blocks_updates(sf_factory: Factory) -> None:
    server = sf_factory(leads=60, seed=12)
    org = server.org
    with_tasks = Counter(t["WhoId"] for t in org.records("Task"))
    lead_id = next(i for i in _open_leads(server) if with_tasks.get(i))
    contact_id, account_id = org.convert_lead(lead_id)
    lead = org.record("Lead", lead_id)
    assert lead is not None
    assert (lead["IsConverted"], lead["Status"], lead["ConvertedContactId"]) == (True, "Closed - Converted", contact_id)
    assert org.record("Contact", contact_id)["AccountId"] == account_id
    assert sum(1 for t in org.records("Task") if t["WhoId"] == contact_id) == with_tasks[lead_id]
    results = _client(server).restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Lead"}, "id": lead_id, "Title": "x"}]},
    )
    assert results[0]["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_validation_rules_fail_the_record(sf_factory: Factory) -> None:
    server = sf_factory(leads=20, seed=13, custom_fields=SCORE_FIELD)
    server.org.add_validation_rule(
        "Lead", "Score_Needs_Email", "Leadsync_Score__c > 50 AND Email = null", "A scored lead needs an email",
        error_field="Email",
    )  # fmt: skip
    first, second = [r["Id"] for r in server.org.records("Lead") if not r["IsConverted"] and r["Email"]][:2]
    records = [
        {"attributes": {"type": "Lead"}, "id": first, "Leadsync_Score__c": 80},
        {"attributes": {"type": "Lead"}, "id": second, "Leadsync_Score__c": 80, "Email": None},
        {"attributes": {"type": "Lead"}, "id": second, "Leadsync_Score__c": 20, "Email": None},
    ]
    results = _client(server).restful("composite/sobjects", method="PATCH", json={"records": records})
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"] == [
        {
            "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "A scored lead needs an email",
            "fields": ["Email"],
        }
    ]
    stored = server.org.record("Lead", second)
    assert stored is not None
    assert (stored["Leadsync_Score__c"], stored["Email"]) == (20.0, None)


# Bulk API 2.0 ----------------------------------------------------------------------------------------------


def test_bulk2_query_through_simple_salesforce(sandbox: SalesforceSandboxServer) -> None:
    sf = _client(sandbox)
    soql_text = "SELECT Id, Email, Company, NumberOfEmployees, IsConverted, SystemModstamp, Owner.Name FROM Lead"
    pages = list(sf.bulk2.Lead.query(soql_text, max_records=60, wait=0))
    assert len(pages) == 3  # 150 records in pages of 60
    rows: list[dict[str, str]] = []
    for page in pages:
        assert isinstance(page, str)
        assert page.startswith(
            '"Id","Email","Company","NumberOfEmployees","IsConverted","SystemModstamp","Owner.Name"\n'
        )
        rows.extend(csv.DictReader(io.StringIO(page)))
    users = _records(sandbox, "User")
    stored = _records(sandbox, "Lead")
    assert [r["Id"] for r in rows] == sorted(stored)
    for row in rows:
        lead = stored[row["Id"]]
        assert row["Email"] == (lead["Email"] or "")
        assert row["NumberOfEmployees"] == ("" if lead["NumberOfEmployees"] is None else str(lead["NumberOfEmployees"]))
        assert row["IsConverted"] == ("true" if lead["IsConverted"] else "false")
        assert row["SystemModstamp"] == lead["SystemModstamp"][:23] + "Z"
        assert row["Owner.Name"] == users[lead["OwnerId"]]["Name"]
    by_endpoint = sandbox.stats()["by_endpoint"]
    assert by_endpoint["POST /services/data/v{version}/jobs/query"] == 1
    assert by_endpoint["GET /services/data/v{version}/jobs/query/{job_id}/results"] == 3


def test_bulk2_job_lifecycle_headers_and_abort(sf_factory: Factory) -> None:
    server = sf_factory(leads=30, seed=14, bulk_job_delay_s=0.4)
    session = server.session()
    base = f"{server.url}/services/data/v59.0/jobs/query"
    auth = {"Authorization": f"Bearer {server.token}"}
    created = session.post(
        base, json={"operation": "query", "query": "SELECT Id, Title FROM Lead", "lineEnding": "CRLF"}, headers=auth
    ).json()
    assert created["state"] == "UploadComplete"
    assert created["id"].startswith("750")
    assert (created["contentType"], created["lineEnding"], created["columnDelimiter"]) == ("CSV", "CRLF", "COMMA")
    early = session.get(f"{base}/{created['id']}/results", headers=auth)
    assert early.status_code == 400
    time.sleep(0.25)
    assert session.get(f"{base}/{created['id']}", headers=auth).json()["state"] == "InProgress"
    time.sleep(0.2)
    info = session.get(f"{base}/{created['id']}", headers=auth).json()
    assert (info["state"], info["numberRecordsProcessed"]) == ("JobComplete", 30)
    page = session.get(f"{base}/{created['id']}/results", params={"maxRecords": 20}, headers=auth)
    assert page.headers["Content-Type"].startswith("text/csv")
    assert page.headers["Sforce-NumberOfRecords"] == "20"
    locator = page.headers["Sforce-Locator"]
    assert locator not in ("", "null")
    assert page.text.count("\r\n") == 21
    last = session.get(f"{base}/{created['id']}/results", params={"maxRecords": 20, "locator": locator}, headers=auth)
    assert (last.headers["Sforce-NumberOfRecords"], last.headers["Sforce-Locator"]) == ("10", "null")
    other_version = session.get(f"{server.url}/services/data/v58.0/jobs/query/{created['id']}/results", headers=auth)
    assert other_version.status_code == 409
    assert session.delete(f"{base}/{created['id']}", headers=auth).status_code == 204
    assert session.get(f"{base}/{created['id']}", headers=auth).status_code == 404
    pending = session.post(base, json={"operation": "queryAll", "query": "SELECT Id FROM Lead"}, headers=auth).json()
    aborted = session.patch(f"{base}/{pending['id']}", json={"state": "Aborted"}, headers=auth).json()
    assert aborted["state"] == "Aborted"
    bad = session.post(base, json={"operation": "query", "query": "SELECT Nope FROM Lead"}, headers=auth)
    assert (bad.status_code, bad.json()[0]["errorCode"]) == (400, "INVALID_FIELD")


# flows, platform events ------------------------------------------------------------------------------------


def test_flow_invocations_are_answered_and_recorded(sandbox: SalesforceSandboxServer) -> None:
    sf = _client(sandbox)
    lead_ids = _open_leads(sandbox)[:2]
    results = sf.restful(
        "actions/custom/flow/Leadsync_Qualified",
        method="POST",
        json={"inputs": [{"recordId": lead_ids[0], "score": 87}, {"recordId": lead_ids[1], "score": 91}]},
    )
    assert len(results) == 2
    for result in results:
        assert (result["actionName"], result["errors"], result["isSuccess"]) == ("Leadsync_Qualified", None, True)
        assert result["outputValues"]["Flow__InterviewStatus"] == "Finished"
    recorded = sandbox.org.flow_invocations()
    assert [(c["flow"], c["inputs"]) for c in recorded] == [
        ("Leadsync_Qualified", {"recordId": lead_ids[0], "score": 87}),
        ("Leadsync_Qualified", {"recordId": lead_ids[1], "score": 91}),
    ]
    served = sandbox.session().get(f"{sandbox.url}/__sandbox/flows", timeout=5).json()
    assert [c["inputs"]["recordId"] for c in served["invocations"]] == lead_ids
    assert sandbox.stats()["flow_invocations"] == 2
    assert [a["name"] for a in sf.restful("actions/custom/flow")["actions"]] == ["Leadsync_Qualified"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("actions/custom/flow/Nope", method="POST", json={"inputs": [{}]})
    sandbox.org.set_flow_error("Leadsync_Qualified", "Insufficient access")
    failed = sf.restful("actions/custom/flow/Leadsync_Qualified", method="POST", json={"inputs": [{"recordId": "x"}]})
    assert failed[0]["isSuccess"] is False
    assert failed[0]["errors"][0]["message"] == "Insufficient access"
    assert failed[0]["outputValues"]["Flow__InterviewStatus"] == "Error"


def test_platform_events_are_published_and_recorded(sandbox: SalesforceSandboxServer) -> None:
    sf = _client(sandbox)
    answer = sf.Leadsync_Qualified__e.create({"Lead_Id__c": "00Q000000000001", "Score__c": 88})
    assert answer["success"] is True
    assert answer["errors"] == []
    assert answer["id"].startswith("e00")
    assert [e["values"] for e in sandbox.org.published_events()] == [{"Lead_Id__c": "00Q000000000001", "Score__c": 88}]
    assert sandbox.stats()["platform_events"] == 1
    with pytest.raises(SalesforceMalformedRequest):
        sf.Leadsync_Qualified__e.create({"NotCustom": 1})
    with pytest.raises(SalesforceResourceNotFound):
        sf.Other_Event__e.create({"A__c": 1})


# faults, stats, determinism --------------------------------------------------------------------------------


def test_injected_faults_are_salesforce_errors_and_counted(sf_factory: Factory) -> None:
    server = sf_factory(leads=5, fault_rate=1.0, fault_kinds=("500", "503"))
    sf = server.client()
    for _ in range(4):
        with pytest.raises(SalesforceGeneralError) as caught:
            sf.query("SELECT Id FROM Lead")
        assert caught.value.status in (500, 503)
        assert _code(caught.value) in ("UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE")
    assert server.stats()["faults"] == 4
    dropping = sf_factory(leads=5, fault_rate=1.0, fault_kinds=("drop",))
    with pytest.raises(requests.exceptions.ConnectionError):
        dropping.client().query("SELECT Id FROM Lead")
    assert dropping.stats()["faults"] == 1
    server.sandbox.faults.rate = 0.0
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 5


def test_stats_shape_and_endpoint_templates(sandbox: SalesforceSandboxServer) -> None:
    sf = _client(sandbox)
    lead_id = _open_leads(sandbox)[0]
    sf.query("SELECT Id FROM Lead LIMIT 1")
    sf.Lead.get(lead_id)
    sf.Lead.describe()
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("nowhere")
    stats = json.loads(sandbox.session().get(f"{sandbox.url}/__sandbox/stats", timeout=5).text)
    assert set(stats) >= {"requests", "by_endpoint", "throttled", "faults"}
    assert stats["by_endpoint"] == {
        "GET /services/data/v{version}/query": 1,
        "GET /services/data/v{version}/sobjects/{sobject}/describe": 1,
        "GET /services/data/v{version}/sobjects/{sobject}/{record_id}": 1,
        "GET <unmatched>": 1,
        "POST /services/oauth2/token": 1,
    }
    assert stats["requests"] == 5


def test_same_seed_same_org_and_activities_follow_the_people(sf_factory: Factory) -> None:
    one = sf_factory(leads=40, contacts=20, seed=21)
    two = sf_factory(leads=40, contacts=20, seed=21)
    other = sf_factory(leads=40, contacts=20, seed=22)
    for sobject in ("Lead", "Contact", "Account", "Task", "Event", "CampaignMember", "User", "Campaign"):
        assert one.org.records(sobject) == two.org.records(sobject)
    assert [r["Email"] for r in one.org.records("Lead")] != [r["Email"] for r in other.org.records("Lead")]
    # activities are derived from the same synthetic people, whatever is read first
    people = generate_people(60, seed=21, now=SANDBOX_NOW)
    org = one.org
    by_email = {r["Email"]: r for r in org.records("Lead") if r["Email"]}
    contacts = _records(one, "Contact")
    tasks = Counter((t["WhoId"], t["TaskSubtype"]) for t in org.records("Task"))
    events = Counter(e["WhoId"] for e in org.records("Event"))
    assert org.count("Lead") == 40
    assert org.count("Contact") == 20 + sum(1 for p in people[:40] if p.converted)
    for person in people[:40]:
        lead = by_email.get(person.email) if person.email else None
        if lead is None:
            continue
        assert lead["IsConverted"] == person.converted
        assert lead["HasOptedOutOfEmail"] == person.opted_out
        who = lead["ConvertedContactId"] if person.converted else lead["Id"]
        if person.converted:
            assert contacts[who]["Email"] == person.email
            assert lead["Status"] == "Closed - Converted"
        assert tasks[(who, "Call")] == person.calls
        assert tasks[(who, "Email")] == person.email_replies
        assert events[who] == person.meetings
    for account_id in {c["AccountId"] for c in contacts.values() if c["AccountId"]}:
        assert org.record("Account", account_id) is not None


def test_ids_are_18_characters_with_a_valid_suffix(shared_sandbox: SalesforceSandboxServer) -> None:
    sandbox = shared_sandbox
    for sobject, prefix in (("Lead", "00Q"), ("Contact", "003"), ("Account", "001"), ("Task", "00T"), ("Event", "00U")):
        ids = sandbox.org.ids(sobject)
        assert ids, sobject
        for record_id in ids[:20]:
            assert len(record_id) == 18
            assert record_id.startswith(prefix)
            assert to_18(record_id[:15]) == record_id
    members = sandbox.org.records("CampaignMember")
    assert all(m["Id"].startswith("00v") and (m["LeadId"] or m["ContactId"]) for m in members)
    assert {m["Status"] for m in members} <= {"Sent", "Opened", "Clicked", "Responded"}
    assert all(m["HasResponded"] == (m["FirstRespondedDate"] is not None) for m in members)


def test_serve_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    """What ``leadsync sandbox salesforce`` runs: prints URL, token and CA path, stops cleanly on SIGTERM."""
    import signal
    import subprocess
    import sys

    ca_file = tmp_path / "ca.pem"
    code = (
        "from connectors.sandbox.salesforce import serve_salesforce_sandbox\n"
        f"serve_salesforce_sandbox(leads=12, contacts=3, seed=4, ca_file={str(ca_file)!r})\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        url = re.search(r"listening on (https://127\.0\.0\.1:\d+)", lines[0])
        assert url, lines
        assert "Token: sandbox-token" in lines[1]
        assert lines[2].strip() == f"CA certificate: {ca_file}"
        assert lines[3].startswith("12 leads, ")
        sf = Salesforce(instance_url=url.group(1), session_id="sandbox-token", session=ca_session(ca_file))
        assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 12
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
