"""HubSpot through the official SDK (``hubspot-api-client``).

Reads contacts by modification time (keyset-paged by id inside a fixed time window, so the search API's
10,000-result cap and bulk edits that stamp thousands of records with one timestamp can neither loop nor
skip), writes properties in batches of 100 with per-record failures, and creates leadsync's properties.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import hubspot
import requests
import structlog
import urllib3
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
)
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from hubspot.discovery.discovery_base import DiscoveryBase
from hubspot.utils.requests.http_request_builder import Request as SdkRequest

from connectors._batching import write_isolating
from connectors._deadline import install as install_deadline
from connectors._deadline import request_deadline
from connectors._hubspot_activities import (
    DEFAULT_ACTIVITY_TYPES,
    DEFAULT_HORIZON_DAYS,
    AssociationReadStats,
    HubSpotActivityReader,
    keyset_search,
    parse_hubspot_time,
    raw_json,
    read_associations,
    read_objects,
)
from connectors._hubspot_companies import HubSpotCompanyReader
from connectors._ratelimit import RollingWindowLimiter, shared_limiter
from connectors._retry import retrying
from connectors._sdk_models import sdk_model
from connectors._validate import check_hubspot_collection, id_type_problem, parse_json_body
from connectors.base import (
    LIFECYCLE_STAGES,
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
    MalformedResponse,
    RequestRejected,
    RetriableError,
)

log = structlog.get_logger("leadsync.connectors")

#: at most this many inputs per batch call
BATCH_SIZE = 100
#: the list endpoint's largest page
LIST_PAGE_SIZE = 100
#: the search endpoint answers 400 past this many results for one query
SEARCH_RESULT_CAP = 10_000
#: contacts' modification cursor (companies and deals use hs_lastmodifieddate)
CURSOR_PROPERTY = "lastmodifieddate"
OBJECT_TYPE = "contacts"
RATE_WINDOW_S = 10.0
#: "Last Activity Date" and "Last Contacted": logging a call, email, meeting or note moves them
ACTIVITY_MARKERS: tuple[str, ...] = ("notes_last_updated", "notes_last_contacted")
#: the pace before the portal's headers say its limit: HubSpot's lowest private-app limit per 10 s
DEFAULT_RATE_PER_10S = 100

_FIELD_TYPES = {"number": "number", "string": "text", "datetime": "date", "enumeration": "select"}

#: internal names of lifecycle stages: the defaults, or a custom stage's internal id (digits)
_STAGE_NAME = re.compile(r"[a-z0-9_]+")


#: what a deal outcome reads of each associated deal
DEAL_PROPERTIES: tuple[str, ...] = (
    "dealstage",
    "closedate",
    "amount",
    "pipeline",
    "hs_is_closed_won",
    "createdate",
    "hs_lastmodifieddate",
)


@dataclass(slots=True)
class OutcomeReadStats(AssociationReadStats):
    """What the last :meth:`HubSpotConnector.read_outcomes` did: calls, and the deals it saw."""

    won: int = 0
    #: won deals without a ``closedate`` (no date, so no outcome)
    undated: int = 0
    #: associated deals that are open or closed lost
    not_won: int = 0


def is_closed_won(properties: Mapping[str, Any]) -> bool:
    """HubSpot's computed ``hs_is_closed_won`` (true for the won stage of any pipeline); the default
    pipeline's ``closedwon`` stage when a portal does not return it."""
    flag = properties.get("hs_is_closed_won")
    if flag not in (None, ""):
        return str(flag).strip().lower() == "true"
    return properties.get("dealstage") == "closedwon"


