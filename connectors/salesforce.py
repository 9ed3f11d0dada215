"""Salesforce through ``simple-salesforce``: Leads and Contacts by SOQL (Bulk API 2.0 for large full syncs),
writes through sObject Collections with per-record failures, Flows or platform events as triggers.

Every call goes through ``_call`` (budget guard, error mapping, session renewal, tenacity retries); every
HTTP attempt, bulk ones included, is counted by a response hook on the session, which also reads
``Sforce-Limit-Info`` (Salesforce sends no Retry-After and has no per-second throttle: the daily allocation
is what must not run dry).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import structlog
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors._at_most_once import at_most_once
from connectors._batching import write_isolating
from connectors._deadline import install as install_deadline
from connectors._deadline import request_deadline
from connectors._ratelimit import RollingWindowLimiter, shared_limiter
from connectors._retry import retrying
from connectors._salesforce_auth import CAFileAdapter, SalesforceAuth, make_session
from connectors._salesforce_rows import (
    _bulk_rows,
    _checked_page,
    _chunks,
    _event_activity,
    _member_activity,
    _parse_time,
    _role_row,
    _task_activity,
    _won_row,
)
from connectors._validate import id_type_problem, require, restricted_picklists
from connectors.base import (
    OutcomeSpec,
    PropertySpec,
    RawActivity,
    RawOutcome,
    RawRecord,
    RecordFailure,
    RecordUpdate,
    Window,
    WriteResult,
)
from connectors.errors import (
    AuthError,
    BudgetExhausted,
    ConnectorError,
    FatalError,
    MalformedResponse,
    RequestRejected,
    RetriableError,
)

T = TypeVar("T")
log = structlog.get_logger("leadsync.connectors")

#: sObject Collections take at most this many records per request
COLLECTION_SIZE = 200
#: SOQL's largest batch (``Sforce-Query-Options: batchSize``)
QUERY_PAGE_SIZE = 2000
#: ids per ``WhoId IN (...)`` query: about 28 URL-encoded bytes each, so the GET stays under 16 KB
ACTIVITY_ID_CHUNK = 450
#: ids per outcome query (``Id IN``/``ContactId IN``): the same URL budget as the activity queries
OUTCOME_ID_CHUNK = ACTIVITY_ID_CHUNK
#: ids per query when records are read by id (webhook micro-passes)
ID_READ_CHUNK = 100
#: a converted lead is scored as its contact: lead reads leave it out
_UNCONVERTED = {"Lead": " AND IsConverted = false"}
#: Lead fields that tell whether and how it converted (read with the ordinary record reads)
LEAD_OUTCOME_FIELDS = ("IsConverted", "ConvertedDate", "ConvertedOpportunityId")
#: Bulk API 2.0 rows per results page
BULK_PAGE_SIZE = 50_000
CURSOR_FIELD = "SystemModstamp"
RATE_WINDOW_S = 10.0
#: canonical object type -> sObject
SOBJECTS = {"lead": "Lead", "contact": "Contact"}
#: per-record error codes worth retrying in a later pass
TRANSIENT_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION", "QUERY_TIMEOUT"}
)
_LABEL_VERSION = re.compile(r"/v\d+\.\d+")
_LABEL_IDS = re.compile(r"/[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?(?:-\d+)?(?=/|$)")
_WHOLE = re.compile(r"^-?\d+(\.0+)?$")
_NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
_SF_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)\+0000$")
_FIELD_TYPES = {"number": "Number", "string": "Text", "datetime": "DateTime", "enumeration": "Picklist"}


def _soql_time(value: datetime, *, ceil: bool = False) -> str:
    """An unquoted SOQL datetime literal in UTC, in milliseconds as SystemModstamp; ``ceil`` for an exclusive
    upper bound, so a record stamped in the same millisecond as the bound (but before it) is not left out."""
    value = value.astimezone(UTC)
    if ceil and value.microsecond % 1000:
        value = value + timedelta(microseconds=1000 - value.microsecond % 1000)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _text(value: Any) -> str | None:
    """Values as strings, the way HubSpot sends them, so diffs and mappings treat both CRMs alike."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    match = _SF_DATETIME.match(text)
    return f"{match.group(1)}Z" if match else text


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"Account": {"Industry": x}}`` -> ``{"Account.Industry": x}``; drops ``attributes``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _errors_of(content: Any) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error body (a JSON array of {message, errorCode})."""
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    if isinstance(content, Mapping):
        return str(content.get("errorCode") or content.get("error") or ""), str(content.get("message") or "")
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return "", str(content)[:300]


def map_error(exc: Exception) -> ConnectorError:
    """Turn a simple-salesforce or transport exception into the connector's error tree (the one place)."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, SalesforceAuthenticationFailed):
        return AuthError(f"Salesforce login failed: {exc}")
    if isinstance(exc, SalesforceError):
        status = exc.status
        code, message = _errors_of(exc.content)
        text = f"Salesforce {status} {code}: {message}".rstrip(": ")
        if isinstance(exc, SalesforceExpiredSession):
            return AuthError(f"{text} (session expired or invalid)", status=status)
        if code == "REQUEST_LIMIT_EXCEEDED":
            return RetriableError(text, status=status)
        if isinstance(exc, SalesforceRefusedRequest):
            return AuthError(text, status=status)
        if isinstance(exc, SalesforceMalformedRequest | SalesforceResourceNotFound | SalesforceMoreThanOneRecord):
            return RequestRejected(text, status=status)
        if isinstance(exc, SalesforceGeneralError) and (status >= 500 or status == 429):
            return RetriableError(text, status=status)
        return RequestRejected(text, status=status)
    if isinstance(exc, SalesforceOperationError):
        return RetriableError(f"Salesforce job failed: {exc}")
    if isinstance(exc, json.JSONDecodeError):  # requests' JSONDecodeError is one too: a 2xx that does not parse
        return MalformedResponse(f"Salesforce answered with malformed JSON: {exc}")
    if isinstance(exc, csv.Error):
        return MalformedResponse(f"Salesforce Bulk API answered with malformed CSV: {exc}")
    if isinstance(exc, requests.RequestException | ConnectionError | TimeoutError | json.JSONDecodeError):
        return RetriableError(f"Salesforce unreachable: {type(exc).__name__}: {exc}")
    return ConnectorError(f"Salesforce call failed: {type(exc).__name__}: {exc}")


