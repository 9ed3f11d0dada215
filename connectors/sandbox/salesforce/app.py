"""Salesforce sandbox: an in-memory org behind a real HTTPS server that ``simple-salesforce`` talks to unchanged.

Start one with :func:`start_salesforce_sandbox` (background thread, for tests and demos) or
:func:`serve_salesforce_sandbox` (foreground, for ``leadsync sandbox salesforce``)::

    with start_salesforce_sandbox(leads=500, contacts=200, seed=7) as sandbox:
        sf = sandbox.client()                      # simple_salesforce.Salesforce on a session trusting the CA
        for lead in sf.query_all_iter("SELECT Id, Email FROM Lead WHERE SystemModstamp > 2024-01-01T00:00:00Z"):
            ...

Trusting the test CA (simple-salesforce only speaks https): the server's certificate is issued for
``127.0.0.1`` and ``localhost`` by a fresh ``trustme`` CA whose PEM is written to ``ca_file`` (or a temp
file, :attr:`SalesforceSandboxServer.ca_pem_path`). ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` in the
environment override ``Session.verify`` in requests, so setting ``session.verify = ca_file`` is not enough
where those are set. Either mount :class:`CAFileAdapter` for the sandbox's URL on the session (what
:func:`ca_session` does: the CA applies to that URL only and proxy settings from the environment are kept),
or set ``session.trust_env = False`` (which also drops environment proxies).

What is emulated, and where the emulator chose a behaviour Salesforce does not document precisely:

* OAuth ``POST /services/oauth2/token``: ``client_credentials`` (id/secret in the form or HTTP Basic),
  JWT bearer (RS256; the signature is checked against ``jwt_public_key`` when given, else any structurally
  valid RS256 JWT with ``iss`` == client id, a ``sub`` and an unexpired ``exp`` is accepted) and
  ``refresh_token`` (tokens from :meth:`SalesforceSandbox.issue_refresh_token`). Errors are 400
  ``{"error", "error_description"}``: ``invalid_client_id`` (unknown client id), ``invalid_client`` (wrong
  secret), ``invalid_grant`` (bad assertion or refresh token), ``unsupported_grant_type``.
* Sessions: the fixed ``token`` and every issued token, until ``session_ttl_s`` passes (issued ones) or
  :meth:`SalesforceSandbox.expire_sessions`; then 401 ``[{"message": "Session expired or invalid",
  "errorCode": "INVALID_SESSION_ID"}]`` (an array, as simple-salesforce's refresh path expects).
* ``Sforce-Limit-Info: api-usage=USED/LIMIT`` on every authenticated answer; past ``daily_limit`` (or the
  optional rolling ``rate_limit``) 403 ``REQUEST_LIMIT_EXCEEDED`` (Salesforce has no 429). The token
  endpoint and ``GET /services/data`` are not counted.
* Objects Lead, Contact, Account, Task, Event, Campaign, CampaignMember, User (see
  :mod:`connectors.sandbox.salesforce.schema`); describe, describeGlobal, record GET/PATCH/DELETE/POST.
* SOQL ``query``/``queryAll`` (subset: :mod:`connectors.sandbox.salesforce.soql`), batches of 2000 or
  ``Sforce-Query-Options: batchSize`` (200..2000), ``nextRecordsUrl`` cursors over a stable snapshot.
* Outbound Messages (:meth:`SalesforceSandbox.enable_webhooks`, ``--webhook-url``): every API write of a
  Lead or Contact posts a SOAP ``notifications`` envelope (``Id``, ``SystemModstamp``) with a shared secret.
* sObject Collections ``PATCH``/``POST /composite/sobjects`` (<= 200 records, SaveResults in order,
  ``allOrNone``). A value JSON cannot bind to the field type (a non-number for a number field, a bad
  datetime) fails the whole request with 400 ``JSON_PARSER_ERROR``, as Salesforce's deserializer does;
  everything else fails per record.
* Every successful update stamps ``LastModifiedDate``/``SystemModstamp``, even when no value changed (as
  Salesforce does): a connector must not send writes that change nothing.
* Tooling ``POST /tooling/sobjects/CustomField`` (Number, Currency, Percent, Text, TextArea, LongTextArea,
  Email, Url, Phone, DateTime, Date, Checkbox, Picklist); the org starts without ``Leadsync_*__c`` fields.
* Bulk API 2.0 query jobs (CSV with every value quoted, LF or CRLF, the job's delimiter; datetimes as
  ``...000Z``; ``Sforce-Locator`` is the base64 of the next offset, ``"null"`` at the end).
* Flows ``/actions/custom/flow/{name}`` and platform events ``/sobjects/{Name__e}``, recorded and counted
  (``flow_invocations``, ``platform_events`` in stats; ``GET /__sandbox/flows``, ``/__sandbox/events``).
* Faults and ``GET /__sandbox/stats``: see :mod:`connectors.sandbox._server`; 403s count as ``throttled``.
"""