def lifecycle_date_properties(stage: str) -> list[str]:
    """The ``hs_lifecyclestage_<s>_date`` properties whose date says a contact reached ``stage``.

    HubSpot stamps a stage's date when the contact enters that stage, and a contact moved straight past it
    (a lead closed as a customer in one edit) gets only the later stage's date: so for a default stage the
    later default stages count too (a customer has certainly reached ``opportunity``). A custom stage has
    no known order, only its own date counts.
    """
    if not _STAGE_NAME.fullmatch(stage):
        raise ValueError(
            f"outcomes.lifecycle_stage {stage!r} is not a HubSpot lifecycle stage's internal name "
            f"(lower case, e.g. {', '.join(LIFECYCLE_STAGES[3:6])}, or a custom stage's id)"
        )
    stages = LIFECYCLE_STAGES[LIFECYCLE_STAGES.index(stage) :] if stage in LIFECYCLE_STAGES else (stage,)
    return [f"hs_lifecyclestage_{s}_date" for s in stages]


def _ms(value: datetime, *, ceil: bool = False) -> str:
    """Epoch milliseconds; ``ceil`` for an exclusive upper bound, so a record stamped in the same
    millisecond as the bound (but before it) is not left out."""
    micros = value.timestamp() * 1_000_000
    whole, part = divmod(round(micros), 1000)
    return str(whole + 1 if ceil and part else whole)


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None:
        value = getter(name.lower())
    return str(value) if value is not None else None


