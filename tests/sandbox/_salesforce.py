"""Shared by the Salesforce sandbox tests: clients built the connector's way, and plain-Python views of the org."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from simple_salesforce.api import Salesforce

from connectors.sandbox.salesforce import (
    SalesforceSandboxServer,
)

Factory = Callable[..., SalesforceSandboxServer]
Record = dict[str, Any]
SCORE_FIELD = {"Lead.Leadsync_Score__c": {"type": "Number", "precision": 3, "scale": 0}}


def _login(server: SalesforceSandboxServer) -> tuple[requests.Session, dict[str, Any]]:
    session = server.session()
    response = session.post(
        server.token_url,
        data={"grant_type": "client_credentials", "client_id": server.client_id, "client_secret": server.client_secret},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return session, answer


def _client(server: SalesforceSandboxServer, **kwargs: Any) -> Salesforce:
    """The connector's way: token with requests, then simple-salesforce in direct mode on the same session."""
    session, answer = _login(server)
    return Salesforce(
        instance_url=answer["instance_url"],
        session_id=answer["access_token"],
        session=session,
        object_pairs_hook=dict,
        **kwargs,
    )


def _records(server: SalesforceSandboxServer, sobject: str, **kwargs: Any) -> dict[str, Record]:
    return {r["Id"]: r for r in server.org.records(sobject, **kwargs)}


def _strip(record: Record) -> Record:
    return {k: v for k, v in record.items() if k != "attributes"}


def _code(exc: Any) -> str:
    return str(exc.content[0]["errorCode"])


def _soql_dt(stamp: str) -> str:
    """A stored stamp (``...000+0000``) as an unquoted SOQL datetime literal."""
    return stamp.replace(".000+0000", "Z") if stamp.endswith(".000+0000") else stamp


def _open_leads(server: SalesforceSandboxServer) -> list[str]:
    return sorted(r["Id"] for r in server.org.records("Lead") if not r["IsConverted"])
