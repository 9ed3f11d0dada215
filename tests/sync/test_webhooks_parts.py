"""The webhook parts one by one: signatures, bodies, the coalescing queue, the config section."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from werkzeug.test import EnvironBuilder

from connectors.sandbox._webhooks import hubspot_signature_v3 as sandbox_signature
from connectors.sandbox._webhooks import outbound_message
from leadsync.config import ConfigError, parse_config
from sync.webhooks.endpoint import WebhookEndpoint, WebhookSettings
from sync.webhooks.events import Malformed, Notice, parse_hubspot, parse_salesforce
from sync.webhooks.queue import NoticeQueue
from sync.webhooks.verify import (
    Rejected,
    check_fresh,
    hubspot_signature_v3,
    salesforce_hmac,
    verify_hubspot,
    verify_salesforce,
)

URL = "https://leadsync.example.com/webhooks/hubspot"


def test_the_signature_is_the_one_the_sandbox_computes_independently() -> None:
    body = b'[{"objectId": 1}]'
    assert hubspot_signature_v3("s3cret", "post", URL, body, "1700000000000") == sandbox_signature(
        "s3cret", "POST", URL, body, 1700000000000
    )
    headers = {
        "X-HubSpot-Signature-v3": sandbox_signature("s3cret", "POST", URL, body, 5),
        "X-HubSpot-Request-Timestamp": "5",
    }
    verify_hubspot("s3cret", "POST", URL, body, headers)
    for secret, uri, data in (("other", URL, body), ("s3cret", URL + "?x=1", body), ("s3cret", URL, body + b" ")):
        with pytest.raises(Rejected, match="forged"):
            verify_hubspot(secret, "POST", uri, data, headers)


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [(None, "unsigned"), ("soon", "unsigned"), ("1000", "replayed"), (str((1_000_000 + 301) * 1000), "replayed")],
)
def test_timestamps_missing_old_or_far_ahead_are_refused(timestamp: str | None, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        check_fresh(timestamp, 1_000_000.0, 300, unit_ms=True)
    check_fresh(str((1_000_000 - 299) * 1000), 1_000_000.0, 300, unit_ms=True)


def test_salesforce_accepts_the_shared_secret_or_a_fresh_hmac_only() -> None:
    verify_salesforce("k", {"X-Leadsync-Secret": "k"}, None, None, 100.0, 300)
    verify_salesforce("k", {}, "k", None, 100.0, 300)
    with pytest.raises(Rejected, match="forged"):
        verify_salesforce("k", {"X-Leadsync-Secret": "K"}, None, None, 100.0, 300)
    with pytest.raises(Rejected, match="unsigned"):
        verify_salesforce("k", {}, None, b"{}", 100.0, 300)
    signed = {"X-Leadsync-Signature": salesforce_hmac("k", "100", b"{}"), "X-Leadsync-Timestamp": "100"}
    verify_salesforce("k", signed, None, b"{}", 150.0, 300)
    with pytest.raises(Rejected, match="forged"):
        verify_salesforce("k", signed, None, b"{ }", 150.0, 300)
    with pytest.raises(Rejected, match="replayed"):
        verify_salesforce("k", signed, None, b"{}", 1000.0, 300)


def test_hubspot_events_keep_contacts_that_exist_and_refuse_other_shapes() -> None:
    events = [
        {"objectId": 11, "occurredAt": 1_700_000_000_000, "subscriptionType": "contact.propertyChange"},
        {"objectId": 12, "subscriptionType": "contact.deletion"},
        {"objectId": 13, "subscriptionType": "deal.propertyChange"},
        {"primaryObjectId": 14, "subscriptionType": "contact.merge"},
        {"objectId": 15, "objectTypeId": "0-1", "subscriptionType": "object.creation"},
    ]
    notices = parse_hubspot(json.dumps(events).encode(), 5.0)
    assert [n.record_id for n in notices] == ["11", "14", "15"]
    assert notices[0].modified_at == datetime.fromtimestamp(1_700_000_000, UTC) and notices[1].occurred_s == 5.0
    for body in (b"{}", b"[1]", b"not json", b'[{"objectId": "x", "subscriptionType": "contact.creation"}]'):
        with pytest.raises(Malformed):
            parse_hubspot(body, 0.0)


def test_salesforce_outbound_messages_and_flow_callouts_parse_to_ids_and_stamps() -> None:
    soap = outbound_message(
        "00D000000000001AAA",
        "04k000000000001AAA",
        "Lead",
        [{"id": "04l1", "fields": {"Id": "00Q000000000001AAA", "SystemModstamp": "2025-03-01T10:00:00.000Z"}}],
    )
    notices, org, is_soap = parse_salesforce(soap, "text/xml", 1.0)
    assert is_soap and org == "00D000000000001AAA"
    assert notices == [Notice("00Q000000000001AAA", datetime(2025, 3, 1, 10, tzinfo=UTC), 1740823200.0)]
    flow, _, is_soap = parse_salesforce(json.dumps({"ids": ["003000000000001AAA"]}).encode(), "application/json", 2.0)
    assert not is_soap and flow == [Notice("003000000000001AAA", None, 2.0)]
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    for body in (bomb, b"<x/>", b'{"ids": ["not-an-id"]}', b'{"records": [1]}', b"<notifications"):
        with pytest.raises(Malformed):
            parse_salesforce(body, "", 0.0)


def test_the_queue_coalesces_duplicates_and_reordered_notices_and_flags_a_catch_up_when_full() -> None:
    older, newer = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
    queue = NoticeQueue(capacity=2)
    first = queue.offer([Notice("1", newer, 10.0), Notice("1", older, 5.0), Notice("2", None, 7.0)])
    assert (first.queued, first.merged, first.dropped) == (2, 1, 0) and not queue.take_catch_up()
    full = queue.offer([Notice("3", None, 8.0), Notice("2", None, 6.0)])
    assert (full.queued, full.merged, full.dropped) == (0, 1, 1) and queue.take_catch_up()
    stop = threading.Event()
    started = time.monotonic()
    taken = {n.record_id: n for n in queue.take(0.3, stop)}
    assert time.monotonic() - started >= 0.25, "the batch window was not waited for"
    # the latest modification time wins, the earliest change time stays (the latency counts from it)
    assert taken["1"] == Notice("1", newer, 5.0) and taken["2"].occurred_s == 6.0 and len(queue) == 0
    stop.set()
    assert queue.take(0.3, stop) == []


def base_config(**webhooks: object) -> dict[str, object]:
    return {"crm": "hubspot", "hubspot": {"access_token": "t"}, "webhooks": webhooks}


@pytest.mark.parametrize(
    ("webhooks", "key", "expected"),
    [
        ({"enabled": True}, "", "webhooks.hubspot_client_secret is required"),
        ({"enabled": True, "hubspot_client_secret": "s", "batch_window_s": 0}, "webhooks.batch_window_s", "greater"),
        ({"queue_size": 0}, "webhooks.queue_size", "greater than or equal to 1"),
        ({"enable": True}, "webhooks.enable", "unknown key"),
    ],
)
def test_the_webhooks_section_is_validated_like_the_others(
    webhooks: dict[str, object], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(base_config(**webhooks), source="leadsync.yaml")
    assert caught.value.key == key and expected in caught.value.expected


def test_webhooks_are_off_by_default() -> None:
    config = parse_config(base_config(), source="leadsync.yaml")
    assert config.webhooks.enabled is False and config.webhooks.batch_window_s == 2.0


def call(endpoint: WebhookEndpoint, url: str, body: bytes, headers: dict[str, str]) -> tuple[str, bytes]:
    """One request to the WSGI app as the daemon's server hands it over (the host the proxy forwarded to)."""
    environ = EnvironBuilder(
        path="/webhooks/hubspot", method="POST", data=body, headers=headers, base_url=url
    ).get_environ()
    answered: list[str] = []
    data = b"".join(endpoint(environ, lambda status, _headers: answered.append(status)))
    return answered[0], data


