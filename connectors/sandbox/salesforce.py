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
  :mod:`connectors.sandbox._salesforce_schema`); describe, describeGlobal, record GET/PATCH/DELETE/POST.
* SOQL ``query``/``queryAll`` (subset: :mod:`connectors.sandbox._soql`), batches of 2000 or
  ``Sforce-Query-Options: batchSize`` (200..2000), ``nextRecordsUrl`` cursors over a stable snapshot.
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

import base64
import hashlib
import hmac
import itertools
import json
import math
import os
import secrets
import signal
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import jwt.types
import requests
import trustme
from requests.adapters import HTTPAdapter
from werkzeug.wrappers import Request, Response

from connectors.sandbox._salesforce_org import (
    COLLECTION_MAX_RECORDS,
    QUERY_DEFAULT_BATCH,
    BulkJob,
    SalesforceError,
    SalesforceOrg,
)
from connectors.sandbox._salesforce_schema import KEY_PREFIXES, WriteRejected
from connectors.sandbox._server import (
    FAULT_KINDS,
    RateLimit,
    RollingWindowLimiter,
    Route,
    SandboxApp,
    SandboxServer,
    json_response,
    parse_rate_limit,
)
from connectors.sandbox.synthetic import iter_people

if TYPE_CHECKING:
    from simple_salesforce.api import Salesforce

__all__ = [
    "API_VERSIONS",
    "COLLECTION_MAX_RECORDS",
    "DEFAULT_DAILY_LIMIT",
    "KEY_PREFIXES",
    "CAFileAdapter",
    "SalesforceError",
    "SalesforceOrg",
    "SalesforceSandbox",
    "SalesforceSandboxServer",
    "ca_session",
    "serve_salesforce_sandbox",
    "start_salesforce_sandbox",
]

#: API versions served (``/services/data/vXX.X/...``); simple-salesforce 1.12 defaults to 59.0
API_VERSIONS: tuple[str, ...] = tuple(f"{v}.0" for v in range(31, 63))
#: an Enterprise org's base allocation of API requests per rolling 24 hours
DEFAULT_DAILY_LIMIT = 100_000
RATE_WINDOW_S = 10.0
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SEASONS = ("Winter", "Spring", "Summer")
_INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
_LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


def _version_label(version: str) -> str:
    offset = int(float(version)) - 59  # 59.0 is Winter '24
    return f"{_SEASONS[offset % 3]} '{24 + offset // 3}"


def _error(status: int, code: str, message: str) -> Response:
    return json_response([{"message": message, "errorCode": code}], status)


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