from __future__ import annotations

import itertools
import math
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import requests
import trustme
from requests.adapters import HTTPAdapter
from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    UNKNOWN_OPTION,
    FaultOptions,
    RateLimit,
    SandboxServer,
    json_response,
    serve_in_foreground,
)
from connectors.sandbox._webhooks import SALESFORCE_BATCH_MAX, WebhookSender, salesforce_encoder
from connectors.sandbox.salesforce._http import (
    API_VERSIONS,
    DEFAULT_DAILY_LIMIT,
    RATE_WINDOW_S,
    _version_label,
)
from connectors.sandbox.salesforce.bulk import BulkRoutes
from connectors.sandbox.salesforce.fields import FieldsRoutes
from connectors.sandbox.salesforce.flows import FlowsRoutes
from connectors.sandbox.salesforce.limits import SalesforceGate
from connectors.sandbox.salesforce.org import SalesforceOrg
from connectors.sandbox.salesforce.query import QueryRoutes
from connectors.sandbox.salesforce.records import RecordsRoutes
from connectors.sandbox.salesforce.store import (
    SalesforceError,
)
from connectors.sandbox.synthetic import iter_people

if TYPE_CHECKING:
    from simple_salesforce.api import Salesforce


class CAFileAdapter(HTTPAdapter):
    """A transport adapter that verifies TLS against one CA file, whatever the environment says.

    requests merges ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` into every request's ``verify`` (they win
    over ``Session.verify``); an adapter mounted for the sandbox URL gets the final say instead. An explicit
    ``verify=False`` on a request is kept.
    """

    def __init__(self, ca_file: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ca_file = str(ca_file)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("verify") is not False:
            kwargs["verify"] = self.ca_file
        return super().send(request, *args, **kwargs)


def ca_session(ca_file: str | os.PathLike[str], base_url: str | None = None) -> requests.Session:
    """A ``requests.Session`` trusting ``ca_file`` for ``base_url`` (every https URL when None)."""
    session = requests.Session()
    prefix = base_url.rstrip("/") + "/" if base_url else "https://"
    session.mount(prefix, CAFileAdapter(ca_file))
    return session


class SalesforceSandbox(SalesforceGate, RecordsRoutes, QueryRoutes, FieldsRoutes, BulkRoutes, FlowsRoutes):
    """The WSGI app: Salesforce's endpoints, OAuth, sessions, API limits and error bodies over an org."""

    def __init__(
        self,
        org: SalesforceOrg | None = None,
        *,
        token: str = "sandbox-token",
        client_id: str = "leadsync",
        client_secret: str = "sandbox-secret",
        session_ttl_s: float | None = None,
        jwt_public_key: str | bytes | None = None,
        rate_limit: int | str | RateLimit | None = None,
        daily_limit: int = DEFAULT_DAILY_LIMIT,
        fault_seed: int = 0,
        **faults: Unpack[FaultOptions],
    ) -> None:
        super().__init__(token=token, fault_seed=fault_seed, **faults)
        self.org = org or SalesforceOrg()
        self.lock = self.org.lock
        self.client_id = client_id
        self.client_secret = client_secret
        self.session_ttl_s = session_ttl_s
        self.jwt_public_key = jwt_public_key
        #: set by the server once it listens (token answers carry it)
        self.instance_url = "https://127.0.0.1"
        self._session_lock = threading.Lock()
        self._sessions: dict[str, float] = {token: math.inf}
        self._refresh_tokens: set[str] = set()
        self.set_limits(rate_limit, daily_limit, window_s=RATE_WINDOW_S)
        self.stats.increment("flow_invocations", 0)
        self.stats.increment("platform_events", 0)
        self.stats.increment("sessions_issued", 0)
        self.webhooks: dict[str, WebhookSender] = {}
        self._register_routes()

    #: SOQL answers list their rows under ``records``
    records_key = "records"

    def spoil_record(self, kind: str, record: dict[str, Any]) -> str | None:
        """Salesforce's record faults, on a Lead or Contact row: ``huge`` fills ``Title``, ``enum`` gives a
        Lead's ``Status`` (a restricted picklist: the org stores no other value) a value the org lacks,
        ``idtype`` sends the Id as a number (its characters after the key prefix read in base 36)."""
        record_id = record.get("Id")
        kind_of = (record.get("attributes") or {}).get("type")
        if kind_of not in ("Lead", "Contact") or not isinstance(record_id, str) or not record_id.isalnum():
            return None  # only the people leadsync scores: a Task's or an Opportunity's row stays as it is
        if kind == "huge":
            record["Title"] = self.huge_value()
        elif kind == "enum" and "Status" in record:
            record["Status"] = UNKNOWN_OPTION
        elif kind == "idtype":
            record["Id"] = int(record_id[3:], 36)
        else:
            return None
        return record_id

    def enable_webhooks(
        self,
        url: str,
        secret: str,
        *,
        sobjects: Iterable[str] = ("Lead", "Contact"),
        header: str = "X-Leadsync-Secret",
    ) -> dict[str, WebhookSender]:
        """Send an Outbound Message (``Id``, ``SystemModstamp``) to ``url`` whenever a record of ``sobjects``
        is written, with ``secret`` in ``header`` (one sender per sObject: a message names one type)."""
        encode = salesforce_encoder(self.org.org_id, secret, header)
        senders = {name: WebhookSender(url, encode, batch_max=SALESFORCE_BATCH_MAX) for name in sobjects}

        def changed(sobject: str, record_id: str, stamp: str) -> None:
            sender = senders.get(sobject)
            if sender is not None:
                fields = {"Id": record_id, "SystemModstamp": stamp}
                sender.send({"id": f"04l{record_id[3:]}", "sobject": sobject, "fields": fields})

        with self.lock:
            for old in self.webhooks.values():
                old.close()
            self.org.change_listeners[:] = [changed]
            self.webhooks = senders
        return senders

    # routes

    def _register_routes(self) -> None:
        data = "/services/data/v{version}"
        self.add_route("POST", "/services/oauth2/token", self._token, tag="public")
        self.add_route("GET", "/services/data", self._versions, tag="public")
        routes: tuple[tuple[str, str, Callable[..., Response]], ...] = (
            ("GET", "", self._resources),
            ("GET", "/limits", self._limits),
            ("GET", "/sobjects", self._describe_global),
            ("GET", "/sobjects/{sobject}", self._sobject_info),
            ("POST", "/sobjects/{sobject}", self._create),
            ("GET", "/sobjects/{sobject}/describe", self._describe),
            ("GET", "/sobjects/{sobject}/{record_id}", self._read),
            ("PATCH", "/sobjects/{sobject}/{record_id}", self._update),
            ("DELETE", "/sobjects/{sobject}/{record_id}", self._delete),
            ("GET", "/query", self._query),
            ("GET", "/queryAll", self._query_all),
            ("GET", "/query/{cursor}", self._query_more),
            ("GET", "/queryAll/{cursor}", self._query_more),
            ("PATCH", "/composite/sobjects", self._collection_update),
            ("POST", "/composite/sobjects", self._collection_create),
            ("POST", "/tooling/sobjects/CustomField", self._create_field),
            ("GET", "/tooling/sobjects/CustomField/{field_id}", self._read_field),
            ("DELETE", "/tooling/sobjects/CustomField/{field_id}", self._delete_field),
            ("POST", "/jobs/query", self._create_job),
            ("GET", "/jobs/query", self._list_jobs),
            ("GET", "/jobs/query/{job_id}", self._get_job),
            ("PATCH", "/jobs/query/{job_id}", self._patch_job),
            ("DELETE", "/jobs/query/{job_id}", self._delete_job),
            ("GET", "/jobs/query/{job_id}/results", self._job_results),
            ("GET", "/actions/custom/flow", self._list_flows),
            ("POST", "/actions/custom/flow/{flow}", self._invoke_flow),
        )
        for method, path, handler in routes:
            self.add_route(method, data + path, self._versioned(handler))
        self.add_route("GET", "/__sandbox/flows", self._sandbox_flows, internal=True)
        self.add_route("GET", "/__sandbox/events", self._sandbox_events, internal=True)
        self.add_route("POST", "/__sandbox/expire-sessions", self._sandbox_expire, internal=True)

    @staticmethod
    def _versioned(handler: Callable[..., Response]) -> Callable[..., Response]:
        def run(request: Request, version: str, **params: Any) -> Response:
            if version not in API_VERSIONS:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            return handler(request, version, **params)

        run.__name__ = handler.__name__
        return run

    # versions and limits

    def _versions(self, request: Request) -> Response:
        return json_response(
            [{"label": _version_label(v), "url": f"/services/data/v{v}", "version": v} for v in API_VERSIONS]
        )

    def _resources(self, request: Request, version: str) -> Response:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "tooling", "jobs", "actions")
        return json_response({name: f"{base}/{name}" for name in names})

    def _limits(self, request: Request, version: str) -> Response:
        used = self.api_usage
        return json_response(
            {
                "DailyApiRequests": {"Max": self.daily_limit, "Remaining": max(self.daily_limit - used, 0)},
                "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 10_000 - len(self.org.jobs())},
                "DailyBulkV2QueryFileStorageMB": {"Max": 976_562, "Remaining": 976_562},
                "DailyAsyncApexExecutions": {"Max": 250_000, "Remaining": 250_000},
                "HourlyPublishedPlatformEvents": {
                    "Max": 250_000,
                    "Remaining": 250_000 - len(self.org.published_events()),
                },
            }
        )