@pytest.mark.parametrize(
    "public_url", ["https://leadsync.example.com", "https://leadsync.example.com/webhooks/hubspot"]
)
def test_behind_a_proxy_the_signature_is_checked_against_the_public_url(public_url: str) -> None:
    counted: list[tuple[str, int]] = []
    settings = WebhookSettings(crm="hubspot", secret="s3cret", public_url=public_url)
    endpoint = WebhookEndpoint(
        settings, NoticeQueue(10), count=lambda _c, r, n: counted.append((r, n)), active=lambda: True
    )
    body = b'[{"objectId": 7, "subscriptionType": "contact.creation"}]'
    ts = int(time.time() * 1000)
    headers = {"X-HubSpot-Request-Timestamp": str(ts)}
    as_hubspot_signs = sandbox_signature("s3cret", "POST", URL, body, ts)
    as_the_proxy_forwards = sandbox_signature("s3cret", "POST", "http://10.0.0.5:9464/webhooks/hubspot", body, ts)
    ok = call(endpoint, "http://10.0.0.5:9464", body, headers | {"X-HubSpot-Signature-v3": as_hubspot_signs})
    refused = call(endpoint, "http://10.0.0.5:9464", body, headers | {"X-HubSpot-Signature-v3": as_the_proxy_forwards})
    assert ok[0] == "200 OK" and json.loads(ok[1]) == {"accepted": 1}
    assert refused[0] == "401 Unauthorized" and counted == [("accepted", 1), ("forged", 1)]


def test_without_a_public_url_the_forwarded_scheme_and_host_are_what_was_signed() -> None:
    endpoint = WebhookEndpoint(
        WebhookSettings(crm="hubspot", secret="s3cret"), NoticeQueue(10), count=lambda *_: None, active=lambda: False
    )
    body = b"[]"
    ts = int(time.time() * 1000)
    headers = {
        "Host": "leadsync.example.com",
        "X-Forwarded-Proto": "https",
        "X-HubSpot-Request-Timestamp": str(ts),
        "X-HubSpot-Signature-v3": sandbox_signature("s3cret", "POST", URL, body, ts),
    }
    status, data = call(endpoint, "http://leadsync.example.com", body, headers)
    assert status == "200 OK" and json.loads(data) == {"accepted": 0}
