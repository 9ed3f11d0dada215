"""The shared fault layer (connectors.sandbox._server): scheduled faults and the body faults, over real HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import requests
from typer.testing import CliRunner

from connectors.sandbox._server import (
    ALL_FAULT_KINDS,
    GATEWAY_PAGE,
    UNKNOWN_OPTION,
    FaultInjector,
    FaultRule,
    parse_fault_kinds,
    parse_fault_rule,
)
from connectors.sandbox.hubspot import HubSpotSandboxServer
from connectors.sandbox.salesforce import SalesforceSandboxServer
from leadsync.cli import app as cli_app

Factory = Callable[..., HubSpotSandboxServer]
CONTACTS = "GET /crm/v3/objects/contacts"


def _get(server: HubSpotSandboxServer, path: str = "/crm/v3/objects/contacts?limit=20") -> requests.Response:
    return requests.get(server.url + path, headers={"Authorization": f"Bearer {server.token}"}, timeout=30)


def test_the_nth_request_to_one_endpoint_gets_the_scheduled_fault(hubspot_sandbox_factory: Factory) -> None:
    server = hubspot_sandbox_factory(contacts=30, seed=1)
    rule = server.sandbox.faults.schedule("503", CONTACTS, nth=2, times=2)
    other = _get(server, "/crm/v3/properties/contacts")  # another endpoint: not counted by the rule
    statuses = [_get(server).status_code for _ in range(5)]
    assert other.status_code == 200
    assert statuses == [200, 503, 503, 200, 200]
    assert rule.fired == 2 and server.stats()["faults"] == 2


def test_a_persistent_rule_faults_every_request_from_the_nth_on(hubspot_sandbox_factory: Factory) -> None:
    server = hubspot_sandbox_factory(contacts=30, seed=1)
    server.sandbox.faults.schedule(parse_fault_rule(f"html:3+:{CONTACTS}"))
    kinds = [_get(server).headers["Content-Type"].split(";")[0] for _ in range(5)]
    assert kinds == ["application/json"] * 2 + ["text/html"] * 3
    server.sandbox.faults.clear_schedule()
    assert _get(server).headers["Content-Type"].startswith("application/json")


def test_corrupt_is_the_real_body_truncated_with_status_200(hubspot_sandbox_factory: Factory) -> None:
    server = hubspot_sandbox_factory(contacts=30, seed=1)
    clean = _get(server)
    server.sandbox.faults.schedule("corrupt", CONTACTS)
    corrupt = _get(server)
    assert corrupt.status_code == 200 and corrupt.headers["Content-Type"].startswith("application/json")
    assert 0 < len(corrupt.content) < len(clean.content) and clean.content.startswith(corrupt.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(corrupt.content)


def test_html_is_a_gateway_page_with_status_200(hubspot_sandbox_factory: Factory) -> None:
    server = hubspot_sandbox_factory(contacts=30, seed=1, fault_rate=1.0, fault_kinds=("html",))
    page = _get(server)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.content == GATEWAY_PAGE


def _raw_get(server: HubSpotSandboxServer) -> tuple[bytes, bytes, int]:
    """(head, body, number of socket reads) of one GET over a bare socket: no client-side buffering."""
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        request = (
            f"GET /crm/v3/objects/contacts?limit=20 HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {server.token}\r\n\r\n"
        )
        sock.sendall(request.encode())
        received, reads = b"", 0
        while chunk := sock.recv(65536):
            received += chunk
            reads += 1
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body, reads


def test_drip_sends_the_correct_body_slowly(hubspot_sandbox_factory: Factory) -> None:
    server = hubspot_sandbox_factory(contacts=30, seed=1)
    _, clean, _ = _raw_get(server)
    server.sandbox.faults.drip_bytes_per_s = 8 * 1024
    server.sandbox.faults.schedule("drip", CONTACTS)
    started = time.monotonic()
    head, body, reads = _raw_get(server)
    elapsed = time.monotonic() - started
    assert f"Content-Length: {len(clean)}".encode() in head  # the full length is announced up front
    assert body == clean  # the answer is right, only slow
    assert reads > 2 and elapsed >= 0.5 * (len(clean) - 64) / (8 * 1024)


def test_drip_ends_when_the_server_stops(hubspot_sandbox_factory: Factory) -> None:
    server = hubspot_sandbox_factory(contacts=30, seed=1, fault_rate=1.0, fault_kinds=("drip",))
    server.sandbox.faults.drip_bytes_per_s = 1.0
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(f"GET /crm/v3/objects/contacts HTTP/1.1\r\nAuthorization: Bearer {server.token}\r\n\r\n".encode())
        assert sock.recv(65536)  # headers (and the first bytes) arrived: the rest trickles
        started = time.monotonic()
        server.stop(timeout=5)
        assert time.monotonic() - started < 5


def test_stall_sends_half_the_body_then_nothing_until_the_server_stops(hubspot_sandbox_factory: Factory) -> None:
    server = hubspot_sandbox_factory(contacts=30, seed=1)
    _, clean, _ = _raw_get(server)
    server.sandbox.faults.schedule("stall", CONTACTS)
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        request = f"GET /crm/v3/objects/contacts?limit=20 HTTP/1.1\r\nAuthorization: Bearer {server.token}\r\n\r\n"
        sock.sendall(request.encode())
        received = b""
        while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < len(clean) // 2:
            received += sock.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        assert f"Content-Length: {len(clean)}".encode() in head and body == clean[: len(clean) // 2]
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # silence: the rest never comes
        started = time.monotonic()
        server.stop(timeout=5)  # the stall ends with the server, the connection closes without the rest
        assert time.monotonic() - started < 5
        sock.settimeout(5)
        assert sock.recv(65536) == b""


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("huge", lambda r: len(r["properties"].get("jobtitle") or "") == 1024 * 1024),
        ("enum", lambda r: r["properties"].get("numemployees") == UNKNOWN_OPTION),
        ("idtype", lambda r: isinstance(r["id"], int)),
    ],
)
def test_hubspot_record_faults_spoil_the_first_record_of_a_well_formed_page(
    hubspot_sandbox_factory: Factory, kind: str, check: Callable[[dict[str, object]], bool]
) -> None:
    server = hubspot_sandbox_factory(contacts=30, seed=1)
    server.sandbox.faults.huge_value_bytes = 1024 * 1024
    clean = _get(server).json()["results"]
    server.sandbox.faults.schedule(kind, CONTACTS)
    spoiled = _get(server).json()["results"]  # still JSON of the documented shape
    assert check(spoiled[0]) and not check(clean[0])
    assert spoiled[1:] == clean[1:] and server.sandbox.faults.spoiled == [(kind, clean[0]["id"])]
    assert server.stats()["faults"] == 1


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("huge", lambda r: len(r["Title"]) == 1024 * 1024),
        ("enum", lambda r: r["Status"] == UNKNOWN_OPTION),
        ("idtype", lambda r: isinstance(r["Id"], int)),
    ],
)
def test_salesforce_record_faults_spoil_the_first_lead_of_a_well_formed_page(
    salesforce_sandbox_factory: Callable[..., SalesforceSandboxServer],
    kind: str,
    check: Callable[[dict[str, object]], bool],
) -> None:
    server = salesforce_sandbox_factory(leads=20, contacts=0, seed=1)
    server.sandbox.faults.huge_value_bytes = 1024 * 1024
    client = server.client()
    soql = "SELECT Id, Title, Status FROM Lead ORDER BY Id"
    clean = client.query(soql)["records"]
    server.sandbox.faults.schedule(kind, "GET /services/data/v{version}/query")
    spoiled = client.query(soql)["records"]
    assert check(spoiled[0]) and not check(clean[0])
    assert spoiled[1:] == clean[1:] and server.sandbox.faults.spoiled == [(kind, clean[0]["Id"])]


def test_fault_kinds_and_rules_are_validated() -> None:
    assert parse_fault_kinds("corrupt, html,drip") == ("corrupt", "html", "drip")
    assert parse_fault_kinds("stall,huge,enum,idtype") == ("stall", "huge", "enum", "idtype")
    assert set(ALL_FAULT_KINDS) >= {"500", "drop", "slow", "corrupt", "html", "drip", "stall", "huge", "enum", "idtype"}
    assert parse_fault_rule("corrupt:2:GET /crm/v3/objects/contacts") == FaultRule("corrupt", CONTACTS, 2, 1)
    assert parse_fault_rule("drip:1+") == FaultRule("drip", None, 1, None)
    for bad in ("gzip", ""):
        with pytest.raises(ValueError, match="fault kinds must be"):
            parse_fault_kinds(bad)
    for bad in ("corrupt", "corrupt:0", "teapot:1:GET /x", "corrupt:x"):
        with pytest.raises(ValueError, match="fault"):
            parse_fault_rule(bad)
    with pytest.raises(ValueError, match="fault kinds"):
        FaultInjector(kinds=("gzip",))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault-kinds", "corrupt,gzip"], "gzip"),
        (["--fault-at", "corrupt:0:GET /crm/v3/objects/contacts"], "invalid fault rule"),
    ],
)
def test_sandbox_cli_refuses_unknown_fault_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli_app, ["sandbox", "hubspot", "--port", "0", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
