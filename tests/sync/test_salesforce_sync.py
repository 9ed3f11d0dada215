"""End to end over real HTTPS: the Salesforce sandbox (trustme CA), simple-salesforce, the pipeline, a state store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

import connectors.salesforce as salesforce_module
from connectors._salesforce_auth import SalesforceAuth
from connectors.base import RecordUpdate, Window
from connectors.errors import AuthError, BudgetExhausted, FatalError, RequestRejected, RetriableError
from connectors.salesforce import SalesforceConnector, map_error
from connectors.sandbox.salesforce import SalesforceSandboxServer
from leadsync.app import build_app
from leadsync.config import parse_config
from sync.pipeline import SyncPipeline
from sync.state import StateStore

Factory = Callable[..., SalesforceSandboxServer]
FIELDS = [
    "Leadsync_Score__c",
    "Leadsync_Fit__c",
    "Leadsync_Engagement__c",
    "Leadsync_Grade__c",
    "Leadsync_Reasons__c",
    "Leadsync_Qualified_At__c",
    "Leadsync_Rules_Version__c",
]
STATUSES = ["Open - Not Contacted", "Working - Contacted", "Closed - Converted"]
COLLECTIONS = "PATCH /services/data/v{version}/composite/sobjects"
QUERY = "GET /services/data/v{version}/query"


@pytest.fixture
def sf_factory(salesforce_sandbox_factory: Factory) -> Factory:
    return salesforce_sandbox_factory


def sf_config(server: SalesforceSandboxServer, state: str, **salesforce: Any) -> dict[str, Any]:
    section = {
        "login_url": server.url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "ca_file": server.ca_pem_path,
        "max_retries": 10,
        "rate_limit_per_10s": 5000,  # exercises the optional limiter without slowing the tests
    } | salesforce
    return {"crm": "salesforce", "salesforce": section, "state": {"url": state}, "sync": {"settle_s": 0}}


def make_pipeline(server: SalesforceSandboxServer, state: str, **salesforce: Any) -> tuple[SyncPipeline, StateStore]:
    app = build_app(parse_config(sf_config(server, state, **salesforce), source="<test>"))
    store = app.store()
    pipe = app.pipeline(store)
    pipe.connector._retrying.wait.backoff.multiplier = 0.01  # type: ignore[union-attr]
    return pipe, store


def rows(
    server: SalesforceSandboxServer, sobject: str, fields: list[str], where: str = ""
) -> dict[str, dict[str, Any]]:
    """Records as a plain simple-salesforce client reads them (faults off)."""
    rate = server.sandbox.faults.rate
    server.sandbox.faults.rate = 0.0
    try:
        soql = f"SELECT Id, {', '.join(fields)} FROM {sobject} {where}"
        client = server.client(token=server.sandbox.issue_session())  # the fixed token may have been expired
        return {r["Id"]: dict(r) for r in client.query_all_iter(soql)}
    finally:
        server.sandbox.faults.rate = rate


@pytest.fixture
def org(sf_factory: Factory) -> SalesforceSandboxServer:
    return sf_factory(leads=300, contacts=200, seed=11)


@pytest.fixture
def pipeline(org: SalesforceSandboxServer, tmp_path: Path) -> Iterator[SyncPipeline]:
    pipe, store = make_pipeline(org, f"sqlite:///{tmp_path / 'state.db'}")
    yield pipe
    store.close()


def test_first_sync_scores_every_lead_and_contact_and_moves_status_forward(
    org: SalesforceSandboxServer, pipeline: SyncPipeline
) -> None:
    before = rows(org, "Lead", ["Status", "IsConverted"])
    summary = pipeline.run_once()
    leads = rows(org, "Lead", [*FIELDS, "Status", "IsConverted"])
    contacts = rows(org, "Contact", FIELDS)
    open_leads = {i: r for i, r in leads.items() if not r["IsConverted"]}

    assert summary.leads_read == summary.leads_written == len(open_leads) + len(contacts)
    assert summary.write_failures == 0 and summary.bad_values == 0
    for row in [*open_leads.values(), *contacts.values()]:
        assert 0 <= row["Leadsync_Score__c"] <= 100 and row["Leadsync_Grade__c"] in {"hot", "warm", "cold"}
        assert row["Leadsync_Rules_Version__c"] == pipeline.rules.version
    # converted leads are read-only and scored as their contact
    assert all(r["Leadsync_Score__c"] is None for r in leads.values() if r["IsConverted"])
    qualified = [i for i, r in open_leads.items() if r["Leadsync_Qualified_At__c"]]
    assert qualified
    for lead_id in qualified:
        old, new = before[lead_id]["Status"], leads[lead_id]["Status"]
        if old in STATUSES:
            assert STATUSES.index(new) == max(STATUSES.index(old), STATUSES.index("Working - Contacted"))
        else:
            assert new == old  # "Closed - Not Converted" and custom statuses are left to the humans
    for lead_id, row in open_leads.items():
        if lead_id not in qualified:
            assert row["Status"] == before[lead_id]["Status"]


def test_second_pass_writes_nothing_and_reads_incrementally(
    org: SalesforceSandboxServer, pipeline: SyncPipeline
) -> None:
    first = pipeline.run_once()
    patches = org.stats()["by_endpoint"].get(COLLECTIONS)
    second = pipeline.run_once()
    assert second.leads_written == 0 and second.leads_unchanged == second.leads_scored
    assert second.newly_qualified == 0
    assert org.stats()["by_endpoint"].get(COLLECTIONS) == patches
    assert second.api_calls < first.api_calls


def test_free_email_scores_lower_than_company_email(org: SalesforceSandboxServer, pipeline: SyncPipeline) -> None:
    base = {
        "FirstName": "Dana",
        "LastName": "Twin",
        "Title": "VP of Engineering",
        "Company": "Acme Robotics",
        "NumberOfEmployees": 800,
        "Country": "United States",
    }
    gmail = org.org.create_record("Lead", base | {"Email": "dana.twin@gmail.com"})
    company = org.org.create_record("Lead", base | {"Email": "dana.twin@acmerobotics.com"})
    pipeline.run_once()
    got = rows(org, "Lead", ["Leadsync_Score__c", "Leadsync_Reasons__c"], f"WHERE Id IN ('{gmail}', '{company}')")
    assert got[gmail]["Leadsync_Score__c"] < got[company]["Leadsync_Score__c"]
    assert "free" in got[gmail]["Leadsync_Reasons__c"].lower()


def test_converted_lead_is_scored_once_as_its_contact(org: SalesforceSandboxServer, pipeline: SyncPipeline) -> None:
    pipeline.run_once()
    lead_id = next(i for i, r in rows(org, "Lead", ["IsConverted"]).items() if not r["IsConverted"])
    contact_id, _ = org.org.convert_lead(lead_id)
    scored: list[str] = []
    original = pipeline.connector.write

    def spy(updates: Any) -> Any:
        scored.extend(u.id for u in updates)
        return original(updates)

    pipeline.connector.write = spy  # type: ignore[method-assign]
    pipeline.run_once()
    assert contact_id in scored and lead_id not in scored
    cached = {c.id for chunk in pipeline.store.iter_leads(chunk_size=1000) for c in chunk}
    assert contact_id in cached


def test_per_record_failures_are_kept_and_the_rest_lands(sf_factory: Factory, tmp_path: Path) -> None:
    server = sf_factory(leads=250, contacts=0, seed=4)
    victim = sorted(server.org.ids("Lead"))[17]
    pipe, store = make_pipeline(server, f"sqlite:///{tmp_path / 's.db'}")
    try:
        pipe.connector.ensure_properties(pipe.writeback.property_specs())
        server.org.add_validation_rule("Lead", "locked", f"Id = '{victim}'", "this lead is locked")
        summary = pipe.run_once()
        failures = store.failed_writes()
    finally:
        store.close()
    assert summary.write_failures == 1 and [f.lead_id for f in failures] == [victim]
    assert "locked" in failures[0].message and not failures[0].retriable
    assert summary.leads_written == summary.leads_read - 1


def test_whole_request_rejection_is_split_to_the_bad_record(org: SalesforceSandboxServer) -> None:
    conn = connector(org)
    ids = sorted(i for i, r in rows(org, "Lead", ["IsConverted"]).items() if not r["IsConverted"])[:150]
    updates = [RecordUpdate(i, "lead", {"Title": f"T {i}"}) for i in ids]
    updates[42] = RecordUpdate(ids[42], "lead", {"EmailBouncedDate": "last week"})  # cannot bind: 400 for all
    updates[7] = RecordUpdate(ids[7], "lead", {"NumberOfEmployees": "lots"})  # refused before sending
    result = conn.write(updates)
    assert sorted(f.id for f in result.failed) == sorted([ids[42], ids[7]]) and len(result.succeeded) == 148
    assert not any(f.retriable for f in result.failed)
    assert rows(org, "Lead", ["Title"], f"WHERE Id = '{ids[0]}'")[ids[0]]["Title"] == f"T {ids[0]}"


def connector(server: SalesforceSandboxServer, **options: Any) -> SalesforceConnector:
    auth = SalesforceAuth.from_settings(
        login_url=server.url, client_id=server.client_id, client_secret=server.client_secret
    )
    return SalesforceConnector(auth=auth, ca_file=server.ca_pem_path, **options)


def test_faults_at_20_percent_converge_with_one_flow_run_per_qualification(sf_factory: Factory, tmp_path: Path) -> None:
    anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    clean = sf_factory(leads=400, contacts=200, seed=21, now=anchor)
    faulty = sf_factory(leads=400, contacts=200, seed=21, now=anchor, fault_rate=0.2, slow_response_s=0.05)
    fixed_now = datetime.now(UTC)
    results: dict[str, Any] = {}
    flows: dict[str, list[str]] = {}
    held: dict[str, set[str]] = {}
    for name, server in (("clean", clean), ("faulty", faulty)):
        pipe, store = make_pipeline(
            server, f"sqlite:///{tmp_path / f'{name}.db'}", flow_api_name="Leadsync_Qualified", timeout_s=2
        )
        pipe.clock = lambda: fixed_now
        try:
            for _ in range(8):
                pipe.run_once()
                if not store.failed_writes() and not store.pending_triggers():
                    break
            else:
                raise AssertionError("not converged")
            unsure = [i for i in store.outbox_items(status="failed", limit=10_000) if i.last_error]
        finally:
            store.close()
        emails = {i: r["Email"] for i, r in rows(server, "Lead", ["Email"]).items()}
        emails |= {i: r["Email"] for i, r in rows(server, "Contact", ["Email"]).items()}
        held[name] = {emails[i.lead_id] for i in unsure if "not retried or sent again" in (i.last_error or "")}
        state = {}
        for sobject in ("Lead", "Contact"):
            for row in rows(server, sobject, [*FIELDS, "Email"]).values():
                state[row["Email"]] = {k: row[k] for k in FIELDS}
        results[name] = state
        flows[name] = sorted(emails[c["inputs"]["recordId"]] for c in server.org.flow_invocations())
    assert faulty.stats()["faults"] > 0
    assert results["faulty"] == results["clean"]
    assert flows["clean"] and not held["clean"]
    assert len(set(flows["faulty"])) == len(flows["faulty"])  # no qualification ran the Flow twice
    # a Flow call whose answer was lost after it may have run (a dropped connection) is not retried: it is held
    # for a person (it may or may not have run): every qualification ran the Flow once or is held, none lost
    assert set(flows["faulty"]) | held["faulty"] == set(flows["clean"])


def test_session_expiring_mid_sync_is_renewed_without_losing_or_repeating_writes(
    org: SalesforceSandboxServer, pipeline: SyncPipeline
) -> None:
    conn = pipeline.connector
    assert isinstance(conn, SalesforceConnector)
    original = conn._write_batch
    calls = {"n": 0}

    def expire_then_write(batch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # between two collection requests of the same pass
            org.sandbox.expire_sessions()
        return original(batch)

    conn._write_batch = expire_then_write  # type: ignore[method-assign]
    summary = pipeline.run_once()
    assert conn.renewals == 1 and org.stats()["sessions_issued"] == 2
    assert summary.write_failures == 0 and summary.leads_written == summary.leads_read
    scored = rows(org, "Lead", ["Leadsync_Score__c"], "WHERE IsConverted = false")
    assert all(r["Leadsync_Score__c"] is not None for r in scored.values())
    # each record written once: one rejected request (401) beyond one PATCH per 200 records
    pages = org.stats()["by_endpoint"][COLLECTIONS]
    assert summary.leads_written / 200 <= pages - 1 <= summary.leads_written / 200 + 2


def test_a_second_401_with_a_fresh_session_is_a_clear_auth_error(org: SalesforceSandboxServer) -> None:
    conn = connector(org)
    conn.fields("Lead")
    org.sandbox.session_valid = lambda token: False  # type: ignore[method-assign]
    conn._describe.clear()
    with pytest.raises(AuthError, match="freshly issued session"):
        conn.fields("Lead")


def test_plain_access_token_quick_start_and_its_expiry(org: SalesforceSandboxServer) -> None:
    auth = SalesforceAuth.from_settings(login_url=org.url, instance_url=org.url, access_token=org.token)
    conn = SalesforceConnector(auth=auth, ca_file=org.ca_pem_path)
    seen: list[tuple[str, int | None]] = []
    conn.on_call(lambda label, status: seen.append((label, status)))
    assert "Email" in conn.describe()
    assert ("GET /services/data/v{version}/sobjects/Lead/describe", 200) in seen
    assert conn.daily_remaining is not None and 0 < conn.daily_remaining < 100_000
    org.sandbox.expire_sessions()
    conn._describe.clear()
    with pytest.raises(AuthError, match="fixed access_token"):
        conn.describe()


def test_bulk_api_is_used_for_full_syncs_above_the_threshold(sf_factory: Factory) -> None:
    server = sf_factory(leads=600, contacts=100, seed=3)
    conn = connector(server, bulk_threshold=500, read_activities=False)
    pages = list(conn.read_records(Window(None, datetime.now(UTC)), ["Email", "Status"]))
    by_type: dict[str, set[str]] = {}
    for page in pages:
        for r in page:
            by_type.setdefault(r.object_type, set()).add(r.id)
    open_leads = {i for i, r in rows(server, "Lead", ["IsConverted"]).items() if not r["IsConverted"]}
    assert by_type["lead"] == open_leads and len(by_type["contact"]) == len(rows(server, "Contact", ["Email"]))
    endpoints = server.stats()["by_endpoint"]
    assert endpoints.get("POST /services/data/v{version}/jobs/query") == 1  # leads only: contacts are few


def test_activities_become_canonical_kinds(org: SalesforceSandboxServer) -> None:
    conn = connector(org)
    page = next(iter(conn.read_records(Window(None, datetime.now(UTC)), ["Email"])))
    activities = conn.read_activities(page)
    kinds = {a.kind for items in activities.values() for a in items}
    assert kinds and kinds <= {
        "call",
        "email_sent",
        "meeting",
        "task",
        "campaign_response",
        "email_open",
        "email_click",
    }
    assert set(activities) <= {r.id for r in page}


def test_budget_guard_stops_cleanly(sf_factory: Factory, tmp_path: Path) -> None:
    server = sf_factory(leads=300, contacts=0, seed=2, daily_limit=40)
    pipe, store = make_pipeline(server, f"sqlite:///{tmp_path / 's.db'}", daily_reserve=0.5)
    try:
        with pytest.raises(BudgetExhausted, match="budget guard"):
            pipe.run_once()
        run = store.last_runs(1)[0]
        watermark = store.get_watermark(pipe.stream)
    finally:
        store.close()
    assert run.status == "stopped" and watermark is None
    assert server.sandbox.api_usage <= 21


def test_missing_fields_are_listed_when_the_org_refuses_to_create_them(
    org: SalesforceSandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = connector(org)

    def refuse(sf: Any, payload: Any) -> Any:
        body = [{"errorCode": "INSUFFICIENT_ACCESS", "message": "insufficient access rights"}]
        raise SalesforceRefusedRequest(f"{org.url}/tooling", 403, "CustomField", body)

    monkeypatch.setattr(salesforce_module, "_create_field", refuse)
    specs = build_app(parse_config(sf_config(org, "sqlite://"))).writeback.property_specs()
    with pytest.raises(FatalError, match=r"Lead\.Leadsync_Score__c.*Contact\.Leadsync_Rules_Version__c"):
        conn.ensure_properties(specs)
    assert len(conn.missing_properties(specs)) == 14


def test_new_activities_between_passes_are_picked_up(org: SalesforceSandboxServer, pipeline: SyncPipeline) -> None:
    from leadsync.demo import simulate_salesforce_engagement

    pipeline.run_once()
    before = rows(org, "Lead", ["Leadsync_Score__c"], "WHERE IsConverted = false")
    engaged = simulate_salesforce_engagement(org.org, 0.1, seed=3)
    summary = pipeline.run_once()
    after = rows(org, "Lead", ["Leadsync_Score__c"], "WHERE IsConverted = false")
    raised = [i for i in after if after[i]["Leadsync_Score__c"] > before[i]["Leadsync_Score__c"]]
    assert engaged and raised and summary.leads_written >= len(raised)


def test_fresh_state_over_a_scored_org_rewrites_nothing_twice(sf_factory: Factory, tmp_path: Path) -> None:
    server = sf_factory(leads=2500, contacts=0, seed=8)
    first, store = make_pipeline(server, f"sqlite:///{tmp_path / 'a.db'}")
    first.run_once()
    store.close()
    # a new state store (and Bulk API reads) over values an earlier installation wrote
    again, store = make_pipeline(server, f"sqlite:///{tmp_path / 'b.db'}", bulk_threshold=1000)
    try:
        full = again.run_once(full=True)
        assert full.leads_written <= full.qualified  # only qualified_at differs: this store never saw them qualify
        assert again.run_once().leads_written == 0
    finally:
        store.close()


def test_jwt_bearer_login_signs_with_the_private_key(sf_factory: Factory, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(pem)
    server = sf_factory(leads=20, seed=1, jwt_public_key=public)
    config = sf_config(server, f"sqlite:///{tmp_path / 's.db'}")
    config["salesforce"] = {
        "login_url": server.url,
        "client_id": server.client_id,
        "username": "integration@example.com",
        "private_key_file": str(tmp_path / "key.pem"),
        "ca_file": server.ca_pem_path,
    }
    app = build_app(parse_config(config))
    conn = app.connector()
    assert isinstance(conn, SalesforceConnector) and conn.auth.mode == "jwt"
    assert "Email" in conn.describe() and server.stats()["sessions_issued"] == 1
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "key.pem").write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(AuthError, match="invalid_grant"):
        app.connector().describe()


def test_writeback_names_follow_each_crm_scheme() -> None:
    from sync.writeback import WritebackSettings

    assert WritebackSettings().name("qualified_at") == "leadsync_qualified_at"
    names = [s.name for s in WritebackSettings(style="salesforce").property_specs()]
    assert names == FIELDS


@pytest.mark.parametrize(
    ("exc", "expected", "match"),
    [
        (
            SalesforceRefusedRequest("u", 403, "q", [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "x"}]),
            RetriableError,
            "REQUEST_LIMIT_EXCEEDED",
        ),
        (
            SalesforceRefusedRequest("u", 403, "q", [{"errorCode": "INSUFFICIENT_ACCESS", "message": "no"}]),
            AuthError,
            "INSUFFICIENT_ACCESS",
        ),
        (
            SalesforceMalformedRequest("u", 400, "q", [{"errorCode": "MALFORMED_QUERY", "message": "bad"}]),
            RequestRejected,
            "MALFORMED_QUERY",
        ),
        (
            SalesforceResourceNotFound("u", 404, "q", [{"errorCode": "NOT_FOUND", "message": "gone"}]),
            RequestRejected,
            "NOT_FOUND",
        ),
        (SalesforceGeneralError("u", 503, "q", "unavailable"), RetriableError, "503"),
        (
            SalesforceExpiredSession("u", 401, "q", [{"errorCode": "INVALID_SESSION_ID", "message": "x"}]),
            AuthError,
            "expired",
        ),
        (requests.ConnectionError("reset"), RetriableError, "unreachable"),
    ],
)
def test_error_table(exc: Exception, expected: type[Exception], match: str) -> None:
    mapped = map_error(exc)
    assert type(mapped) is expected and match in str(mapped)


def test_a_rules_change_writes_200_per_collection_across_the_whole_pass(sf_factory: Factory, tmp_path: Path) -> None:
    """The cache is rescored 500 leads at a time; the changed scores still go out in full collections."""
    org = sf_factory(leads=1100, contacts=0, seed=23)
    state = f"sqlite:///{tmp_path / 's.db'}"
    pipe, store = make_pipeline(org, state, read_activities=False)
    try:
        pipe.run_once()
    finally:
        store.close()
    changed = sf_config(org, state, read_activities=False) | {"scoring": {"grades": {"hot": 65, "warm": 35}}}
    app = build_app(parse_config(changed, source="<test>"))
    store = app.store()
    pipe = app.pipeline(store)
    before = org.stats()["by_endpoint"].get(COLLECTIONS, 0)
    try:
        summary = pipe.run_once()
    finally:
        store.close()
    sent = org.stats()["by_endpoint"].get(COLLECTIONS, 0) - before
    assert summary.leads_rescored == summary.leads_written == 1100  # the rules version is written too
    assert sent == 6  # 1,100 / 200, not 3 + 3 + 1 for the 500-lead chunks
    limit = summary.rate_limit
    assert limit is not None and limit["daily_source"] == "Sforce-Limit-Info"
    assert limit["daily_limit"] > limit["daily_remaining"] > 0
