"""Activities of HubSpot contacts: Associations v4 in batches, then the activity objects themselves.

Why this shape: HubSpot keeps sales activities (emails, calls, meetings, notes, tasks) as CRM objects linked
to contacts by associations, and has no "activities of these contacts" endpoint. The cheapest exact read for
a page of contacts is, per activity type, one ``POST /crm/v4/associations/contacts/{type}/batch/read`` for up
to 1,000 contacts (plus follow-up requests for contacts whose associations are paged), then
``POST /crm/v3/objects/{type}/batch/read`` for the associated ids, 100 per call. For N contacts and E
associated activities of T types that is ``T * ceil(N / 1000) + sum over types of ceil(E_type / 100)`` calls,
plus one per 1,000 paged follow-ups.

Page views, visits, form submissions and marketing email opens/clicks are not CRM objects in HubSpot's v3
API (they live in the analytics, forms and marketing email APIs): rules use the counters HubSpot keeps on the
contact (``hs_analytics_num_page_views``, ``num_conversion_events``, ``hs_email_open``...), which the
connector reads with the contact's other properties.

Incremental reads: a contact is re-read when it changed, and logging an activity modifies the contact, so a
new activity brings its contact back. Scoring needs the contact's whole recent history, not only what is new,
so every associated activity is read again, within a recency horizon and a per-type cap that bound memory;
``since`` only counts which activities were logged since then (``ActivityReadStats.new``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.objects import (
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
)

from connectors._sdk_models import sdk_model
from connectors._validate import check_hubspot_collection, parse_json_body
from connectors.base import RawActivity, RawRecord
from connectors.errors import ConnectorError, MalformedResponse

__all__ = [
    "ACTIVITY_TYPES",
    "ASSOCIATION_BATCH_SIZE",
    "DEFAULT_ACTIVITY_TYPES",
    "OBJECT_BATCH_SIZE",
    "ActivityReadStats",
    "AssociationReadStats",
    "HubSpotActivityReader",
    "read_associations",
    "read_objects",
    "to_activity",
]

log = structlog.get_logger("leadsync.connectors")

#: ``(label, sdk_method, **kwargs) -> (data, status)``: the connector's single call path (limits, retries)
CallFn = Callable[..., tuple[Any, int]]

#: the activity object types this reader knows
ACTIVITY_TYPES: tuple[str, ...] = ("emails", "calls", "meetings", "notes", "tasks")
#: what the connector reads unless told otherwise (tasks are the rep's to-dos, not the lead's behaviour)
DEFAULT_ACTIVITY_TYPES: tuple[str, ...] = ("emails", "calls", "meetings", "notes")
#: inputs per associations batch read (HubSpot's limit since February 2025)
ASSOCIATION_BATCH_SIZE = 1000
#: ids per objects batch read
OBJECT_BATCH_SIZE = 100
#: the 207 error entry HubSpot gives a contact without associations of the type: not a failure
NO_ASSOCIATIONS = "crm.associations.NO_ASSOCIATIONS_FOUND"
#: most recent activities kept per contact and type (the highest ids: HubSpot ids grow with creation)
DEFAULT_MAX_PER_TYPE = 1000
DEFAULT_HORIZON_DAYS = 365.0

_BASE_PROPERTIES = ("hs_timestamp", "hs_createdate")
_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "emails": (*_BASE_PROPERTIES, "hs_email_direction", "hs_email_subject", "hs_email_status"),
    "calls": (*_BASE_PROPERTIES, "hs_call_disposition", "hs_call_direction", "hs_call_duration", "hs_call_status"),
    "meetings": (*_BASE_PROPERTIES, "hs_meeting_outcome", "hs_meeting_title"),
    "notes": _BASE_PROPERTIES,
    "tasks": (*_BASE_PROPERTIES, "hs_task_status", "hs_task_type", "hs_task_subject"),
}
#: HubSpot's default call dispositions (GUIDs in ``hs_call_disposition``); custom ones pass through as is
CALL_OUTCOMES: Mapping[str, str] = {
    "9d9162e7-6cf3-4944-bf63-4dff82258764": "Busy",
    "f240bbac-87c9-4f6e-bf70-924b57d47db7": "Connected",
    "a4c4c377-d246-4b32-a13b-75a56a4cd0ff": "Left live message",
    "b2cf5968-551e-4856-9783-52b3da59a7d0": "Left voicemail",
    "73a0d17f-1163-4015-bdd5-ec830791da20": "No answer",
    "17b47fee-58de-441e-a44c-c6300d46f273": "Wrong number",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def parse_hubspot_time(value: Any) -> datetime | None:
    """HubSpot datetimes: ISO-8601 (``Z``) or epoch milliseconds, as strings; datetimes from the SDK."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_activity(object_type: str, properties: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The canonical kind and attributes of one activity object (emails -> email_sent / email_reply...)."""

    def put(attrs: dict[str, Any], name: str, prop: str) -> None:
        value = properties.get(prop)
        if value not in (None, ""):
            attrs[name] = value

    attrs: dict[str, Any] = {}
    if object_type == "emails":
        direction = properties.get("hs_email_direction") or "EMAIL"
        put(attrs, "subject", "hs_email_subject")
        put(attrs, "status", "hs_email_status")
        attrs["direction"] = direction
        return ("email_reply" if direction == "INCOMING_EMAIL" else "email_sent"), attrs
    if object_type == "calls":
        disposition = properties.get("hs_call_disposition")
        if disposition:
            attrs["outcome"] = CALL_OUTCOMES.get(str(disposition), str(disposition))
        put(attrs, "direction", "hs_call_direction")
        put(attrs, "status", "hs_call_status")
        duration = properties.get("hs_call_duration")
        if duration not in (None, ""):
            with contextlib.suppress(ValueError):
                attrs["duration_s"] = round(float(duration) / 1000)
        return "call", attrs
    if object_type == "meetings":
        put(attrs, "outcome", "hs_meeting_outcome")
        put(attrs, "title", "hs_meeting_title")
        return "meeting", attrs
    if object_type == "tasks":
        put(attrs, "status", "hs_task_status")
        put(attrs, "type", "hs_task_type")
        put(attrs, "subject", "hs_task_subject")
        return "task", attrs
    if object_type == "notes":
        return "note", attrs
    return object_type.rstrip("s"), attrs