class _TimeoutAdapter(CAFileAdapter):
    """``timeout_s`` for every whole request (simple-salesforce sets no timeout) and optional CA trust.

    requests' timeout applies to each socket read, so a body trickled a few bytes a second would never
    trip it: the body is read here, inside a deadline that shuts the socket down (``connectors._deadline``).
    """

    def __init__(self, ca_file: str | None, timeout_s: float) -> None:
        super().__init__(ca_file or "")
        self.timeout_s = timeout_s

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        install_deadline(self.poolmanager)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (min(10.0, self.timeout_s), self.timeout_s)
        with request_deadline(self.timeout_s) as deadline:
            try:
                if not self.ca_file:
                    response = super(CAFileAdapter, self).send(request, *args, **kwargs)
                else:
                    response = super().send(request, *args, **kwargs)
                if not kwargs.get("stream"):
                    _ = response.content  # the whole body, inside the deadline
            except requests.RequestException as exc:
                if deadline.expired:
                    path = urlsplit(request.url or "").path
                    msg = (
                        f"Salesforce {request.method} {path}: no complete answer within "
                        f"salesforce.timeout_s={self.timeout_s:g}s (the whole request, body included)"
                    )
                    raise RetriableError(msg) from exc
                raise
        return response


class SalesforceConnector:
    """The Salesforce side of leadsync (see ``connectors.base.Connector``)."""

    name = "salesforce"

    def __init__(
        self,
        *,
        auth: SalesforceAuth,
        ca_file: str | None = None,
        api_version: str = "59.0",
        timeout_s: float = 30,
        max_retries: int = 6,
        backoff_initial_s: float = 0.5,
        daily_reserve: float = 0.1,
        bulk_threshold: int = 10_000,
        bulk_poll_s: float = 0.5,
        objects: Sequence[str] = ("lead", "contact"),
        read_activities: bool = True,
        activity_horizon_days: int | None = 365,
        flow_api_name: str | None = None,
        platform_event: str | None = None,
        confirm_modstamps: bool = True,
        rate_limit_per_10s: int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.auth = auth
        self.api_version = api_version
        self.session = session or make_session()
        adapter = _TimeoutAdapter(ca_file, timeout_s)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.hooks["response"].append(self._on_response)
        self._retrying = retrying("salesforce", max_retries, initial=backoff_initial_s)
        self.daily_reserve = daily_reserve
        self.bulk_threshold = bulk_threshold
        self.bulk_poll_s = bulk_poll_s
        self.objects = tuple(objects)
        self.read_activities_enabled = read_activities
        self.activity_horizon_days = activity_horizon_days
        self.flow_api_name = flow_api_name
        self.platform_event = platform_event
        #: read SystemModstamp back after writes, so the next pass can skip re-reading activities
        self.confirm_modstamps = confirm_modstamps and read_activities
        self._calls = 0
        #: the pass's reader thread and its writes both count calls
        self._count_lock = threading.Lock()
        self.renewals = 0
        #: ``Sforce-NumberOfRecords`` of the last Bulk API results page, to check the CSV is whole
        self._bulk_rows: int | None = None
        #: last ``Sforce-Limit-Info: api-usage=USED/LIMIT``
        self.daily_used: int | None = None
        self.daily_limit: int | None = None
        self._describe: dict[str, dict[str, str]] = {}
        self._picklists: dict[str, dict[str, frozenset[str]]] = {}  # restricted ones: no other value is stored
        self._sf: Salesforce | None = None
        self._on_call: list[Callable[[str, int | None], None]] = []
        #: Salesforce has no per-second throttle; an optional cap shares the org with other integrations
        self.limiter: RollingWindowLimiter | None = None
        if rate_limit_per_10s:
            account = hashlib.sha256(f"{auth.login_url}|{auth.client_id or auth.instance_url}".encode()).hexdigest()
            self.limiter = shared_limiter(("salesforce", account[:16]), rate_limit_per_10s, RATE_WINDOW_S)

    #: records per sObject Collections call: the pipeline gathers changed scores across the pass into these
    write_batch_size = COLLECTION_SIZE
    #: fields that move with every change of a record (never compared to tell an echo of leadsync's write)
    cursor_properties: tuple[str, ...] = (CURSOR_FIELD, "LastModifiedDate", "LastModifiedById")

    def limit_info(self) -> dict[str, Any]:
        """The pace in force and the org's daily allocation as ``Sforce-Limit-Info`` last said (``status``)."""
        info: dict[str, Any] = (
            self.limiter.in_force().as_dict()
            if self.limiter is not None
            else {"max_calls": None, "period_s": None, "source": "none", "portal_max": None, "others": 0}
        )
        info["daily_limit"], info["daily_remaining"] = self.daily_limit, self.daily_remaining
        info["daily_source"] = "Sforce-Limit-Info" if self.daily_limit is not None else None
        return info

    @property
    def explicit_triggers(self) -> bool:
        """True when leadsync must call something per qualification (else Flows react to the field update)."""
        return bool(self.flow_api_name or self.platform_event)

    @property
    def api_calls(self) -> int:
        return self._calls

    # -- session, counting, the single call path

    @property
    def daily_remaining(self) -> int | None:
        """Requests left in the org's rolling 24-hour allocation, as of the last answer (for metrics)."""
        if self.daily_limit is None or self.daily_used is None:
            return None
        return self.daily_limit - self.daily_used

    def on_call(self, callback: Callable[[str, int | None], None]) -> None:
        """Register a callback run after every HTTP answer with (endpoint label, status)."""
        self._on_call.append(callback)

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.url and "/services/oauth2/" in response.request.url:
            return  # the token endpoint is not an API call
        with self._count_lock:
            self._calls += 1
        if self._on_call:
            path = urlsplit(response.request.url or "").path
            label = f"{response.request.method} {_LABEL_IDS.sub('/{id}', _LABEL_VERSION.sub('/v{version}', path))}"
            for callback in self._on_call:
                callback(label, response.status_code)
        info = response.headers.get("Sforce-Limit-Info", "")
        match = re.search(r"(?:^|[^-])api-usage=(\d+)/(\d+)", info)
        if match:
            self.daily_used, self.daily_limit = int(match.group(1)), int(match.group(2))
        self._check_answer(response, streamed=bool(kwargs.get("stream")))

    def _check_answer(self, response: requests.Response, *, streamed: bool = False) -> None:
        """A 2xx with a body must be what the API sends (JSON; CSV for Bulk results): a gateway's HTML page
        with status 200 is a malformed answer (retried), never data. Bulk results also say their row count."""
        if not 200 <= response.status_code < 300 or response.status_code == 204:
            return
        path = urlsplit(response.request.url or "").path
        bulk_results = "/jobs/query/" in path and path.endswith("/results")
        content_type = response.headers.get("Content-Type", "")
        expected = "csv" if bulk_results else "json"
        has_body = response.headers.get("Content-Length") != "0" if streamed else bool(response.content)
        if expected not in content_type.lower() and (has_body or bulk_results):
            kind = content_type.split(";", 1)[0].strip() or "no content type"
            raise MalformedResponse(
                f"Salesforce {response.request.method} {path}: answered {response.status_code} with {kind}, "
                f"not {expected.upper()}"
            )
        if bulk_results:
            count = response.headers.get("Sforce-NumberOfRecords", "")
            require(count.isdigit(), "Salesforce", path, "Bulk results without Sforce-NumberOfRecords")
            self._bulk_rows = int(count)

    def _connect(self) -> Salesforce:
        token = self.auth.fetch(self.session)
        self._sf = Salesforce(
            instance_url=token.instance_url,
            session_id=token.access_token,
            session=self.session,
            version=self.api_version,
            object_pairs_hook=dict,
        )
        return self._sf

    @property
    def sf(self) -> Salesforce:
        """The simple-salesforce client (logs in on first use)."""
        return self._sf if self._sf is not None else self._call_retrying(self._connect)

    def _check_budget(self) -> None:
        """Stop before the org's rolling daily allocation runs dry: every user of the org shares it."""
        if self.daily_limit and self.daily_used is not None:
            ceiling = int(self.daily_limit * (1 - self.daily_reserve))
            if self.daily_used >= ceiling:
                msg = (
                    f"Salesforce daily API budget guard: {self.daily_used} of {self.daily_limit} requests used, "
                    f"at or above {ceiling} (salesforce.daily_reserve={self.daily_reserve}); stopping cleanly, "
                    "the next pass resumes from the same watermark"
                )
                raise BudgetExhausted(msg)

    def _attempt(self, fn: Callable[[Salesforce], T]) -> T:
        self._check_budget()
        sf = self.sf
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            return fn(sf)
        except SalesforceExpiredSession as exc:
            if not self.auth.can_renew:
                msg = "Salesforce session expired or invalid, and only a fixed access_token is configured"
                raise AuthError(msg, status=401) from exc
            # renew once and retry; a second 401 with a brand-new token is a real credentials problem
            self.renewals += 1
            sf = self._connect()
            try:
                return fn(sf)
            except SalesforceExpiredSession as again:
                msg = "Salesforce refused a freshly issued session (401 INVALID_SESSION_ID twice)"
                raise AuthError(msg, status=401) from again
            except Exception as inner:
                raise map_error(inner) from inner
        except Exception as exc:
            raise map_error(exc) from exc

    def _call_retrying(self, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return fn()
            except Exception as exc:
                raise map_error(exc) from exc

        result: T = self._retrying(attempt)
        return result

    def _call(self, fn: Callable[[Salesforce], T]) -> T:
        """Budget guard, session renewal, error mapping and retries around one simple-salesforce call."""
        result: T = self._retrying(self._attempt, fn)
        return result

    # -- schema

    def fields(self, sobject: str) -> dict[str, str]:
        """Field name -> type of one sObject (cached per connector)."""
        if sobject not in self._describe:
            data: Any = self._call(lambda sf: sf.restful(f"sobjects/{sobject}/describe"))
            self._describe[sobject] = {f["name"]: f["type"] for f in (data or {}).get("fields", [])}
            self._picklists[sobject] = restricted_picklists(data)
        return self._describe[sobject]

    def enumerations(self, object_type: str) -> Mapping[str, frozenset[str]]:
        """Restricted picklist -> its values, for one object type, as read by the last describe."""
        return self._picklists.get(SOBJECTS.get(object_type, ""), {})

    def describe(self) -> Mapping[str, str]:
        merged: dict[str, str] = {}
        for object_type in reversed(self.objects):
            merged.update(self.fields(SOBJECTS[object_type]))
        return merged

    def _spec_payload(self, sobject: str, spec: PropertySpec) -> dict[str, Any]:
        meta: dict[str, Any] = {"label": spec.label.title(), "type": _FIELD_TYPES.get(spec.type, "Text")}
        if spec.description:
            meta["description"] = spec.description
            meta["inlineHelpText"] = spec.description[:255]
        if spec.type == "number":
            meta.update(precision=5, scale=0)
        elif spec.type == "string":
            meta["length"] = 255
        elif spec.type == "enumeration":
            meta["valueSet"] = {
                "restricted": True,
                "valueSetDefinition": {"value": [{"fullName": o, "label": o} for o in spec.options]},
            }
        return {"FullName": f"{sobject}.{spec.name}", "Metadata": meta}

    def missing_properties(self, specs: Sequence[PropertySpec]) -> list[str]:
        """``Object.Field`` names leadsync writes that the org lacks (or the integration user cannot see)."""
        missing = []
        for object_type in self.objects:
            sobject = SOBJECTS[object_type]
            existing = self.fields(sobject)
            missing += [f"{sobject}.{s.name}" for s in specs if s.name not in existing]
        return missing

    def ensure_properties(self, specs: Sequence[PropertySpec]) -> list[str]:
        """Create missing fields through the Tooling API; when the org refuses, name every field to create.

        :raises FatalError: the integration user may not create fields (lists the fields for an admin).
        """
        missing = self.missing_properties(specs)
        if not missing:
            return []
        by_name = {s.name: s for s in specs}
        created: list[str] = []
        for full_name in missing:
            sobject, field = full_name.split(".", 1)
            payload = self._spec_payload(sobject, by_name[field])
            try:
                self._call(partial(_create_field, payload=payload))
            except (RequestRejected, AuthError) as exc:
                left = [m for m in missing if m not in created]
                msg = (
                    f"Salesforce refused to create custom field {full_name} ({exc}); ask an admin to create "
                    f"these fields (and grant the integration user read/edit access): {', '.join(left)}"
                )
                raise FatalError(msg, status=exc.status) from exc
            created.append(full_name)
        self._describe.clear()
        return created

    # -- reads

    def _select(self, sobject: str, properties: Sequence[str]) -> list[str]:
        """The requested fields this sObject has: plain ones by describe, ``Rel.Field`` when ``RelId`` exists."""
        existing = self.fields(sobject)
        chosen = {"Id", CURSOR_FIELD}
        for prop in properties:
            if "." in prop:
                if f"{prop.split('.', 1)[0]}Id" in existing:
                    chosen.add(prop)
            elif prop in existing:
                chosen.add(prop)
        return sorted(chosen)

    @staticmethod
    def _where(sobject: str, window: Window) -> str:
        clauses = [f"{CURSOR_FIELD} < {_soql_time(window.end, ceil=True)}"]
        if window.start is not None:
            clauses.insert(0, f"{CURSOR_FIELD} >= {_soql_time(window.start)}")
        if sobject == "Lead":
            clauses.append("IsConverted = false")  # a converted lead is scored as its contact
        return " AND ".join(clauses)

    def read_records(self, window: Window, properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        """Leads (not converted) and Contacts stamped in ``window``; in an incremental window also the people
        with new Tasks, Events or campaign responses, since logging an activity does not stamp the person.

        A person's ``updated_at`` is the later of its ``SystemModstamp`` and its newest activity change, so the
        pipeline's "unchanged since leadsync wrote it" shortcut never hides a new activity.
        """
        engaged: dict[str, dict[str, datetime]] = {}
        if window.start is not None and self.read_activities_enabled:
            engaged = self._engaged_ids(window)
        seen: dict[str, set[str]] = {}
        for object_type in self.objects:
            sobject = SOBJECTS[object_type]
            fields = self._select(sobject, properties)
            where = self._where(sobject, window)
            ids = seen.setdefault(object_type, set())
            stamps = engaged.get(object_type, {})
            if window.start is None and self.bulk_threshold >= 0:
                count = self._call(partial(_query, soql=f"SELECT COUNT() FROM {sobject} WHERE {where}"))
                if int(count.get("totalSize", 0)) > self.bulk_threshold:
                    yield from self._read_bulk(object_type, sobject, fields, where)
                    continue
            for page in self._read_soql(object_type, sobject, fields, where, stamps):
                ids.update(r.id for r in page)
                yield page
        for object_type in self.objects:
            sobject = SOBJECTS[object_type]
            stamps = engaged.get(object_type, {})
            missing = sorted(set(stamps) - seen.get(object_type, set()))
            fields = self._select(sobject, properties)
            for chunk in _chunks(missing, ACTIVITY_ID_CHUNK):
                where = f"Id IN ({', '.join(_quote(i) for i in chunk)})"
                if sobject == "Lead":
                    where += " AND IsConverted = false"
                yield from self._read_soql(object_type, sobject, fields, where, stamps)

    def read_by_ids(self, ids: Sequence[str], properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        """The leads and contacts with these ids (by their key prefix), one ``Id IN`` query per 100 ids and
        object; unconverted leads only, as ``read_records`` reads them. Unknown ids are absent."""
        by_type: dict[str, list[str]] = {}
        for record_id in ids:
            kind = {"00Q": "lead", "003": "contact"}.get(record_id[:3])
            if kind in self.objects:
                by_type.setdefault(kind, []).append(record_id)
        for object_type, wanted in by_type.items():
            sobject = SOBJECTS[object_type]
            fields = self._select(sobject, properties)
            for chunk in _chunks(wanted, ID_READ_CHUNK):
                where = f"Id IN ({', '.join(_quote(i) for i in chunk)})"
                yield from self._read_soql(object_type, sobject, fields, where + _UNCONVERTED.get(sobject, ""))

    def _engaged_ids(self, window: Window) -> dict[str, dict[str, datetime]]:
        """Leads and contacts whose Tasks, Events or campaign memberships changed in ``window``, by object
        type, with the newest such change (three queries, plus one per 2,000 more rows)."""
        assert window.start is not None
        start, end = _soql_time(window.start), _soql_time(window.end, ceil=True)
        stamp = f"SystemModstamp >= {start} AND SystemModstamp < {end}"
        found: dict[str, dict[str, datetime]] = {}

        def add(record_id: Any, when: Any) -> None:
            kind = {"00Q": "lead", "003": "contact"}.get(record_id[:3]) if isinstance(record_id, str) else None
            at = _parse_time(when)
            if kind and at is not None:
                known = found.setdefault(kind, {})
                known[record_id] = max(at, known.get(record_id, at))

        for sobject in ("Task", "Event"):
            soql = f"SELECT WhoId, SystemModstamp FROM {sobject} WHERE {stamp} AND WhoId != null"
            for rows in self._query_pages(soql):
                for row in rows:
                    add(row.get("WhoId"), row.get("SystemModstamp"))
        for rows in self._query_pages(f"SELECT LeadId, ContactId, SystemModstamp FROM CampaignMember WHERE {stamp}"):
            for row in rows:
                add(row.get("LeadId"), row.get("SystemModstamp"))
                add(row.get("ContactId"), row.get("SystemModstamp"))
        return found

    def _to_record(
        self, object_type: str, row: Mapping[str, Any], engaged: Mapping[str, datetime] | None = None
    ) -> RawRecord:
        flat = _flatten(row)
        properties = {k: _text(v) for k, v in flat.items()}
        # a null id stays empty (never the string "None"): the pipeline skips and counts such records
        record_id = "" if flat.get("Id") is None else str(flat["Id"]).strip()
        updated = _parse_time(flat.get(CURSOR_FIELD))
        active = (engaged or {}).get(record_id)
        if active is not None and (updated is None or active > updated):
            updated = active
        origin = f"SOQL query on {SOBJECTS[object_type]}"
        refused = id_type_problem(flat.get("Id"))
        return RawRecord(record_id, object_type, properties, updated, refused=refused, origin=origin)

    def _query_pages(self, soql: str) -> Iterator[list[dict[str, Any]]]:
        """Pages of one SOQL query, following ``nextRecordsUrl`` (one call each; a repeating cursor stops)."""
        headers = {"Sforce-Query-Options": f"batchSize={QUERY_PAGE_SIZE}"}
        page = self._call(lambda sf: _checked_page(sf.query(soql, headers=headers)))
        seen: set[str] = set()
        while True:
            yield list(page["records"])
            if page["done"]:
                return
            nxt = page["nextRecordsUrl"]
            if nxt in seen:
                raise ConnectorError(f"Salesforce query paging repeated the cursor {nxt!r}")
            seen.add(nxt)
            page = self._call(partial(_query_more, url=nxt, headers=headers))

    def _read_soql(
        self,
        object_type: str,
        sobject: str,
        fields: list[str],
        where: str,
        engaged: Mapping[str, datetime] | None = None,
    ) -> Iterator[list[RawRecord]]:
        # the query cursor is a snapshot: records stamped while we page (our own writes) neither loop nor skip
        last_id: str | None = None
        restarts = 0
        while True:
            after = f" AND Id > {_quote(last_id)}" if last_id else ""
            soql = f"SELECT {', '.join(fields)} FROM {sobject} WHERE {where}{after} ORDER BY Id"
            try:
                for rows in self._query_pages(soql):
                    if rows:
                        yield [self._to_record(object_type, r, engaged) for r in rows]
                        ids = [r["Id"] for r in rows if isinstance(r.get("Id"), str)]  # a refused id is no key
                        last_id, restarts = (ids[-1] if ids else last_id), 0
                return
            except RequestRejected as exc:
                # a retried page (after a malformed answer) may find its cursor closed, as Salesforce closes
                # it after the last batch: go on from the last id read (ORDER BY Id), a few times at most
                if "INVALID_QUERY_LOCATOR" not in str(exc) or restarts >= 3:
                    raise
                restarts += 1
                log.warning("salesforce.query_restarted", sobject=sobject, after_id=last_id, error=str(exc))

    def _read_bulk(self, object_type: str, sobject: str, fields: list[str], where: str) -> Iterator[list[RawRecord]]:
        """Bulk API 2.0 query job, streamed as CSV pages; a failed job is re-run, skipping rows already yielded."""
        soql = f"SELECT {', '.join(fields)} FROM {sobject} WHERE {where}"
        yielded: set[str] = set()
        attempts = 0
        while True:
            self._check_budget()
            try:
                for chunk in self._bulk_pages(sobject, soql):
                    page = [self._to_record(object_type, row) for row in chunk if row.get("Id") not in yielded]
                    for start in range(0, len(page), QUERY_PAGE_SIZE):
                        part = page[start : start + QUERY_PAGE_SIZE]
                        yield part
                        yielded.update(r.id for r in part)
                return
            except RetriableError as exc:
                attempts += 1
                if attempts > 3:
                    raise
                log.warning("salesforce.bulk_rerun", sobject=sobject, attempt=attempts, error=str(exc))

    def _bulk_pages(self, sobject: str, soql: str) -> Iterator[list[dict[str, Any]]]:
        def run(sf: Salesforce) -> Iterator[str | int]:
            bulk_type = getattr(sf.bulk2, sobject)
            pages: Iterator[str | int] = bulk_type.query(soql, max_records=BULK_PAGE_SIZE, wait=self.bulk_poll_s)
            return pages

        pages = self._call(run)
        while True:
            try:
                text = next(pages)
            except StopIteration:
                return
            except SalesforceExpiredSession as exc:
                # bulk2 never renews a session itself: renew here, and the caller re-runs the job
                if not self.auth.can_renew:
                    raise map_error(exc) from exc
                self.renewals += 1
                self._connect()
                raise RetriableError("Salesforce session expired during a Bulk API 2.0 query") from exc
            except Exception as exc:
                raise map_error(exc) from exc
            try:
                rows = _bulk_rows(sobject, str(text), self._bulk_rows)
            except csv.Error as exc:
                raise map_error(exc) from exc
            yield [{k: self._csv_value(sobject, k, v) for k, v in row.items()} for row in rows]

    def _csv_value(self, sobject: str, name: str, value: str) -> Any:
        """A Bulk CSV cell as SOQL's JSON would give it: empty is null, whole numbers have no ``.0``."""
        if value == "":
            return None
        numeric = self.fields(sobject).get(name) in _NUMBER_TYPES or ("." in name and _WHOLE.match(value))
        if numeric and _WHOLE.match(value):
            return value.split(".", 1)[0]
        return value

    # -- activities

    def read_activities(self, records: Sequence[RawRecord]) -> Mapping[str, list[RawActivity]]:
        """Tasks, Events and campaign responses of a page: three queries per 450 records."""
        if not self.read_activities_enabled or not records:
            return {}
        ids = [r.id for r in records]
        by_type: dict[str, list[str]] = {}
        for r in records:
            by_type.setdefault(r.object_type, []).append(r.id)
        horizon = f" AND CreatedDate = LAST_N_DAYS:{self.activity_horizon_days}" if self.activity_horizon_days else ""
        out: dict[str, list[RawActivity]] = {}

        def add(activity: RawActivity) -> None:
            out.setdefault(activity.record_id, []).append(activity)

        for chunk in _chunks(ids, ACTIVITY_ID_CHUNK):
            who = ", ".join(_quote(i) for i in chunk)
            task_soql = (
                "SELECT Id, WhoId, TaskSubtype, Subject, Status, CallType, CallDurationInSeconds, ActivityDate, "
                f"CreatedDate FROM Task WHERE WhoId IN ({who}){horizon}"
            )
            event_soql = (
                "SELECT Id, WhoId, Subject, ActivityDateTime, StartDateTime, CreatedDate "
                f"FROM Event WHERE WhoId IN ({who}){horizon}"
            )
            for soql, to_activity in ((task_soql, _task_activity), (event_soql, _event_activity)):
                for rows in self._query_pages(soql):
                    for row in rows:
                        add(to_activity(row))
            chunk_set = set(chunk)
            parts = [
                f"{column} IN ({', '.join(_quote(i) for i in by_type.get(kind, []) if i in chunk_set)})"
                for kind, column in (("lead", "LeadId"), ("contact", "ContactId"))
                if any(i in chunk_set for i in by_type.get(kind, []))
            ]
            if parts:
                member_soql = (
                    "SELECT Id, LeadId, ContactId, CampaignId, Status, HasResponded, FirstRespondedDate, "
                    f"CreatedDate, SystemModstamp FROM CampaignMember WHERE Status != 'Sent' AND ({' OR '.join(parts)})"
                )
                for rows in self._query_pages(member_soql):
                    for row in rows:
                        for column in ("LeadId", "ContactId"):
                            if row.get(column) in chunk_set:
                                member = _member_activity(str(row[column]), row)
                                if member is not None:
                                    add(member)
        for activities in out.values():
            activities.sort(key=lambda a: (a.timestamp, a.kind, str(a.attributes.get("id", ""))))
        return out

    # -- outcomes

    def outcome_properties(self, spec: OutcomeSpec) -> Sequence[str]:
        """Lead conversion fields, when leads are read and the spec counts a conversion or a won deal."""
        if "lead" not in self.objects or not (spec.converted_lead or spec.closed_won):
            return []
        return list(LEAD_OUTCOME_FIELDS)

    def read_outcomes(self, records: Sequence[RawRecord], spec: OutcomeSpec) -> Mapping[str, RawOutcome]:
        """Converted leads (``lead:converted``, on ``ConvertedDate``) and won Opportunities (``opportunity:won``,
        on ``CloseDate``): a lead's through ``ConvertedOpportunityId``, a contact's through its
        OpportunityContactRoles. The earliest outcome of each record counts.

        A lead carrying ``IsConverted`` (``outcome_properties``) costs no call; one without it (a lead from
        the cache re-checked later: converted leads are never read again) is looked up, one query per 450.
        Won deals cost one query per 450 converted leads and one per 450 contacts.
        """
        if not records or not (spec.converted_lead or spec.closed_won):
            return {}
        found: dict[str, RawOutcome] = {}

        def add(outcome: RawOutcome) -> None:
            known = found.get(outcome.record_id)
            if known is None or outcome.converted_at < known.converted_at:
                found[outcome.record_id] = outcome

        leads = [r for r in records if r.object_type == "lead" and r.id]
        contacts = sorted({r.id for r in records if r.object_type == "contact" and r.id})
        conversions = self._lead_conversions(leads)
        won_via: dict[str, list[str]] = {}
        for lead_id, (converted_at, opportunity_id) in conversions.items():
            if spec.converted_lead and converted_at is not None:
                detail = {"opportunity_id": opportunity_id} if opportunity_id else {}
                add(RawOutcome(lead_id, converted_at, "lead:converted", detail))
            if spec.closed_won and opportunity_id:
                won_via.setdefault(opportunity_id, []).append(lead_id)
        if won_via:
            for chunk in _chunks(sorted(won_via), OUTCOME_ID_CHUNK):
                soql = (
                    "SELECT Id, IsWon, CloseDate FROM Opportunity "
                    f"WHERE Id IN ({', '.join(_quote(i) for i in chunk)}) AND IsWon = true"
                )
                for rows in self._query_pages(soql):
                    for row in rows:
                        opportunity_id, closed = _won_row(row, "Opportunity")
                        for lead_id in won_via.get(opportunity_id, []):
                            add(RawOutcome(lead_id, closed, "opportunity:won", {"opportunity_id": opportunity_id}))
        if spec.closed_won:
            for chunk in _chunks(contacts, OUTCOME_ID_CHUNK):
                soql = (
                    "SELECT ContactId, OpportunityId, Opportunity.CloseDate FROM OpportunityContactRole "
                    f"WHERE ContactId IN ({', '.join(_quote(i) for i in chunk)}) AND Opportunity.IsWon = true"
                )
                for rows in self._query_pages(soql):
                    for row in rows:
                        contact_id, opportunity_id, closed = _role_row(row)
                        add(RawOutcome(contact_id, closed, "opportunity:won", {"opportunity_id": opportunity_id}))
        return found

    def _lead_conversions(self, leads: Sequence[RawRecord]) -> dict[str, tuple[datetime | None, str | None]]:
        """Converted leads -> (ConvertedDate, ConvertedOpportunityId), from the records' own fields when they
        carry them, else from one query per 450 leads."""
        out: dict[str, tuple[datetime | None, str | None]] = {}
        unknown: list[str] = []
        for r in leads:
            flag = r.properties.get("IsConverted")
            if flag is None:
                unknown.append(r.id)
            elif str(flag).lower() == "true":
                opportunity = r.properties.get("ConvertedOpportunityId")
                out[r.id] = (_parse_time(r.properties.get("ConvertedDate")), str(opportunity) if opportunity else None)
        for chunk in _chunks(sorted(set(unknown)), OUTCOME_ID_CHUNK):
            soql = (
                f"SELECT Id, {', '.join(LEAD_OUTCOME_FIELDS[1:])} FROM Lead "
                f"WHERE Id IN ({', '.join(_quote(i) for i in chunk)}) AND IsConverted = true"
            )
            for rows in self._query_pages(soql):
                for row in rows:
                    lead_id = row.get("Id")
                    require(isinstance(lead_id, str) and lead_id != "", "Salesforce", "Lead query", "a row has no Id")
                    opportunity = row.get("ConvertedOpportunityId")
                    out[str(lead_id)] = (
                        _parse_time(row.get("ConvertedDate")),
                        str(opportunity) if opportunity else None,
                    )
        return out

    # -- writes

    def _coerce(self, sobject: str, name: str, value: str) -> Any:
        """Strings from the diff -> JSON values the field binds to (numbers, null for empty)."""
        kind = self.fields(sobject).get(name)
        if value == "":
            return None
        if kind in _NUMBER_TYPES:
            number = float(value)
            return int(number) if number.is_integer() else number
        if kind == "boolean":
            return value.lower() == "true"
        return value

    def write(self, updates: Sequence[RecordUpdate]) -> WriteResult:
        result = WriteResult()
        for start in range(0, len(updates), COLLECTION_SIZE):
            result.extend(self._write_batch(list(updates[start : start + COLLECTION_SIZE])))
        if self.confirm_modstamps and result.succeeded:
            result.modified_at.update(self._modstamps(updates, set(result.succeeded)))
        return result

    def _modstamps(self, updates: Sequence[RecordUpdate], landed: set[str]) -> dict[str, datetime]:
        """``SystemModstamp`` right after our write (one query per 450 records; Collections do not return it).

        The next pass reads these records back (the write stamped them); with the stamp it knows nothing else
        changed and reuses their activities instead of querying them again (three queries per 450 saved).
        Best effort: a failure here only costs those activity queries later.
        """
        by_object: dict[str, list[str]] = {}
        for u in updates:
            if u.id in landed:
                by_object.setdefault(SOBJECTS.get(u.object_type, u.object_type), []).append(u.id)
        stamps: dict[str, datetime] = {}
        try:
            for sobject, ids in by_object.items():
                for chunk in _chunks(ids, ACTIVITY_ID_CHUNK):
                    soql = (
                        f"SELECT Id, {CURSOR_FIELD} FROM {sobject} WHERE Id IN ({', '.join(_quote(i) for i in chunk)})"
                    )
                    for rows in self._query_pages(soql):
                        for row in rows:
                            stamp = _parse_time(row.get(CURSOR_FIELD))
                            if stamp is not None:
                                stamps[str(row["Id"])] = stamp
        except RetriableError:
            pass
        return stamps

    def _write_batch(self, batch: list[RecordUpdate]) -> WriteResult:
        bodies: dict[str, dict[str, Any]] = {}
        unsendable: list[RecordFailure] = []
        for u in batch:
            sobject = SOBJECTS.get(u.object_type, u.object_type)
            body: dict[str, Any] = {"attributes": {"type": sobject}, "id": u.id}
            try:
                body.update({k: self._coerce(sobject, k, v) for k, v in u.properties.items()})
            except ValueError as exc:  # a number field given text: Salesforce would reject the whole request
                unsendable.append(RecordFailure(u.id, f"value cannot be sent to {sobject}: {exc}", status=400))
                continue
            bodies[u.id] = body

        def send(part: list[RecordUpdate]) -> WriteResult:
            # a value the deserializer cannot bind fails the whole request (400): write_isolating splits it
            payload = {"allOrNone": False, "records": [bodies[u.id] for u in part]}
            results = self._call(lambda sf: sf.restful("composite/sobjects", method="PATCH", json=payload))
            return self._collection_outcome(part, results)

        result = write_isolating([u for u in batch if u.id in bodies], send)
        result.failed.extend(unsendable)
        return result

    @staticmethod
    def _collection_outcome(batch: list[RecordUpdate], results: Any) -> WriteResult:
        outcome = WriteResult()
        if not isinstance(results, list) or len(results) != len(batch):
            msg = "Salesforce did not confirm this record"
            outcome.failed = [RecordFailure(u.id, msg, retriable=True) for u in batch]
            return outcome
        for update, saved in zip(batch, results, strict=True):  # SaveResults come back in request order
            if saved.get("success"):
                outcome.succeeded.append(update.id)
                continue
            errors = saved.get("errors") or [{}]
            codes = {str(e.get("statusCode", "")) for e in errors}
            message = "; ".join(
                f"{e.get('statusCode', '')}: {e.get('message', '')}"
                + (f" ({', '.join(e['fields'])})" if e.get("fields") else "")
                for e in errors
            )
            outcome.failed.append(
                RecordFailure(update.id, message or "rejected", retriable=bool(codes & TRANSIENT_CODES), status=400)
            )
        return outcome

    # -- triggers

    def trigger(self, record_id: str, email: str | None) -> None:
        """Launch the configured Flow or publish the platform event for one qualified record (without either,
        record-triggered Flows react to the ``Leadsync_*__c`` update itself: no call here).

        :raises RequestRejected: the Flow ran but reported an error, or the event was refused.
        """
        if self.flow_api_name:
            body = {"inputs": [{"recordId": record_id}]}
            results = self._post_once(f"actions/custom/flow/{self.flow_api_name}", body, f"Flow for {record_id}")
            first = results[0] if isinstance(results, list) and results else {}
            if not first.get("isSuccess"):
                _, message = _errors_of(first.get("errors") or [])
                raise RequestRejected(f"Flow {self.flow_api_name} failed for {record_id}: {message}")
        elif self.platform_event:
            values = {"Record_Id__c": record_id, "Email__c": email}
            answer = self._post_once(f"sobjects/{self.platform_event}", values, f"event for {record_id}")
            if isinstance(answer, Mapping) and answer.get("success") is False:
                errors = [e for e in answer.get("errors") or [] if e.get("statusCode") != "OPERATION_ENQUEUED"]
                if errors:
                    raise RequestRejected(f"platform event {self.platform_event} refused: {errors}")

    def _post_once(self, path: str, body: Mapping[str, Any], what: str) -> Any:
        """A POST that must not run twice: never retried after it may have reached Salesforce."""
        post = partial(Salesforce.restful, path=path, method="POST", json=dict(body))
        return self._call(at_most_once(post, what, map_error, passthrough=(SalesforceExpiredSession,)))


def _create_field(sf: Salesforce, payload: Mapping[str, Any]) -> Any:
    return sf.toolingexecute("sobjects/CustomField", method="POST", data=dict(payload))


def _query(sf: Salesforce, soql: str) -> Any:
    return _checked_page(sf.query(soql))


def _query_more(sf: Salesforce, url: str, headers: Mapping[str, str]) -> Any:
    return _checked_page(sf.query_more(url, identifier_is_url=True, headers=dict(headers)))