class SalesforceSandbox(SandboxApp):
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
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        slow_response_s: float = 2.0,
    ) -> None:
        super().__init__(
            fault_rate=fault_rate, fault_seed=fault_seed, fault_kinds=fault_kinds, slow_response_s=slow_response_s
        )
        self.org = org or SalesforceOrg()
        self.lock = self.org.lock
        self.token = token
        self.client_id = client_id
        self.client_secret = client_secret
        self.session_ttl_s = session_ttl_s
        self.jwt_public_key = jwt_public_key
        #: set by the server once it listens (token answers carry it)
        self.instance_url = "https://127.0.0.1"
        self._session_lock = threading.Lock()
        self._sessions: dict[str, float] = {token: math.inf}
        self._refresh_tokens: set[str] = set()
        limit = parse_rate_limit(rate_limit, default_window_s=RATE_WINDOW_S)
        self.limiter = RollingWindowLimiter(limit.limit, limit.window_s) if limit else None
        self.daily_limit = daily_limit
        self._used = 0
        self._usage_lock = threading.Lock()
        self.stats.increment("flow_invocations", 0)
        self.stats.increment("platform_events", 0)
        self.stats.increment("sessions_issued", 0)
        self._register_routes()

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

    # sessions

    def issue_session(self, ttl_s: float | None = None) -> str:
        """A new access token, valid for ``ttl_s`` (default ``session_ttl_s``; None = until expired)."""
        token = f"{self.org.org_id[:15]}!{secrets.token_urlsafe(48)}"
        ttl = self.session_ttl_s if ttl_s is None else ttl_s
        with self._session_lock:
            self._sessions[token] = math.inf if ttl is None else time.monotonic() + ttl
        self.stats.increment("sessions_issued")
        return token

    def add_token(self, token: str, ttl_s: float | None = None) -> None:
        """Accept ``token`` (again) as a session, e.g. the fixed token after :meth:`expire_sessions`."""
        with self._session_lock:
            self._sessions[token] = math.inf if ttl_s is None else time.monotonic() + ttl_s

    def expire_sessions(self) -> int:
        """End every session now, the fixed token's too (an admin's "revoke all"); returns how many."""
        with self._session_lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def expire_session(self, token: str) -> bool:
        with self._session_lock:
            return self._sessions.pop(token, None) is not None

    def issue_refresh_token(self) -> str:
        """A refresh token the ``refresh_token`` grant accepts (client credentials and JWT issue none)."""
        token = "5Aep" + secrets.token_urlsafe(48)
        with self._session_lock:
            self._refresh_tokens.add(token)
        return token

    def session_valid(self, token: str) -> bool:
        with self._session_lock:
            expires = self._sessions.get(token)
            if expires is None:
                return False
            if time.monotonic() >= expires:
                del self._sessions[token]
                return False
            return True

    # pipeline hooks

    def authenticate(self, request: Request, route: Route) -> str | Response:
        if route.tag == "public":
            return ""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() in ("bearer", "oauth") and token and self.session_valid(token):
            return token
        return json_response(_INVALID_SESSION, 401, {"WWW-Authenticate": "Token"})

    def admit(self, request: Request, route: Route, principal: str) -> Response | dict[str, str]:
        if route.tag == "public":
            return {}
        with self._usage_lock:
            refused = self._used >= self.daily_limit
            if not refused and self.limiter is not None:
                refused = not self.limiter.acquire(self.org.org_id).allowed
            if not refused:
                self._used += 1
            header = {"Sforce-Limit-Info": f"api-usage={self._used}/{self.daily_limit}"}
        if refused:
            self.stats.record_throttled()  # not a 429, so the base pipeline does not count it
            return json_response(_LIMIT_EXCEEDED, 403, header)
        return header

    @property
    def api_usage(self) -> int:
        with self._usage_lock:
            return self._used

    def set_api_usage(self, used: int) -> None:
        """Start the day's counter somewhere else (e.g. just below the limit)."""
        with self._usage_lock:
            self._used = used

    def fault_response(self, status: int) -> Response:
        if status == 500:
            code = f"{secrets.randbelow(10**9)}-{secrets.randbelow(10**5)} ({-secrets.randbelow(10**9)})"
            return _error(
                500,
                "UNKNOWN_EXCEPTION",
                f"An unexpected error occurred. Please include this ErrorId if you contact support: {code}",
            )
        return _error(status, "SERVER_UNAVAILABLE", "Server temporarily unavailable, please retry later")

    def not_found(self, request: Request) -> Response:
        return _error(404, "NOT_FOUND", "The requested resource does not exist")

    def method_not_allowed(self, request: Request) -> Response:
        return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed")

    def handle_exception(self, exc: Exception) -> Response | None:
        if isinstance(exc, SalesforceError):
            return json_response(exc.body(), exc.status)
        if isinstance(exc, WriteRejected):
            return json_response([exc.error.as_rest_error()], 400)
        return None

    # helpers

    @staticmethod
    def _json(request: Request) -> Any:
        raw = request.get_data(cache=True)
        if not raw:
            raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body is empty")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SalesforceError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None

    def _object(self, sobject: str) -> None:
        self.org.table(sobject)  # 404 NOT_FOUND for unknown objects

    # OAuth

    def _token(self, request: Request) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if request.authorization is not None and request.authorization.type == "basic":
                client_id, secret = request.authorization.username, request.authorization.password
            if client_id != self.client_id:
                return self._oauth_error("invalid_client_id", "client identifier invalid")
            if not secret or not hmac.compare_digest(str(secret), self.client_secret):
                return self._oauth_error("invalid_client", "invalid client credentials")
        elif grant == JWT_GRANT:
            problem = self._check_assertion(form.get("assertion", ""))
            if problem is not None:
                return problem
        elif grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            if form.get("client_id") not in (None, self.client_id):
                return self._oauth_error("invalid_client_id", "client identifier invalid")
            with self._session_lock:
                known = refresh in self._refresh_tokens
            if not known:
                return self._oauth_error("invalid_grant", "expired access/refresh token")
        else:
            return self._oauth_error("unsupported_grant_type", "grant type not supported")
        token = self.issue_session()
        issued_at = str(time.time_ns() // 1_000_000)
        user = self.org.integration_user_id
        identity = f"{self.instance_url}/id/{self.org.org_id}/{user}"
        signature = base64.b64encode(
            hmac.new(self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        return json_response(
            {
                "access_token": token,
                "signature": signature,
                "scope": "api",
                "instance_url": self.instance_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            }
        )

    @staticmethod
    def _oauth_error(error: str, description: str) -> Response:
        return json_response({"error": error, "error_description": description}, 400)

    def _check_assertion(self, assertion: str) -> Response | None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return self._oauth_error("invalid_grant", "invalid assertion")
        if header.get("alg") != "RS256":
            return self._oauth_error("invalid_grant", "invalid assertion: the signing algorithm must be RS256")
        # simple-salesforce sends ``exp`` as a string; Salesforce accepts it, so expiry is checked here
        verify = self.jwt_public_key is not None
        options: jwt.types.Options = {
            "verify_signature": verify,
            "verify_exp": False,
            "verify_aud": False,
            "verify_iat": False,
            "verify_nbf": False,
        }
        try:
            if self.jwt_public_key is not None:
                claims = jwt.decode(assertion, self.jwt_public_key, algorithms=["RS256"], options=options)
            else:
                claims = jwt.decode(assertion, options=options)
        except jwt.PyJWTError:
            return self._oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.client_id:
            return self._oauth_error("invalid_client_id", "client identifier invalid")
        if not claims.get("sub"):
            return self._oauth_error("invalid_grant", "invalid assertion: no subject (sub)")
        try:
            expires = float(str(claims.get("exp")))
        except ValueError:
            return self._oauth_error("invalid_grant", "invalid assertion: no expiry (exp)")
        if expires < time.time() - 5:
            return self._oauth_error("invalid_grant", "expired authorization code")
        return None

    # versions, limits, describe

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

    def _describe_global(self, request: Request, version: str) -> Response:
        return json_response(
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_MAX_RECORDS,
                "sobjects": [obj.describe_global(version) for obj in self.org.objects.values()],
            }
        )

    def _sobject_info(self, request: Request, version: str, sobject: str) -> Response:
        table = self.org.table(sobject)
        return json_response({"objectDescribe": table.obj.describe_global(version), "recentItems": []})

    def _describe(self, request: Request, version: str, sobject: str) -> Response:
        return json_response(self.org.table(sobject).obj.describe(version))

    # records

    def _create(self, request: Request, version: str, sobject: str) -> Response:
        body = self._json(request)
        if sobject.endswith("__e"):
            event_id = self.org.publish_event(sobject, body)
            self.stats.increment("platform_events")
            return json_response({"id": event_id, "success": True, "errors": []}, 201)
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object")
        record_id = self.org.create_record(sobject, body)
        return json_response({"id": record_id, "success": True, "errors": []}, 201)

    def _read(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        fields = request.args.get("fields")
        names = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
        return json_response(self.org.read_record(sobject, record_id, names, version))

    def _update(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object")
        self.org.update_record(sobject, record_id, body)
        return Response(status=204)

    def _delete(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        self.org.delete_record(sobject, record_id)
        return Response(status=204)

    # queries

    @staticmethod
    def _batch_size(request: Request) -> int | None:
        options = request.headers.get("Sforce-Query-Options", "")
        for part in options.split(","):
            name, _, value = part.partition("=")
            if name.strip().lower() == "batchsize" and value.strip().isdigit():
                return int(value.strip())
        return None

    def _run_query(self, request: Request, version: str, *, include_deleted: bool) -> Response:
        text = request.args.get("q")
        if text is None:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        batch = self._batch_size(request) or QUERY_DEFAULT_BATCH
        return json_response(self.org.query(text, include_deleted=include_deleted, version=version, batch_size=batch))

    def _query(self, request: Request, version: str) -> Response:
        return self._run_query(request, version, include_deleted=False)

    def _query_all(self, request: Request, version: str) -> Response:
        return self._run_query(request, version, include_deleted=True)

    def _query_more(self, request: Request, version: str, cursor: str) -> Response:
        return json_response(self.org.query_more(cursor, version=version, batch_size=self._batch_size(request)))

    # collections

    def _collection_body(self, request: Request) -> tuple[Any, bool]:
        body = self._json(request)
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object with records")
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "allOrNone must be a boolean")
        return body.get("records"), all_or_none

    def _collection_update(self, request: Request, version: str) -> Response:
        records, all_or_none = self._collection_body(request)
        return json_response(self.org.update_collection(records, all_or_none=all_or_none))

    def _collection_create(self, request: Request, version: str) -> Response:
        records, all_or_none = self._collection_body(request)
        return json_response(self.org.create_collection(records, all_or_none=all_or_none))

    # tooling

    def _create_field(self, request: Request, version: str) -> Response:
        body = self._json(request)
        meta = body.get("Metadata") if isinstance(body, dict) else None
        full_name = body.get("FullName") if isinstance(body, dict) else None
        if not isinstance(meta, dict) or not isinstance(full_name, str):
            raise SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", "FullName and Metadata are required")
        values: list[str] = []
        restricted = False
        value_set = meta.get("valueSet")
        if isinstance(value_set, dict):
            restricted = bool(value_set.get("restricted"))
            definition = value_set.get("valueSetDefinition") or {}
            for item in definition.get("value") or []:
                if isinstance(item, dict) and item.get("fullName"):
                    values.append(str(item["fullName"]))
        if not meta.get("label"):
            raise SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", "Field label is required", ["Metadata"])
        fd = self.org.create_custom_field(
            full_name,
            str(meta.get("type", "")),
            label=str(meta["label"]),
            length=_int_or_none(meta.get("length")),
            precision=_int_or_none(meta.get("precision")),
            scale=_int_or_none(meta.get("scale")),
            values=values,
            restricted=restricted,
            default_value=meta.get("defaultValue"),
        )
        return json_response({"id": fd.tooling_id, "success": True, "errors": [], "warnings": [], "infos": []}, 201)

    def _read_field(self, request: Request, version: str, field_id: str) -> Response:
        fd = self.org.custom_field(field_id)
        if fd is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        meta: dict[str, Any] = {"label": fd.label, "type": fd.extra["metadata_type"]}
        if fd.is_number:
            meta.update(precision=fd.precision, scale=fd.scale)
        if fd.length:
            meta["length"] = fd.length
        if fd.picklist:
            meta["valueSet"] = {
                "restricted": fd.restricted,
                "valueSetDefinition": {"value": [{"fullName": v, "label": v, "default": False} for v in fd.picklist]},
            }
        return json_response(
            {
                "attributes": {
                    "type": "CustomField",
                    "url": f"/services/data/v{version}/tooling/sobjects/CustomField/{fd.tooling_id}",
                },
                "Id": fd.tooling_id,
                "DeveloperName": fd.name[:-3],
                "TableEnumOrId": fd.extra["object"],
                "FullName": f"{fd.extra['object']}.{fd.name}",
                "Metadata": meta,
            }
        )

    def _delete_field(self, request: Request, version: str, field_id: str) -> Response:
        if not self.org.delete_custom_field(field_id):
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return Response(status=204)

    # Bulk API 2.0 query jobs

    def _job_info(self, job: BulkJob) -> dict[str, Any]:
        return job.info(time.monotonic(), self.org.integration_user_id)

    def _create_job(self, request: Request, version: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object")
        job = self.org.create_query_job(body, version)
        info = self._job_info(job)
        info["state"] = "UploadComplete"  # the creation answer always says so; polling moves on
        info["numberRecordsProcessed"] = 0
        return json_response(info)

    def _list_jobs(self, request: Request, version: str) -> Response:
        return json_response(
            {"done": True, "records": [self._job_info(j) for j in self.org.jobs()], "nextRecordsUrl": None}
        )

    def _get_job(self, request: Request, version: str, job_id: str) -> Response:
        return json_response(self._job_info(self.org.job(job_id)))

    def _patch_job(self, request: Request, version: str, job_id: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            raise SalesforceError(400, "INVALIDJOB", "A query job can only be changed to state Aborted")
        return json_response(self._job_info(self.org.abort_job(job_id)))

    def _delete_job(self, request: Request, version: str, job_id: str) -> Response:
        self.org.delete_job(job_id)
        return Response(status=204)

    def _job_results(self, request: Request, version: str, job_id: str) -> Response:
        max_records = request.args.get("maxRecords")
        if max_records is not None and not max_records.strip().isdigit():
            raise SalesforceError(400, "INVALIDJOB", "maxRecords must be a positive integer")
        text, count, locator = self.org.job_results(
            job_id,
            locator=request.args.get("locator") or None,
            max_records=int(max_records) if max_records is not None else None,
            version=version,
        )
        return Response(
            text,
            status=200,
            content_type="text/csv; charset=UTF-8",
            headers={"Sforce-NumberOfRecords": str(count), "Sforce-Locator": locator},
        )

    # flows

    def _list_flows(self, request: Request, version: str) -> Response:
        base = f"/services/data/v{version}/actions/custom/flow"
        return json_response(
            {
                "actions": [
                    {"label": name.replace("_", " "), "name": name, "type": "FLOW", "url": f"{base}/{name}"}
                    for name in sorted(self.org.flows)
                ]
            }
        )

    def _invoke_flow(self, request: Request, version: str, flow: str) -> Response:
        body = self._json(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        results = self.org.invoke_flow(flow, inputs)
        self.stats.increment("flow_invocations", len(results))
        return json_response(results)

    # internal

    def _sandbox_flows(self, request: Request) -> Response:
        return json_response({"invocations": self.org.flow_invocations()})

    def _sandbox_events(self, request: Request) -> Response:
        return json_response({"events": self.org.published_events()})

    def _sandbox_expire(self, request: Request) -> Response:
        return json_response({"expired": self.expire_sessions()})


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", f"not an integer: {value!r}", ["Metadata"]) from None


# running it ------------------------------------------------------------------------------------------------


class SalesforceSandboxServer(SandboxServer):
    """A running Salesforce sandbox: ``.url`` (= ``.instance_url``), ``.token``, ``.ca_pem_path``, ``.org``."""

    app: SalesforceSandbox

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
    def sandbox(self) -> SalesforceSandbox:
        return self.app

    @property
    def org(self) -> SalesforceOrg:
        return self.app.org

    @property
    def token(self) -> str:
        return self.app.token

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
    fault_rate: float = 0.0,
    fault_kinds: Iterable[str] = FAULT_KINDS,
    slow_response_s: float = 2.0,
    flows: Iterable[str] = ("Leadsync_Qualified",),
    platform_events: Iterable[str] = ("Leadsync_Qualified__e",),
    bulk_job_delay_s: float = 0.0,
    custom_fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> SalesforceSandboxServer:
    """Seed an org and serve it over HTTPS in a background thread.

    People come from one synthetic stream (``seed``, ``now``): the first ``leads`` become Leads (the
    converted ones also a Contact with an Account), the next ``contacts`` become Contacts with Accounts.
    ``custom_fields`` creates fields up front, e.g. ``{"Lead.Leadsync_Score__c": {"type": "Number",
    "precision": 3, "scale": 0}}`` (the org otherwise starts without any). ``rate_limit`` is an extra
    rolling window (``"100/10s"``) answering 403 ``REQUEST_LIMIT_EXCEEDED`` like the daily limit.
    ``fault_rate`` (0..1) injects ``fault_kinds`` from an RNG seeded with ``seed``.
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
        fault_rate=fault_rate,
        fault_seed=seed,
        fault_kinds=fault_kinds,
        slow_response_s=slow_response_s,
    )
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
    done = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: done.set())
    try:
        if on_ready is not None:
            on_ready(server)
        else:
            org = server.org
            print(f"Salesforce sandbox listening on {server.url}", flush=True)
            print(f"Token: {server.token}  (client id {server.client_id}, secret {server.client_secret})", flush=True)
            print(f"CA certificate: {server.ca_pem_path}", flush=True)
            print(
                f"{org.count('Lead')} leads, {org.count('Contact')} contacts, {org.count('Account')} accounts",
                flush=True,
            )
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        server.stop()