def _int_header(headers: Any, name: str) -> int | None:
    """A numeric rate-limit header, None when absent or not a number (a proxy may mangle it)."""
    value = _header(headers, name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _error_message(body: Any, fallback: str) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return body[:500] or fallback
    if isinstance(body, dict):
        return str(body.get("message") or fallback)
    return fallback


def map_error(exc: Exception) -> ConnectorError:
    """Turn an SDK or transport exception into the connector's error tree (the one place that does it)."""
    if isinstance(exc, ConnectorError):
        return exc
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        message = _error_message(getattr(exc, "body", None), getattr(exc, "reason", None) or str(status))
        headers = getattr(exc, "headers", None)
        if status == 429 or status >= 500 or status == 423:
            retry_after = _header(headers, "Retry-After")
            interval = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
            wait = (
                float(retry_after) if retry_after else (float(interval) / 1000 if interval and status == 429 else None)
            )
            return RetriableError(f"HubSpot {status}: {message}", status=status, retry_after=wait)
        if status in (401, 403):
            return AuthError(f"HubSpot refused the access token ({status}): {message}", status=status)
        return RequestRejected(f"HubSpot {status}: {message}", status=status)
    if isinstance(exc, urllib3.exceptions.HTTPError | requests.RequestException | ConnectionError | TimeoutError):
        return RetriableError(f"HubSpot unreachable: {type(exc).__name__}: {exc}")
    return ConnectorError(f"HubSpot call failed: {type(exc).__name__}: {exc}")


#: the endpoint label of the call in progress on this thread, for the messages of malformed answers
_calling = threading.local()


def _strict(deserialize: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap an SDK ``ApiClient.deserialize``: the body must be JSON of the documented shape.

    The SDK falls back to the raw text when a body does not parse and then builds an empty model from it,
    so a truncated page or a gateway's HTML read as "no results, no next page". Here such an answer raises
    ``MalformedResponse`` (retriable) instead; collection and batch answers must carry a ``results`` list.
    """

    def strict(response: Any, response_type: Any) -> Any:
        if isinstance(response_type, str) and response_type not in ("file", "bytes"):
            what = getattr(_calling, "label", None) or response_type
            data = parse_json_body("HubSpot", what, response.status, response.getheader("content-type"), response.data)
            if response_type.startswith(("CollectionResponse", "BatchResponse")):
                check_hubspot_collection(what, data)
        return deserialize(response, response_type)

    return strict


def _api_factory(api_client_package: Any, api_name: str, config: Any) -> Any:
    """The SDK's own factory (``api_factory`` is its extension point), plus strict bodies and a deadline
    on every whole request (``connectors._deadline``)."""
    api = DiscoveryBase._default_api_factory(api_client_package, api_name, config)
    client = api.api_client
    client.deserialize = _strict(client.deserialize)
    install_deadline(client.rest_client.pool_manager)
    return api


class HubSpotConnector:
    """The HubSpot side of leadsync (see ``connectors.base.Connector``)."""

    name = "hubspot"
    #: updates per batch call: the pipeline gathers changed scores across the pass into batches this big
    write_batch_size = BATCH_SIZE
    #: properties that move with every change of a contact (never compared to tell an echo of a write)
    cursor_properties: tuple[str, ...] = (CURSOR_PROPERTY, "hs_lastmodifieddate")

    def __init__(
        self,
        *,
        access_token: str,
        base_url: str = "https://api.hubapi.com",
        rate_limit_per_10s: int | None = None,
        rate_limit_margin: float = 0.1,
        search_rate_per_s: float = 5,
        timeout_s: float = 30,
        max_retries: int = 6,
        workflow_id: int | None = None,
        group: str = "leadsync",
        backoff_initial_s: float = 0.5,
        daily_reserve: float = 0.1,
        activity_types: Sequence[str] = DEFAULT_ACTIVITY_TYPES,
        read_activities: bool = True,
        activity_horizon_days: float | None = DEFAULT_HORIZON_DAYS,
    ) -> None:
        base_url = base_url.rstrip("/")
        # urllib3 must not retry on its own: tenacity does, so that every attempt is counted and limited
        self._client = hubspot.Client.create(
            access_token=access_token,
            host=base_url,
            base_url=base_url,
            retry=urllib3.util.Retry(total=0, redirect=0, raise_on_status=False),
            api_factory=_api_factory,
        )
        self._legacy_session = requests.Session()
        for scheme in ("http://", "https://"):
            adapter = requests.adapters.HTTPAdapter(max_retries=0)  # tenacity retries, counted and limited
            install_deadline(adapter.poolmanager)
            self._legacy_session.mount(scheme, adapter)
        self._contacts_basic = self._client.crm.contacts.basic_api
        self._contacts_batch = self._client.crm.contacts.batch_api
        self._contacts_search = self._client.crm.contacts.search_api
        self._properties = self._client.crm.properties.core_api
        self._groups = self._client.crm.properties.groups_api
        account = hashlib.sha256(f"{base_url}|{access_token}".encode()).hexdigest()[:16]
        # start at the configured budget (else HubSpot's lowest limit), then follow the portal's headers;
        # an explicit budget is a ceiling the portal's headers never raise
        self.limiter = shared_limiter(
            ("hubspot", account),
            rate_limit_per_10s or DEFAULT_RATE_PER_10S,
            RATE_WINDOW_S,
            ceiling=rate_limit_per_10s,
            margin=rate_limit_margin,
        )
        self.rate_limit_margin = rate_limit_margin
        # search sends no rate-limit headers to follow, so the margin is kept below its documented limit: at
        # 5 per second exactly, requests sent a second apart arrive closer and 1 in 10 search pages got a 429
        search_per_s = max(1, int(search_rate_per_s * (1 - rate_limit_margin)))
        self.search_limiter = shared_limiter(("hubspot-search", account), search_per_s, 1.0)
        self._retrying = retrying("hubspot", max_retries, initial=backoff_initial_s)
        #: per socket operation (urllib3); ``timeout_s`` bounds the whole request through a deadline
        self._timeout = (min(10.0, timeout_s), timeout_s)
        self.timeout_s = timeout_s
        self._workflow_id = workflow_id
        self._group = group
        self._calls = 0
        #: the pass's reader thread and its writes both count calls
        self._count_lock = threading.Lock()
        self.throttled = 0
        #: last seen daily allowance (private apps only), for the budget guard
        self.daily_limit: int | None = None
        self.daily_remaining: int | None = None
        #: share of the daily allowance left untouched for the portal's other integrations
        self.daily_reserve = daily_reserve
        self._on_call: list[Callable[[str, int | None], None]] = []
        self._enumerations: dict[str, frozenset[str]] = {}
        #: what the last ``read_outcomes`` did (calls, deals seen), for logs and tests
        self.last_outcomes = OutcomeReadStats()
        #: activity objects through associations (connectors._hubspot_activities); None: counters only
        self.activities = (
            HubSpotActivityReader(self._call, self._client, types=activity_types, horizon_days=activity_horizon_days)
            if read_activities
            else None
        )
        #: primary associated companies (connectors._hubspot_companies)
        self.companies = HubSpotCompanyReader(self._call, self._client)

    @property
    def api_calls(self) -> int:
        return self._calls

    @property
    def activity_markers(self) -> tuple[str, ...]:
        """Contact properties HubSpot moves when an activity is logged (read with every contact), so that a
        contact whose tracked properties are all what leadsync last read or wrote has no new activity."""
        return ACTIVITY_MARKERS if self.activities is not None else ()

    def on_call(self, callback: Callable[[str, int | None], None]) -> None:
        """Register a callback run after every HTTP attempt with (endpoint label, status)."""
        self._on_call.append(callback)

    # -- the single call path: limiter, counting, headers, error mapping, retries

    def _check_budget(self) -> None:
        """Stop before the portal's daily allowance runs dry: every app on the portal shares it."""
        if self.daily_limit and self.daily_remaining is not None:
            floor = int(self.daily_limit * self.daily_reserve)
            if self.daily_remaining <= floor:
                raise BudgetExhausted(
                    f"HubSpot daily API budget guard: {self.daily_remaining} of {self.daily_limit} calls left, "
                    f"at or below the reserve of {floor} (hubspot.daily_reserve={self.daily_reserve}); "
                    "stopping cleanly, the next pass resumes from the same watermark"
                )

    def _attempt(
        self, label: str, fn: Callable[..., Any], limiters: Sequence[RollingWindowLimiter], **kwargs: Any
    ) -> Any:
        self._check_budget()
        for limiter in limiters:
            limiter.acquire()
        with self._count_lock:
            self._calls += 1
        status: int | None = None
        _calling.label = label
        try:
            with request_deadline(self.timeout_s) as deadline:
                try:
                    data, status, headers = fn(_request_timeout=self._timeout, **kwargs)
                except Exception as exc:
                    if deadline.expired:  # the watchdog cut the request off: say so, not "connection reset"
                        raise RetriableError(
                            f"HubSpot {label}: no complete answer within hubspot.timeout_s={self.timeout_s:g}s "
                            f"(the whole request, body included; {type(exc).__name__})"
                        ) from exc
                    raise
        except Exception as exc:  # mapped below: SDK, urllib3 and socket errors all land here
            error = map_error(exc)
            # a malformed 200 is no usable answer: metrics count it with the timeouts, as status "none"
            status = None if isinstance(error, MalformedResponse) else error.status
            if status == 429 and isinstance(error, RetriableError):
                with self._count_lock:
                    self.throttled += 1
                if error.retry_after:
                    limiters[-1].pause(error.retry_after)
            raise error from exc
        finally:
            _calling.label = None
            for callback in self._on_call:
                callback(label, status)
        self._observe(headers)
        return data, status

    def _observe(self, headers: Any) -> None:
        """Follow the portal's own window (``X-HubSpot-RateLimit-Max`` per ``-Interval-Milliseconds``, with
        ``-Remaining`` left) and keep its daily counts for the budget guard. Search answers carry none."""
        portal_max = _int_header(headers, "X-HubSpot-RateLimit-Max")
        remaining = _int_header(headers, "X-HubSpot-RateLimit-Remaining")
        interval = _int_header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        if portal_max is not None or remaining is not None:
            self.limiter.follow(portal_max, interval / 1000 if interval else None, remaining)
        daily = _header(headers, "X-HubSpot-RateLimit-Daily")
        daily_remaining = _header(headers, "X-HubSpot-RateLimit-Daily-Remaining")
        if daily is not None and daily_remaining is not None:
            self.daily_limit, self.daily_remaining = int(daily), int(daily_remaining)

    def limit_info(self) -> dict[str, Any]:
        """The rate limit in force and where it came from, with the daily counts (``status``, metrics)."""
        info: dict[str, Any] = self.limiter.in_force().as_dict()
        info["margin"] = self.rate_limit_margin
        info["search_per_s"] = self.search_limiter.max_calls
        info["daily_limit"], info["daily_remaining"] = self.daily_limit, self.daily_remaining
        info["daily_source"] = "X-HubSpot-RateLimit-Daily" if self.daily_limit is not None else None
        return info

    def _call(self, label: str, fn: Callable[..., Any], *, search: bool = False, **kwargs: Any) -> tuple[Any, int]:
        limiters = [self.limiter, self.search_limiter] if search else [self.limiter]
        result: tuple[Any, int] = self._retrying(self._attempt, label, fn, limiters, **kwargs)
        return result

    # -- reads

    def read_records(self, window: Window, properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        props = sorted({*properties, CURSOR_PROPERTY})
        if window.start is None:
            yield from self._list_all(props)
        else:
            yield from self._search_window(window, props)

    def _to_record(self, obj: Any, origin: str = "") -> RawRecord:
        """One contact of a list, search or batch-read answer (parsed JSON, see ``raw_json``)."""
        if not isinstance(obj, Mapping) or not isinstance(obj.get("properties") or {}, Mapping):
            raise MalformedResponse(f"HubSpot returned a contact that is not an object with properties: {obj!r:.200}")
        properties = dict(obj.get("properties") or {})
        updated = parse_hubspot_time(properties.get(CURSOR_PROPERTY)) or parse_hubspot_time(obj.get("updatedAt"))
        # a null id stays empty (never the string "None"): the pipeline skips and counts such records; an id
        # of another JSON type than the documented string is refused by the pipeline (``sync.refusals``)
        record_id = "" if obj.get("id") is None else str(obj["id"]).strip()
        refused = id_type_problem(obj.get("id"))
        return RawRecord(record_id, "contact", properties, updated, refused=refused, origin=origin)

    @staticmethod
    def _results(page: Mapping[str, Any]) -> list[Any]:
        return list(page.get("results") or [])

    def _list_all(self, props: list[str]) -> Iterator[list[RawRecord]]:
        after: str | None = None
        seen_tokens: set[str] = set()
        while True:
            kwargs: dict[str, Any] = {"limit": LIST_PAGE_SIZE, "properties": props, "archived": False}
            if after is not None:
                kwargs["after"] = after
            page, _ = self._call(
                "GET /crm/v3/objects/contacts",
                raw_json(self._contacts_basic.get_page_with_http_info, "GET /crm/v3/objects/contacts"),
                **kwargs,
            )
            records = [self._to_record(obj, "GET /crm/v3/objects/contacts") for obj in self._results(page)]
            if records:
                yield records
            nxt = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not nxt:
                return
            if nxt in seen_tokens:  # a repeating cursor would loop forever
                raise ConnectorError(f"HubSpot list paging repeated the cursor {nxt!r}")
            seen_tokens.add(nxt)
            after = nxt

    def _search_window(self, window: Window, props: list[str]) -> Iterator[list[RawRecord]]:
        assert window.start is not None
        label = "POST /crm/v3/objects/contacts/search"
        window_ms = (_ms(window.start), _ms(window.end, ceil=True))

        def to_record(obj: Any) -> RawRecord:
            return self._to_record(obj, label)

        yield from keyset_search(self._call, self._contacts_search, label, CURSOR_PROPERTY, window_ms, props, to_record)

    def read_by_ids(self, ids: Sequence[str], properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        """The contacts with these ids, one batch read per 100 (no search: no index lag); unknown ids are absent."""
        props = sorted({*properties, CURSOR_PROPERTY})
        for start in range(0, len(ids), BATCH_SIZE):
            body = sdk_model(
                BatchReadInputSimplePublicObjectId,
                inputs=[sdk_model(SimplePublicObjectId, id=i) for i in ids[start : start + BATCH_SIZE]],
                properties=props,
                properties_with_history=[],
            )
            page, _ = self._call(
                "POST /crm/v3/objects/contacts/batch/read",
                raw_json(self._contacts_batch.read_with_http_info, "POST /crm/v3/objects/contacts/batch/read"),
                batch_read_input_simple_public_object_id=body,
                archived=False,
            )
            yield [self._to_record(obj, "POST /crm/v3/objects/contacts/batch/read") for obj in self._results(page)]

    # -- companies (connectors.base.CompanyReader)

    def read_primary_companies(self, record_ids: Sequence[str]) -> Mapping[str, str]:
        """One associations read per 1,000 contacts (type 1, "Primary")."""
        return self.companies.primary_companies(record_ids)

    def read_companies(self, company_ids: Sequence[str], properties: Sequence[str]) -> list[RawRecord]:
        """One companies batch read per 100 ids."""
        return self.companies.read(company_ids, properties)

    def read_changed_companies(self, window: Window, properties: Sequence[str]) -> Iterator[list[RawRecord]]:
        """One company search per 200 companies modified within the window."""
        if window.start is None:
            raise ValueError("read_changed_companies needs a window with a start")
        return self.companies.changed(_ms(window.start), _ms(window.end, ceil=True), properties)

    def read_activities(self, records: Sequence[RawRecord]) -> Mapping[str, list[RawActivity]]:
        return self.activities.read(records) if self.activities is not None else {}

    # -- outcomes (connectors.base.OutcomeReader)

    def outcome_properties(self, spec: OutcomeSpec) -> Sequence[str]:
        return lifecycle_date_properties(spec.lifecycle_stage) if spec.lifecycle_stage else []

    def read_outcomes(self, records: Sequence[RawRecord], spec: OutcomeSpec) -> Mapping[str, RawOutcome]:
        """Lifecycle dates come with the records (no call); closed-won deals cost ``ceil(N / 1000)``
        association reads for N contacts plus ``ceil(D / 100)`` deal reads for their D associated deals.
        Each record's earliest evidence wins."""
        stats = self.last_outcomes = OutcomeReadStats(records=len(records))
        out: dict[str, RawOutcome] = {}
        if spec.lifecycle_stage:
            out.update(self._lifecycle_outcomes(records, spec.lifecycle_stage))
        if spec.closed_won:
            for record_id, outcome in self._deal_outcomes(records, stats).items():
                current = out.get(record_id)
                if current is None or outcome.converted_at < current.converted_at:
                    out[record_id] = outcome
        return out

    def _deal_outcomes(self, records: Sequence[RawRecord], stats: OutcomeReadStats) -> dict[str, RawOutcome]:
        """The earliest closed-won associated deal of each contact (Associations v4, then deal batch reads)."""
        ids = list(dict.fromkeys(r.id for r in records if r.id))
        if not ids:
            return {}
        associations = self._client.crm.associations.v4.batch_api
        associated = read_associations(self._call, associations, "deals", ids, stats)
        owners: dict[str, list[str]] = {}
        for contact_id, deal_ids in associated.items():
            for deal_id in dict.fromkeys(deal_ids):
                owners.setdefault(deal_id, []).append(contact_id)
        out: dict[str, RawOutcome] = {}
        objects = self._client.crm.objects.batch_api
        for deal in read_objects(self._call, objects, "deals", sorted(owners), DEAL_PROPERTIES, stats):
            props = deal.get("properties") or {}
            if not is_closed_won(props):
                stats.not_won += 1
                continue
            closed = parse_hubspot_time(props.get("closedate"))
            if closed is None:
                stats.undated += 1
                continue
            stats.won += 1
            deal_id = str(deal.get("id"))
            detail = {"deal_id": deal_id, "dealstage": props.get("dealstage"), "pipeline": props.get("pipeline")}
            if props.get("amount") not in (None, ""):
                detail["amount"] = props.get("amount")
            for contact_id in owners.get(deal_id, ()):
                current = out.get(contact_id)
                if current is None or closed < current.converted_at:
                    out[contact_id] = RawOutcome(contact_id, closed, "deal:closedwon", detail)
        if stats.errors:
            log.warning("hubspot.outcomes.partial", errors=stats.errors[:5], count=len(stats.errors))
        return out

    @staticmethod
    def _lifecycle_outcomes(records: Sequence[RawRecord], stage: str) -> dict[str, RawOutcome]:
        """The earliest stage date of each record reaching ``stage`` (read with the record: no call)."""
        properties = lifecycle_date_properties(stage)
        out: dict[str, RawOutcome] = {}
        for record in records:
            if not record.id:
                continue
            dated = [
                (at, prop) for prop in properties if (at := parse_hubspot_time(record.properties.get(prop))) is not None
            ]
            if dated:
                at, prop = min(dated)
                out[record.id] = RawOutcome(record.id, at, f"lifecycle:{stage}", {"property": prop})
        return out

    # -- writes

    def write(self, updates: Sequence[RecordUpdate]) -> WriteResult:
        result = WriteResult()
        for start in range(0, len(updates), BATCH_SIZE):
            result.extend(write_isolating(list(updates[start : start + BATCH_SIZE]), self._send_batch))
        return result

    def _send_batch(self, batch: list[RecordUpdate]) -> WriteResult:
        # HubSpot rejects a whole batch for some validation errors (400): write_isolating splits it
        body = sdk_model(
            BatchInputSimplePublicObjectBatchInput,
            inputs=[sdk_model(SimplePublicObjectBatchInput, id=u.id, properties=dict(u.properties)) for u in batch],
        )
        data, status = self._call(
            "POST /crm/v3/objects/contacts/batch/update",
            raw_json(self._contacts_batch.update_with_http_info, "POST /crm/v3/objects/contacts/batch/update"),
            batch_input_simple_public_object_batch_input=body,
        )
        return self._batch_outcome(batch, data, status)

    @staticmethod
    def _batch_outcome(batch: list[RecordUpdate], data: Mapping[str, Any], status: int) -> WriteResult:
        """What a batch update's answer (parsed JSON) says of each record: failed, or landed at a time."""
        failed: dict[str, RecordFailure] = {}
        for error in data.get("errors") or []:
            context = error.get("context") or {}
            ids = context.get("ids") or context.get("id") or []
            message = error.get("message") or "rejected"
            code = int(error["status"]) if str(error.get("status", "")).isdigit() else None
            retriable = error.get("category") in {"RATE_LIMITS"} or (code is not None and code >= 500)
            for record_id in ids if isinstance(ids, list) else [ids]:
                failed[str(record_id)] = RecordFailure(str(record_id), message, retriable=retriable, status=code)
        results = [r for r in data.get("results") or [] if isinstance(r, Mapping)]
        if status == 207 and not failed:
            # a 207 we cannot attribute: trust only the records HubSpot returned
            landed = {str(r.get("id")) for r in results}
            for u in batch:
                if u.id not in landed:
                    failed[u.id] = RecordFailure(u.id, "HubSpot did not confirm this record", retriable=True)
        modified = {}
        for obj in results:
            properties = obj.get("properties") or {}
            stamp = parse_hubspot_time(properties.get(CURSOR_PROPERTY) if isinstance(properties, Mapping) else None)
            stamp = stamp or parse_hubspot_time(obj.get("updatedAt"))
            if stamp is not None:
                modified[str(obj.get("id"))] = stamp
        return WriteResult(
            succeeded=[u.id for u in batch if u.id not in failed],
            failed=list(failed.values()),
            modified_at=modified,
        )

    def trigger(self, record_id: str, email: str | None) -> None:
        if self._workflow_id is None:
            return  # workflows trigger on the leadsync_* properties themselves
        if not email:
            raise RequestRejected(f"contact {record_id} has no email; legacy enrollment needs one")
        path = f"/automation/v2/workflows/{self._workflow_id}/enrollments/contacts/{quote(email, safe='')}"

        def enroll(_request_timeout: Any = None) -> tuple[None, int, Any]:
            response = self._legacy_request("POST", path)
            return None, response.status_code, response.headers

        attempts = 0

        def enroll_unless_delivered(_request_timeout: Any = None) -> tuple[None, int, Any]:
            # a retry after a timeout or a dropped connection may follow an enrollment that did land:
            # ask HubSpot first, so a retry never enrolls the contact twice
            nonlocal attempts
            attempts += 1
            if attempts > 1 and self.trigger_delivered(record_id, email):
                return None, 200, {}
            return enroll(_request_timeout)

        self._call("POST /automation/v2/workflows/{id}/enrollments/contacts/{email}", enroll_unless_delivered)

    def trigger_delivered(self, record_id: str, email: str | None) -> bool | None:
        """Whether the contact is enrolled in the configured workflow (None: no workflow, nothing to ask).

        HubSpot's legacy ``GET /automation/v2/workflows/enrollments/contacts/{vid}`` lists the workflows a
        contact is currently enrolled in. The sync's outbox asks only for a trigger whose delivery was
        interrupted (sent, but the process died before recording it), so a retry never enrolls twice.
        """
        if self._workflow_id is None:
            return None
        path = f"/automation/v2/workflows/enrollments/contacts/{quote(record_id, safe='')}"

        def current(_request_timeout: Any = None) -> tuple[Any, int, Any]:
            response = self._legacy_request("GET", path)
            return response.json(), response.status_code, response.headers

        data, _ = self._call("GET /automation/v2/workflows/enrollments/contacts/{vid}", current)
        workflows = data if isinstance(data, list) else []
        return any(isinstance(w, dict) and str(w.get("id")) == str(self._workflow_id) for w in workflows)

    def _legacy_request(self, method: str, path: str) -> requests.Response:
        """A legacy (v2) endpoint the SDK has no API class for: the SDK builds the request (URL, auth), our
        session sends it with ``timeout_s`` and the whole-request deadline (the SDK's own ``api_request``
        calls ``requests`` with no timeout at all). A 4xx/5xx becomes the SDK's error shape for ``map_error``.
        """
        request = SdkRequest(self._client.config, {"method": method, "path": path})
        response = self._legacy_session.request(
            request.get_method(), request.get_url(), timeout=self._timeout, **request.get_options_for_sending()
        )
        if response.status_code >= 400:
            exc = urllib3.exceptions.HTTPError()
            for name, value in (
                ("status", response.status_code),
                ("body", response.content),
                ("headers", response.headers),
                ("reason", response.reason),
            ):
                setattr(exc, name, value)
            raise exc
        return response

    # -- schema

    def describe(self) -> Mapping[str, str]:
        data, _ = self._call(
            "GET /crm/v3/properties/contacts", self._properties.get_all_with_http_info, object_type=OBJECT_TYPE
        )
        # HubSpot refuses a write of any other value: one outside these options is no value it keeps
        self._enumerations = {
            p.name: frozenset(o.value for o in p.options or ())
            for p in data.results or []
            if p.type == "enumeration" and p.options
        }
        return {p.name: p.type for p in data.results or []}

    def enumerations(self, object_type: str) -> Mapping[str, frozenset[str]]:
        """Enumeration property -> its options, as the last ``describe`` (every pass's ``ensure_properties``)
        read them; empty before any."""
        return self._enumerations

    def ensure_properties(self, specs: Sequence[PropertySpec]) -> list[str]:
        groups, _ = self._call(
            "GET /crm/v3/properties/contacts/groups", self._groups.get_all_with_http_info, object_type=OBJECT_TYPE
        )
        if self._group not in {g.name for g in groups.results or []}:
            try:
                self._call(
                    "POST /crm/v3/properties/contacts/groups",
                    self._groups.create_with_http_info,
                    object_type=OBJECT_TYPE,
                    property_group_create=PropertyGroupCreate(name=self._group, label="leadsync", display_order=-1),
                )
            except RequestRejected as exc:
                if exc.status != 409:  # another replica created it first
                    raise
        existing = self.describe()
        created = []
        for spec in specs:
            if spec.name in existing:
                continue
            create = PropertyCreate(
                name=spec.name,
                label=spec.label,
                type=spec.type,
                field_type=_FIELD_TYPES.get(spec.type, "text"),
                group_name=self._group,
                description=spec.description,
                options=[
                    {"label": o, "value": o, "displayOrder": i, "hidden": False} for i, o in enumerate(spec.options)
                ]
                or None,
            )
            try:
                self._call(
                    "POST /crm/v3/properties/contacts",
                    self._properties.create_with_http_info,
                    object_type=OBJECT_TYPE,
                    property_create=create,
                )
            except RequestRejected as exc:
                if exc.status != 409:
                    raise
                continue
            created.append(spec.name)
        return created