@dataclass(slots=True)
class AssociationReadStats:
    """Calls and objects of one associations-then-objects read (activities, deals), for logs and tests."""

    records: int = 0
    association_calls: int = 0
    #: follow-up inputs for contacts whose associations were paged
    association_followups: int = 0
    object_calls: int = 0
    #: distinct associated objects read
    objects: int = 0
    #: associated ids the objects read did not return (gone between the two reads)
    missing: int = 0
    #: 207 error entries other than "no associations" (that contact's associations of the type are skipped)
    errors: list[str] = field(default_factory=list)

    @property
    def api_calls(self) -> int:
        return self.association_calls + self.object_calls


@dataclass(slots=True)
class ActivityReadStats(AssociationReadStats):
    """What the last :meth:`HubSpotActivityReader.read` did, for logs, metrics and tests."""

    #: activities returned (an object associated with two contacts of the page counts twice)
    activities: int = 0
    #: activities logged (``hs_createdate``) at or after ``since``
    new: int = 0
    #: objects left out: older than the horizon or beyond the per-type cap (``missing``: gone meanwhile)
    too_old: int = 0
    capped: int = 0


class HubSpotActivityReader:
    """Reads the activities of pages of contacts through the connector's call path.

    ``call`` is ``HubSpotConnector._call`` (rate limits, retries, error mapping and call counting stay in
    one place); ``client`` the SDK client. ``horizon_days`` drops activities older than that (None: keep
    all); ``max_per_type`` keeps only a contact's most recent activity objects of each type (None: all).
    """

    def __init__(
        self,
        call: CallFn,
        client: Any,
        *,
        types: Sequence[str] = DEFAULT_ACTIVITY_TYPES,
        horizon_days: float | None = DEFAULT_HORIZON_DAYS,
        max_per_type: int | None = DEFAULT_MAX_PER_TYPE,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        unknown = [t for t in types if t not in ACTIVITY_TYPES]
        if unknown:
            msg = f"unknown HubSpot activity types {unknown}: expected some of {list(ACTIVITY_TYPES)}"
            raise ValueError(msg)
        if max_per_type is not None and max_per_type < 1:
            raise ValueError("max_per_type must be at least 1 (or None for no cap)")
        self._call = call
        self._associations = client.crm.associations.v4.batch_api
        self._objects = client.crm.objects.batch_api
        self.types: tuple[str, ...] = tuple(dict.fromkeys(types))
        self.horizon_days = horizon_days
        self.max_per_type = max_per_type
        self._clock = clock
        self.last: ActivityReadStats = ActivityReadStats()

    def read(
        self, records: Sequence[RawRecord] | Sequence[str], *, since: datetime | None = None
    ) -> dict[str, list[RawActivity]]:
        """Activities of the given contacts (records or ids), by contact id, each list by time.

        Contacts without activities are absent. ``since`` only feeds ``self.last.new``.

        :raises connectors.errors.ConnectorError: when HubSpot fails for good (after retries).
        """
        ids = list(dict.fromkeys(r if isinstance(r, str) else r.id for r in records))
        stats = self.last = ActivityReadStats(records=len(ids))
        if not ids or not self.types:
            return {}
        horizon = self._clock() - timedelta(days=self.horizon_days) if self.horizon_days is not None else None
        out: dict[str, list[RawActivity]] = {}
        for object_type in self.types:
            associated = self._associated(object_type, ids, stats)
            owners: dict[str, list[str]] = {}
            for contact_id, targets in associated.items():
                kept = targets
                if self.max_per_type is not None and len(targets) > self.max_per_type:
                    kept = sorted(targets, key=_id_order)[-self.max_per_type :]
                    stats.capped += len(targets) - len(kept)
                for target in kept:
                    owners.setdefault(target, []).append(contact_id)
            for obj in self._objects_of(object_type, sorted(owners, key=_id_order), stats):
                props = obj.get("properties") or {}
                object_id = str(obj.get("id"))
                at = parse_hubspot_time(props.get("hs_timestamp")) or parse_hubspot_time(obj.get("createdAt"))
                if at is None:
                    at = parse_hubspot_time(props.get("hs_createdate")) or self._clock()
                if horizon is not None and at < horizon:
                    stats.too_old += 1
                    continue
                kind, attrs = to_activity(object_type, props)
                attrs["engagement_id"] = object_id
                logged = parse_hubspot_time(props.get("hs_createdate")) or parse_hubspot_time(obj.get("createdAt"))
                is_new = since is not None and logged is not None and logged >= since
                for contact_id in owners.get(object_id, ()):
                    out.setdefault(contact_id, []).append(RawActivity(contact_id, kind, at, dict(attrs)))
                    stats.activities += 1
                    stats.new += is_new
        for activities in out.values():
            activities.sort(key=lambda a: (a.timestamp, a.kind, str(a.attributes.get("engagement_id", ""))))
        if stats.errors:
            log.warning("hubspot.activities.partial", errors=stats.errors[:5], count=len(stats.errors))
        return out

    def _associated(self, object_type: str, ids: list[str], stats: ActivityReadStats) -> dict[str, list[str]]:
        return read_associations(self._call, self._associations, object_type, ids, stats)

    def _objects_of(
        self, object_type: str, ids: Sequence[str], stats: ActivityReadStats
    ) -> Iterable[Mapping[str, Any]]:
        return read_objects(self._call, self._objects, object_type, ids, _PROPERTIES[object_type], stats)


def read_associations(
    call: CallFn,
    associations_api: Any,
    object_type: str,
    ids: Sequence[str],
    stats: AssociationReadStats,
    *,
    type_id: int | None = None,
) -> dict[str, list[str]]:
    """contact id -> associated ``object_type`` ids, ``ASSOCIATION_BATCH_SIZE`` contacts per call, following
    each contact's ``paging.next.after``; contacts without associations are absent (and cost nothing more).

    ``type_id``: keep only associations of that HUBSPOT_DEFINED type (1: a contact's primary company).
    ``associations_api`` is the SDK's ``crm.associations.v4.batch_api``; ``call`` the connector's call path.
    """
    found: dict[str, list[str]] = {}
    pending: list[tuple[str, str | None]] = [(i, None) for i in ids]
    seen: set[tuple[str, str]] = set()
    label = f"POST /crm/v4/associations/contacts/{object_type}/batch/read"
    while pending:
        following: list[tuple[str, str | None]] = []
        for chunk in _chunks(pending, ASSOCIATION_BATCH_SIZE):
            body = sdk_model(
                BatchInputPublicFetchAssociationsBatchRequest,
                inputs=[sdk_model(PublicFetchAssociationsBatchRequest, id=i, after=after) for i, after in chunk],
            )
            data, _status = call(
                label,
                raw_json(associations_api.get_page_with_http_info),
                from_object_type="contacts",
                to_object_type=object_type,
                batch_input_public_fetch_associations_batch_request=body,
            )
            stats.association_calls += 1
            for result in data.get("results") or []:
                contact_id = str(result["from"]["id"])
                targets = found.setdefault(contact_id, [])
                targets.extend(str(t["toObjectId"]) for t in result.get("to") or [] if _of_type(t, type_id))
                nxt = ((result.get("paging") or {}).get("next") or {}).get("after")
                if nxt:
                    if (contact_id, nxt) in seen:  # a repeating cursor would loop forever
                        raise ConnectorError(f"HubSpot association paging repeated the cursor {nxt!r}")
                    seen.add((contact_id, nxt))
                    following.append((contact_id, nxt))
            for error in data.get("errors") or []:
                if error.get("subCategory") != NO_ASSOCIATIONS:
                    stats.errors.append(f"{object_type}: {error.get('category')}: {error.get('message')}")
        stats.association_followups += len(following)
        pending = following
    return found


def _of_type(target: Mapping[str, Any], type_id: int | None) -> bool:
    if type_id is None:
        return True
    return any(
        str(k.get("typeId")) == str(type_id) and k.get("category") == "HUBSPOT_DEFINED"
        for k in target.get("associationTypes") or []
        if isinstance(k, Mapping)
    )


def read_objects(
    call: CallFn,
    objects_api: Any,
    object_type: str,
    ids: Sequence[str],
    properties: Sequence[str],
    stats: AssociationReadStats,
) -> Iterable[Mapping[str, Any]]:
    """The objects with these ids, ``OBJECT_BATCH_SIZE`` per call; missing ones are counted.

    ``objects_api`` is the SDK's generic ``crm.objects.batch_api``; ``call`` the connector's call path.
    """
    label = f"POST /crm/v3/objects/{object_type}/batch/read"
    for chunk in _chunks(list(ids), OBJECT_BATCH_SIZE):
        body = sdk_model(
            BatchReadInputSimplePublicObjectId,
            inputs=[sdk_model(SimplePublicObjectId, id=i) for i in chunk],
            properties=list(properties),
            properties_with_history=[],
        )
        data, _status = call(
            label,
            raw_json(objects_api.read_with_http_info),
            object_type=object_type,
            batch_read_input_simple_public_object_id=body,
            archived=False,
        )
        stats.object_calls += 1
        results = data.get("results") or []
        stats.objects += len(results)
        stats.missing += len(chunk) - len(results)
        yield from results


#: every object's id as a searchable property (keyset paging sorts and filters on it)
ID_PROPERTY = "hs_object_id"
#: the most a search page holds
SEARCH_PAGE_SIZE = 200


def keyset_search(
    call: CallFn,
    search_api: Any,
    label: str,
    cursor: str,
    window_ms: tuple[str, str],
    properties: Sequence[str],
    to_record: Callable[[Any], RawRecord],
) -> Iterator[list[RawRecord]]:
    """Pages of the objects with ``start_ms <= cursor < end_ms``, paged by increasing id rather than by the
    ``after`` offset (search stops at 10,000 hits per query). ``search_api`` is the object type's SDK
    ``search_api``; ``call`` the connector's call path (``search=True``: search's own rate limit)."""
    search = raw_json(search_api.do_search_with_http_info, label)
    start_ms, end_ms = window_ms
    last_id = 0
    while True:
        filters = [
            Filter(property_name=cursor, operator="GTE", value=start_ms),
            Filter(property_name=cursor, operator="LT", value=end_ms),
            Filter(property_name=ID_PROPERTY, operator="GT", value=str(last_id)),
        ]
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=filters)],
            sorts=[{"propertyName": ID_PROPERTY, "direction": "ASCENDING"}],
            properties=list(properties),
            limit=SEARCH_PAGE_SIZE,
        )
        page, _ = call(label, search, search=True, public_object_search_request=request)
        records = [to_record(obj) for obj in page.get("results") or []]
        if not records:
            return
        yield records
        numeric = [r.id for r in records if r.id.isdigit() and r.refused is None]
        if not numeric:  # keyset paging needs an id: a page without one cannot say where to go on
            raise MalformedResponse(f"HubSpot search returned a page of {len(records)} records without ids")
        next_id = int(numeric[-1])
        if next_id <= last_id:  # ids must strictly increase, or the window would loop
            raise ConnectorError(f"HubSpot search returned id {next_id} after {last_id}")
        last_id = next_id
        if len(records) < SEARCH_PAGE_SIZE:
            return