# running it ------------------------------------------------------------------------------------------------


class SalesforceSandboxServer(SandboxServer[SalesforceSandbox]):
    """A running Salesforce sandbox: ``.url`` (= ``.instance_url``), ``.token``, ``.ca_pem_path``, ``.org``."""

    def __init__(
        self,
        app: SalesforceSandbox,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ca: trustme.CA | None = None,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.ca = ca or trustme.CA(organization_name="leadsync Salesforce sandbox")
        identities = list(dict.fromkeys(("127.0.0.1", "localhost", host)))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*identities).configure_cert(context)
        super().__init__(app, host=host, port=port, ssl_context=context)
        if ca_file is not None:
            path = Path(ca_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._owns_ca_file = False
        else:
            handle, name = tempfile.mkstemp(prefix="leadsync-sf-ca-", suffix=".pem")
            os.close(handle)
            path = Path(name)
            self._owns_ca_file = True
        self.ca.cert_pem.write_to_path(str(path))
        self._ca_path = path
        app.instance_url = self.url

    @property
    def org(self) -> SalesforceOrg:
        return self.app.org

    @property
    def client_id(self) -> str:
        return self.app.client_id

    @property
    def client_secret(self) -> str:
        return self.app.client_secret

    @property
    def instance_url(self) -> str:
        return self.url

    @property
    def token_url(self) -> str:
        return f"{self.url}/services/oauth2/token"

    @property
    def ca_pem_path(self) -> str:
        """The test CA's certificate (PEM): trust it to talk to the sandbox."""
        return str(self._ca_path)

    @property
    def login_domain(self) -> str:
        """A ``domain=`` that makes simple-salesforce's own OAuth login reach this sandbox.

        simple-salesforce builds ``https://{domain}.salesforce.com/services/oauth2/token``; with this value
        the rest of that URL lands in the fragment, which is never sent. A test convenience: against a real
        org, ``domain`` is the My Domain name (``acme.my``).
        """
        return f"{self.host}:{self.port}/services/oauth2/token#"

    def session(self) -> requests.Session:
        """A ``requests.Session`` that trusts the sandbox's CA for its URL (see :func:`ca_session`)."""
        return ca_session(self.ca_pem_path, self.url)

    def client(self, *, token: str | None = None, version: str = "59.0", **kwargs: Any) -> Salesforce:
        """A simple-salesforce client in direct mode (``instance_url`` + ``session_id``) on :meth:`session`."""
        from simple_salesforce.api import Salesforce

        return Salesforce(
            instance_url=self.url,
            session_id=token or self.token,
            session=kwargs.pop("session", None) or self.session(),
            version=version,
            **kwargs,
        )

    def fetch_token(self, session: requests.Session | None = None) -> dict[str, Any]:
        """Run the client-credentials flow the way a connector does; returns the token answer."""
        http = session or self.session()
        response = http.post(
            self.token_url,
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def stop(self, timeout: float = 5.0) -> None:
        for sender in self.app.webhooks.values():  # outbound messages stop with the server
            sender.close()
        try:
            super().stop(timeout)
        finally:
            if self._owns_ca_file:
                self._ca_path.unlink(missing_ok=True)


def start_salesforce_sandbox(
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    token: str = "sandbox-token",
    client_id: str = "leadsync",
    client_secret: str = "sandbox-secret",
    leads: int = 0,
    contacts: int = 0,
    seed: int = 0,
    now: datetime | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    ca: trustme.CA | None = None,
    session_ttl_s: float | None = None,
    jwt_public_key: str | bytes | None = None,
    rate_limit: int | str | RateLimit | None = None,
    daily_limit: int = DEFAULT_DAILY_LIMIT,
    flows: Iterable[str] = ("Leadsync_Qualified",),
    platform_events: Iterable[str] = ("Leadsync_Qualified__e",),
    bulk_job_delay_s: float = 0.0,
    custom_fields: Mapping[str, Mapping[str, Any]] | None = None,
    webhook_url: str | None = None,
    webhook_secret: str = "",
    **faults: Unpack[FaultOptions],
) -> SalesforceSandboxServer:
    """Seed an org and serve it over HTTPS in a background thread.

    People come from one synthetic stream (``seed``, ``now``): the first ``leads`` become Leads (the
    converted ones also a Contact with an Account), the next ``contacts`` become Contacts with Accounts.
    ``custom_fields`` creates fields up front, e.g. ``{"Lead.Leadsync_Score__c": {"type": "Number",
    "precision": 3, "scale": 0}}`` (the org otherwise starts without any). ``rate_limit`` is an extra
    rolling window (``"100/10s"``) answering 403 ``REQUEST_LIMIT_EXCEEDED`` like the daily limit.
    ``fault_rate`` (0..1) injects ``fault_kinds`` from an RNG seeded with ``seed``. ``webhook_url`` sends an
    Outbound Message there on every Lead or Contact write (``webhook_secret`` in ``X-Leadsync-Secret``).
    """
    org = SalesforceOrg(
        seed=seed, now=now, flows=flows, platform_events=platform_events, bulk_job_delay_s=bulk_job_delay_s
    )
    if leads or contacts:
        people = iter_people(leads + contacts, seed=seed, now=now)
        org.seed_people(itertools.islice(people, leads), as_leads=True)
        org.seed_people(people, as_leads=False)
    for full_name, spec in (custom_fields or {}).items():
        options = dict(spec)
        field_type = str(options.pop("type"))
        org.create_custom_field(full_name, field_type, **options)
    app = SalesforceSandbox(
        org,
        token=token,
        client_id=client_id,
        client_secret=client_secret,
        session_ttl_s=session_ttl_s,
        jwt_public_key=jwt_public_key,
        rate_limit=rate_limit,
        daily_limit=daily_limit,
        fault_seed=seed,
        **faults,
    )
    if webhook_url:
        app.enable_webhooks(webhook_url, webhook_secret)
    server = SalesforceSandboxServer(app, host=host, port=port, ca=ca, ca_file=ca_file)
    return server.start()


def serve_salesforce_sandbox(
    *,
    on_ready: Callable[[SalesforceSandboxServer], None] | None = None,
    **options: Any,
) -> None:
    """Run a sandbox in the foreground until Ctrl-C or SIGTERM (``leadsync sandbox salesforce``).

    ``options`` are those of :func:`start_salesforce_sandbox`. ``on_ready`` receives the running server
    (the CLI prints its URL, token, client credentials and CA path); without it they are printed to stdout.
    """
    server = start_salesforce_sandbox(**options)
    serve_in_foreground(server, on_ready or _announce)


def _announce(server: SalesforceSandboxServer) -> None:
    org = server.org
    print(f"Salesforce sandbox listening on {server.url}", flush=True)
    print(f"Token: {server.token}  (client id {server.client_id}, secret {server.client_secret})", flush=True)
    print(f"CA certificate: {server.ca_pem_path}", flush=True)
    print(f"{org.count('Lead')} leads, {org.count('Contact')} contacts, {org.count('Account')} accounts", flush=True)
