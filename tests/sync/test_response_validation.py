"""Issue 19: answers are checked before they are trusted, and timeout_s bounds a whole request.

A corrupt or HTML page with status 200 must never end a pass as if the portal had been read: it is retried,
and when it persists the pass fails (exit 3 from the CLI) without moving the watermark. A body trickled a
few bytes a second is cut off at timeout_s. Records without an id are skipped and counted, never written.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import connectors.salesforce as salesforce_module
from connectors.errors import MalformedResponse, RetriableError
from connectors.salesforce import _bulk_rows
from connectors.sandbox._server import GATEWAY_PAGE
from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.salesforce import SalesforceSandboxServer
from sync.pipeline import SyncPipeline
from sync.state import StateStore
from tests.sync.test_hubspot_robustness import pipeline_for
from tests.sync.test_hubspot_sync import all_contacts
from tests.sync.test_salesforce_sync import make_pipeline, rows

Factory = Callable[..., HubSpotSandboxServer]
SfFactory = Callable[..., SalesforceSandboxServer]
LIST = "GET /crm/v3/objects/contacts"
SEARCH = "POST /crm/v3/objects/contacts/search"
ACTIVITY_READ = "POST /crm/v3/objects/{objectType}/batch/read"


def _pipeline(server: HubSpotSandboxServer, tmp_path: Path, **hubspot: Any) -> tuple[SyncPipeline, StateStore]:
    pipe, store = pipeline_for(server, tmp_path / "s.db", hubspot={"max_retries": 3} | hubspot)
    pipe.connector._retrying.wait.backoff.multiplier = 0.01  # type: ignore[attr-defined]
    return pipe, store


def _unscored(server: HubSpotSandboxServer) -> list[str]:
    return [i for i, row in all_contacts(server, ["leadsync_score"]).items() if not row.get("leadsync_score")]


@pytest.mark.parametrize("kind", ["corrupt", "html"])
def test_a_transient_bad_page_is_retried_and_the_pass_reads_everyone(
    hubspot_sandbox_factory: Factory, tmp_path: Path, kind: str
) -> None:
    server = hubspot_sandbox_factory(contacts=300, seed=5)
    pipe, store = _pipeline(server, tmp_path)
    calls: list[tuple[str, int | None]] = []
    pipe.connector.on_call(lambda label, status: calls.append((label, status)))  # type: ignore[attr-defined]
    rule = server.sandbox.faults.schedule(kind, LIST, nth=2)
    try:
        summary = pipe.run_once(full=True)
        run = store.last_runs(1)[0]
    finally:
        store.close()
    assert rule.fired == 1
    assert summary.leads_read == 300 and run.status == "ok"
    assert calls.count((LIST, None)) == 1  # the bad answer is counted, as no usable answer
    assert _unscored(server) == []


def test_a_persistently_corrupt_page_fails_the_pass_and_keeps_the_watermark(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=300, seed=5)
    pipe, store = _pipeline(server, tmp_path)
    pipe.batch_size = 100  # commit page by page: what was read stays, the watermark still does not move
    server.sandbox.faults.schedule("corrupt", LIST, nth=2, times=None)
    try:
        with pytest.raises(MalformedResponse, match=r"GET /crm/v3/objects/contacts: answered 200 with malformed JSON"):
            pipe.run_once(full=True)
        failed = store.last_runs(1)[0]
        assert store.get_watermark(pipe.stream) is None
        assert failed.status == "failed" and "malformed JSON" in (failed.error or "")
        assert failed.summary["leads_read"] == 100  # the first page was read and committed, no more
        server.sandbox.faults.clear_schedule()
        clean = pipe.run_once()  # an ordinary pass: no watermark yet, so it reads everything
    finally:
        store.close()
    assert clean.leads_read == 300
    assert _unscored(server) == []


def test_a_corrupt_search_page_does_not_move_the_watermark_past_unread_records(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=450, seed=6, now=None)
    pipe, store = _pipeline(server, tmp_path)
    try:
        pipe.run_once()
        before = store.get_watermark(pipe.stream)
        assert before is not None
        # a bulk edit after the pass's window closed (not a fixed second ago: a fast first pass ends within it)
        server.portal.bulk_stamp(at=max(datetime.now(UTC), before + timedelta(milliseconds=1)))
        time.sleep(0.01)  # the next pass's window ends after the edit
        server.sandbox.faults.schedule("html", SEARCH, nth=2, times=None)
        with pytest.raises(MalformedResponse, match="text/html"):
            pipe.run_once()
        assert store.get_watermark(pipe.stream) == before
        server.sandbox.faults.clear_schedule()
        again = pipe.run_once()
        after = store.get_watermark(pipe.stream)
    finally:
        store.close()
    assert again.leads_read == 450
    assert after is not None and after > before


def test_a_corrupt_activity_batch_is_retried(hubspot_sandbox_factory: Factory, tmp_path: Path) -> None:
    server = hubspot_sandbox_factory(contacts=200, seed=8)
    pipe, store = _pipeline(server, tmp_path)
    rule = server.sandbox.faults.schedule("corrupt", ACTIVITY_READ, nth=1)
    try:
        summary = pipe.run_once(full=True)
    finally:
        store.close()
    assert rule.fired == 1 and summary.leads_read == 200
    assert _unscored(server) == []


def test_a_drip_fed_page_is_cut_off_at_timeout_s(hubspot_sandbox_factory: Factory, tmp_path: Path) -> None:
    server = hubspot_sandbox_factory(contacts=200, seed=5)
    pipe, store = _pipeline(server, tmp_path, timeout_s=0.5, max_retries=1)
    server.sandbox.faults.schedule("drip", LIST, nth=2, times=None)  # ~13 KB at 64 bytes/s: minutes a page
    started = time.monotonic()
    try:
        with pytest.raises(RetriableError, match=r"no complete answer within hubspot.timeout_s=0.5s"):
            pipe.run_once(full=True)
        elapsed = time.monotonic() - started
        assert store.last_runs(1)[0].status == "failed" and store.get_watermark(pipe.stream) is None
    finally:
        store.close()
    assert elapsed < 10  # two attempts of 0.5 s, not two of 200 s


class _NullIdProxy:
    """A hostile proxy in front of the sandbox: contact pages pass with some ids nulled or emptied."""

    def __init__(self, upstream: str, spoil: dict[int, Any]) -> None:
        self.upstream = upstream
        self.spoil = spoil
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.writes: list[Any] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        body = request.get_data()
        if request.path.endswith("/batch/update"):
            self.writes.extend(i["id"] for i in json.loads(body)["inputs"])
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        answer = requests.request(
            request.method, self.upstream + request.full_path, data=body, headers=headers, timeout=30
        )
        content = answer.content
        if request.method == "GET" and request.path == "/crm/v3/objects/contacts" and "after" not in request.args:
            page = json.loads(content)
            for index, value in self.spoil.items():
                page["results"][index]["id"] = value
            content = json.dumps(page).encode()
        response = Response(content, status=answer.status_code, content_type=answer.headers.get("Content-Type"))
        return response(environ, start_response)

    def __enter__(self) -> _NullIdProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def null_id_proxy(hubspot_sandbox_factory: Factory) -> Iterator[tuple[HubSpotSandboxServer, _NullIdProxy]]:
    server = hubspot_sandbox_factory(contacts=150, seed=4)
    with _NullIdProxy(server.url, {0: None, 1: "", 2: "  "}) as proxy:
        yield server, proxy


def test_contacts_without_an_id_are_skipped_and_counted_never_written(
    null_id_proxy: tuple[HubSpotSandboxServer, _NullIdProxy], tmp_path: Path
) -> None:
    server, proxy = null_id_proxy
    pipe, store = pipeline_for(server, tmp_path / "s.db", hubspot={"base_url": proxy.url, "read_activities": False})
    try:
        summary = pipe.run_once(full=True)
        run = store.last_runs(1)[0]
        cached = {c.id for chunk in store.iter_leads() for c in chunk}
    finally:
        store.close()
    assert summary.bad_records == 3 and run.summary["bad_records"] == 3
    assert summary.leads_read == 147 and summary.write_failures == 0
    assert proxy.writes and all(i and i.strip() and i != "None" for i in proxy.writes)
    assert len(cached) == 147 and not {"", "None"} & cached


# Salesforce: SOQL pages and Bulk API results ------------------------------------------------------------

QUERY_MORE = "GET /services/data/v{version}/query/{cursor}"
BULK_RESULTS = "GET /services/data/v{version}/jobs/query/{job_id}/results"


@pytest.fixture
def sf_orgs(salesforce_sandbox_factory: SfFactory) -> SfFactory:
    return salesforce_sandbox_factory


@pytest.fixture
def small_soql_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """SOQL pages of 200 (the smallest batchSize), so that a small org needs several pages."""
    monkeypatch.setattr(salesforce_module, "QUERY_PAGE_SIZE", 200)


def _sf_pipeline(server: SalesforceSandboxServer, tmp_path: Path, **salesforce: Any) -> tuple[SyncPipeline, StateStore]:
    options = {"max_retries": 3, "read_activities": False} | salesforce
    return make_pipeline(server, f"sqlite:///{tmp_path / 'sf.db'}", **options)


def _sf_people(server: SalesforceSandboxServer) -> int:
    """Open leads and contacts: what a full pass reads."""
    return len(rows(server, "Lead", ["IsConverted"], "WHERE IsConverted = false")) + len(
        rows(server, "Contact", ["Email"])
    )


def _sf_unscored(server: SalesforceSandboxServer) -> list[str]:
    leads = rows(server, "Lead", ["Leadsync_Score__c"], "WHERE IsConverted = false")
    contacts = rows(server, "Contact", ["Leadsync_Score__c"])
    return [i for i, r in (leads | contacts).items() if r["Leadsync_Score__c"] is None]


@pytest.mark.parametrize("kind", ["corrupt", "html"])
@pytest.mark.usefixtures("small_soql_pages")
def test_salesforce_transient_bad_soql_page_is_retried(sf_orgs: SfFactory, tmp_path: Path, kind: str) -> None:
    server = sf_orgs(leads=300, contacts=250, seed=11)
    pipe, store = _sf_pipeline(server, tmp_path)
    rule = server.sandbox.faults.schedule(kind, QUERY_MORE, nth=1)
    try:
        summary = pipe.run_once(full=True)
    finally:
        store.close()
    assert rule.fired == 1
    assert summary.leads_read == _sf_people(server)
    assert _sf_unscored(server) == []


@pytest.mark.usefixtures("small_soql_pages")
def test_salesforce_persistently_corrupt_soql_page_fails_the_pass_then_a_clean_one_scores_everyone(
    sf_orgs: SfFactory, tmp_path: Path
) -> None:
    server = sf_orgs(leads=300, contacts=250, seed=11)
    pipe, store = _sf_pipeline(server, tmp_path)
    server.sandbox.faults.schedule("corrupt", QUERY_MORE, nth=1, times=None)
    try:
        with pytest.raises(MalformedResponse, match="malformed JSON"):
            pipe.run_once(full=True)
        assert store.last_runs(1)[0].status == "failed"
        assert store.get_watermark(pipe.stream) is None
        server.sandbox.faults.clear_schedule()
        pipe.run_once()
    finally:
        store.close()
    assert _sf_unscored(server) == []


def test_salesforce_truncated_bulk_results_are_refetched(sf_orgs: SfFactory, tmp_path: Path) -> None:
    server = sf_orgs(leads=400, contacts=50, seed=3)
    pipe, store = _sf_pipeline(server, tmp_path, bulk_threshold=100)
    pipe.connector.bulk_poll_s = 0.05  # type: ignore[attr-defined]
    rule = server.sandbox.faults.schedule("corrupt", BULK_RESULTS, nth=1)
    try:
        summary = pipe.run_once(full=True)
    finally:
        store.close()
    assert rule.fired == 1
    assert server.stats()["by_endpoint"]["POST /services/data/v{version}/jobs/query"] == 3  # Lead, Contact, Lead again
    assert summary.leads_read == _sf_people(server)
    assert _sf_unscored(server) == []


def test_salesforce_bulk_rows_are_checked_whole() -> None:
    good = "Id,Email\n00Q1,a@x.io\n00Q2,b@x.io\n"
    assert [r["Id"] for r in _bulk_rows("Lead", good, 2)] == ["00Q1", "00Q2"]
    for text, expected, problem in (
        (good[: good.rindex(",")], 2, "cut short"),  # truncated mid-row
        (good.rsplit("\n", 2)[0] + "\n", 2, "1 rows, 2 announced"),  # truncated at a row boundary
        (GATEWAY_PAGE.decode(), None, "no Id column"),
    ):
        with pytest.raises(MalformedResponse, match=problem):
            _bulk_rows("Lead", text, expected)


@pytest.mark.usefixtures("small_soql_pages")
def test_salesforce_drip_fed_page_is_cut_off_at_timeout_s(sf_orgs: SfFactory, tmp_path: Path) -> None:
    server = sf_orgs(leads=300, contacts=0, seed=11)
    pipe, store = _sf_pipeline(server, tmp_path, timeout_s=0.5, max_retries=1)
    server.sandbox.faults.schedule("drip", QUERY_MORE, nth=1, times=None)
    started = time.monotonic()
    try:
        with pytest.raises(RetriableError, match=r"no complete answer within salesforce.timeout_s=0.5s"):
            pipe.run_once(full=True)
        assert store.get_watermark(pipe.stream) is None
    finally:
        store.close()
    assert time.monotonic() - started < 15  # two attempts of 0.5 s (plus login and describe), not minutes


def test_a_drip_fed_workflow_enrollment_is_cut_off_at_timeout_s(hubspot_sandbox_factory: Factory) -> None:
    # the legacy enrollment endpoints have no SDK API class; they must honour timeout_s all the same
    from connectors.hubspot import HubSpotConnector

    server = hubspot_sandbox_factory(contacts=5, seed=5)
    contact_id = server.portal.contact_ids()[0]
    email = server.portal.contact(contact_id)["email"]
    connector = HubSpotConnector(
        access_token=server.token, base_url=server.url, workflow_id=77, timeout_s=0.5, max_retries=1
    )
    enroll = "POST /automation/v2/workflows/{workflowId}/enrollments/contacts/{email}"
    server.sandbox.faults.slow_s = 60  # an answer that takes a minute (the bodies here are too small to drip)
    server.sandbox.faults.schedule("slow", enroll, nth=1, times=None)
    server.sandbox.faults.schedule("slow", "GET /automation/v2/workflows/enrollments/contacts/{vid}", nth=1, times=None)
    started = time.monotonic()
    with pytest.raises(RetriableError):
        connector.trigger(contact_id, email)
    assert time.monotonic() - started < 10  # attempts of 0.5 s each, not a body trickled for minutes
    server.sandbox.faults.clear_schedule()
    connector.trigger(contact_id, email)  # the same call lands once the answers come whole
    assert [e["email"] for e in server.portal.enrollments()] == [email]


def test_a_huge_property_value_is_cut_in_the_cache_and_counted(
    hubspot_sandbox_factory: Factory, tmp_path: Path
) -> None:
    server = hubspot_sandbox_factory(contacts=20, seed=5)
    victim = server.portal.contact_ids()[0]
    contact = server.portal._get(victim)
    assert contact is not None
    contact.properties["jobtitle"] = "VP " + "x" * 2_000_000  # what a broken integration left in the portal
    pipe, store = _pipeline(server, tmp_path)
    try:
        summary = pipe.run_once(full=True)
        cached = {lead.id: lead for chunk in store.iter_leads() for lead in chunk}
    finally:
        store.close()
    assert summary.values_truncated == 1 and summary.leads_scored == 20
    assert len(cached[victim].properties["jobtitle"]) == 65_536