def raw_json(method: Callable[..., Any], label: str | None = None) -> Callable[..., tuple[Any, int, Any]]:
    """An SDK ``*_with_http_info`` method answering the parsed JSON instead of the SDK's models.

    The SDK still builds, sends and checks the request (non-2xx answers raise its ``ApiException``, mapped
    by the connector as usual); only its model deserializer is skipped: it parses two datetimes per
    object with dateutil, which took most of the client's time on pages of thousands of activities (and
    of contacts). ``label`` names the call in a malformed answer's message (default: the method and type).
    """

    def call(**kwargs: Any) -> tuple[Any, int, Any]:
        response = method(_preload_content=False, **kwargs)
        try:
            target = kwargs.get("object_type") or kwargs.get("to_object_type") or "contacts"
            what = label or f"{method.__name__.removesuffix('_with_http_info')} ({target})"
            status, content_type = int(response.status), response.headers.get("Content-Type")
            body = parse_json_body("HubSpot", what, status, content_type, response.data)
            check_hubspot_collection(what, body)
        finally:
            response.release_conn()
        return body, int(response.status), response.headers

    return call


def _id_order(value: str) -> tuple[int, str]:
    """Numeric order for HubSpot ids (strings of digits), so that "the highest ids" means the newest."""
    return (int(value), value) if value.isdigit() else (-1, value)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
