"""HubSpot sandbox: an in-memory portal behind a real HTTP server that ``hubspot-api-client`` talks to unchanged.

Start one with :func:`start_hubspot_sandbox` (background thread, for tests and ``leadsync demo``) or
:func:`serve_hubspot_sandbox` (foreground, for ``leadsync sandbox hubspot``), then point the SDK at it::

    with start_hubspot_sandbox(contacts=500, seed=7) as sandbox:
        client = hubspot.Client.create(access_token=sandbox.token, host=sandbox.url, base_url=sandbox.url)
        page = client.crm.contacts.basic_api.get_page(limit=100)

What is emulated, and where the emulator chose a behaviour HubSpot does not document precisely:

* Auth: ``Authorization: Bearer <token>`` on everything but ``/__sandbox/*``; 401 ``INVALID_AUTHENTICATION``
  (unknown token) or ``EXPIRED_AUTHENTICATION`` (see :meth:`HubSpotSandbox.expire_token`).
* Contacts ``/crm/v3/objects/contacts``: create, read (``idProperty=email`` too), update, archive, list
  (``limit`` <= 100, ``after`` cursor, id order), batch read/create/update/archive, search.
  Property values are strings; datetimes ISO-8601 with milliseconds and ``Z``.
* Writes are validated against the property schema. On batch endpoints, an unknown property, a read-only
  property, a non-number for a number property, a bad datetime or an enumeration value outside the
  options fail **that record** (HTTP 207, ``BatchResponseSimplePublicObjectWithErrors``; the good records
  land). These fail the **whole batch** with a 400 ``VALIDATION_ERROR`` and nothing lands, the way
  HubSpot rejects some inputs wholesale (a connector must split the batch to isolate the bad record):
  a value longer than :data:`MAX_VALUE_LENGTH` characters, an invalid address in the ``email`` property,
  duplicate ids in one batch, and more than :data:`BATCH_MAX_INPUTS` inputs.
* A write bumps ``lastmodifieddate``/``hs_lastmodifieddate`` when it changes a value (the portal clock is
  the wall clock in ms, never going backwards, so writes in one millisecond share it; :meth:`HubSpotPortal.bulk_stamp`
  gives many records one identical timestamp, as a bulk edit in the HubSpot UI does). A write that
  changes nothing leaves the record untouched.
* ``lifecyclestage`` only moves forward along the options' order (``other`` may go anywhere): an earlier
  stage is ignored (the call succeeds, the value is kept); ``""`` clears it. Entering a stage stamps
  ``hs_lifecyclestage_<stage>_date`` when empty.
* Search: filterGroups (OR of ANDs) with every operator of the SDK's ``Filter`` model, numeric comparison
  for numbers and datetimes (epoch-ms or ISO values), string comparison case-insensitive, one sort
  (default: id ascending; ties by id; records without a value last), ``limit`` <= 200 (default 10),
  ``after`` offset, ``total``; paging at or beyond :data:`SEARCH_RESULT_CAP` answers 400; filter-count
  limits answer 400 (:class:`SearchLimits`). With ``index_lag_s`` a record changed less than that long
  ago is searched (and returned by search) in its previous version, or not at all when new.
* Properties and property groups (list, read, create with 409 on conflict, update, archive, batch read
  and create), seeded with HubSpot's standard contact properties (:data:`STANDARD_PROPERTIES`).
* Rate limits (off unless ``rate_limit`` is set): a rolling window per token with HubSpot's
  ``X-HubSpot-RateLimit-*`` headers and a ``TEN_SECONDLY_ROLLING`` 429; a daily budget (``DAILY`` 429);
  search's own per-second limit (429 "You have reached your secondly limit.", no rate-limit headers on
  search responses). Every 429 carries ``Retry-After`` (seconds).
* Activity objects ``/crm/v3/objects/{calls|emails|meetings|notes|tasks}`` (plural, singular or type id
  such as ``0-48``): list, read (``associations=contacts`` too), create and batch create with
  ``associations`` to contacts (HubSpot's default type ids only: call 194, email 198, meeting 200,
  note 202, task 204; ``hs_timestamp`` required; enumerations validated), batch read (<= 100 ids, 207
  ``OBJECT_NOT_FOUND`` for missing ones). No search, update or archive of activities. Logging an activity
  (API or :meth:`HubSpotPortal.add_engagement`) modifies the contact like HubSpot does: ``lastmodifieddate``
  moves, ``notes_last_updated`` / ``notes_last_contacted`` follow, an ``INCOMING_EMAIL`` counts in
  ``hs_email_replied``. Seeded contacts get activity objects derived from ``person.events()`` (see
  :func:`seeded_engagements`), built lazily on first access from id blocks reserved at seeding, so that
  seeding stays fast and ids do not depend on the order of reads. Page views, visits, form submissions,
  email opens and clicks are not CRM objects in HubSpot's v3 API: they stay counters on the contact.
* Associations v4: ``POST /crm/v4/associations/{from}/{to}/batch/read`` (<= 1000 inputs, else 400; each
  result pages its ``to`` list at :data:`ASSOCIATION_PAGE_SIZE` with an opaque keyset ``paging.next.after``
  that the next request passes as the input's ``after``; an object with no association, or unknown, is a
  207 error entry ``NO_ASSOCIATIONS_FOUND``) and ``GET /crm/v4/objects/{type}/{id}/associations/{toType}``
  (``limit`` <= 500, ``after``), between contacts and activity types in either direction. HubSpot does not
  document the batch read's page size: 500 here, ``association_page_size`` to change it.
* Deals ``/crm/v3/objects/deals``: list, read, create and batch create (with ``associations`` to contacts,
  type 3), batch read (<= 100 ids); Associations v4 contacts <-> deals (contact -> deal 4, deal -> contact
  3) through the same batch read and list. Seeded from the people's outcomes (see
  :mod:`connectors.sandbox.hubspot.deals`).
* Companies ``/crm/v3/objects/companies``: list, read, create, update (``PATCH``), batch read and create,
  search; Associations v4 contacts <-> companies (a contact's primary company carries HUBSPOT_DEFINED
  type 1 "Primary" besides the unlabeled 279), with ``POST /crm/v4/associations/contacts/companies/batch/read``
  counted apart in stats. Seeded from the people's accounts (see :mod:`connectors.sandbox.hubspot.companies`).
* Legacy workflow enrollment ``POST /automation/v2/workflows/{workflowId}/enrollments/contacts/{email}``:
  204, recorded (``GET /__sandbox/enrollments``, ``enrollments`` in stats), 404 for an unknown email.
  ``GET /automation/v2/workflows/enrollments/contacts/{vid}`` lists the workflows a contact is enrolled in.
* App webhooks (:meth:`HubSpotSandbox.enable_webhooks`, ``--webhook-url``): every contact creation and
  property change is posted to a URL as HubSpot does (``contact.creation`` / ``contact.propertyChange`` events,
  up to 100 a request, ``X-HubSpot-Signature-v3`` with the app's client secret); leadsync's own writes notify
  too, as they do in HubSpot. The sender counts what it posted (``.webhooks.sent``, ``.failed``).
* Fault injection and ``GET /__sandbox/stats``: see :mod:`connectors.sandbox._server`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Unpack

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    UNKNOWN_OPTION,
    FaultOptions,
    RateLimit,
    RollingWindowLimiter,
    SandboxServer,
    serve_in_foreground,
)
from connectors.sandbox._webhooks import HUBSPOT_BATCH_MAX, WebhookSender, hubspot_encoder
from connectors.sandbox.hubspot._base import (
    SEARCH_RESULT_CAP,
    SearchLimits,
)
from connectors.sandbox.hubspot.activity_types import (
    ASSOCIATION_PAGE_SIZE,
)
from connectors.sandbox.hubspot.associations import AssociationsRoutes
from connectors.sandbox.hubspot.companies import COMPANY_TYPE, CompaniesRoutes
from connectors.sandbox.hubspot.deals import DEAL_TYPE
from connectors.sandbox.hubspot.engagements import EngagementsRoutes
from connectors.sandbox.hubspot.limits import DEFAULT_DAILY_LIMIT, DEFAULT_SEARCH_PER_SECOND, RATE_WINDOW_S, HubSpotGate
from connectors.sandbox.hubspot.portal import HubSpotPortal
from connectors.sandbox.hubspot.properties import PropertiesRoutes
from connectors.sandbox.hubspot.search import SearchRoutes
from connectors.sandbox.hubspot.workflows import WorkflowsRoutes
from connectors.sandbox.synthetic import iter_people

if TYPE_CHECKING:
    import hubspot


class HubSpotSandbox(
    HubSpotGate,
    EngagementsRoutes,
    SearchRoutes,
    PropertiesRoutes,
    AssociationsRoutes,
    CompaniesRoutes,
    WorkflowsRoutes,
):
    """The WSGI app: HubSpot's endpoints, auth, rate limits and error bodies over a :class:`HubSpotPortal`."""

    def __init__(
        self,
        portal: HubSpotPortal | None = None,
        *,
        token: str = "sandbox-token",
        rate_limit: int | str | RateLimit | None = None,
        search_rate_limit: int | None = None,
        daily_limit: int = DEFAULT_DAILY_LIMIT,
        fault_seed: int = 0,
        **faults: Unpack[FaultOptions],
    ) -> None:
        super().__init__(token=token, fault_seed=fault_seed, **faults)
        self.portal = portal or HubSpotPortal()
        self.lock = self.portal.lock
        self.tokens: set[str] = {token}
        self.expired_tokens: set[str] = set()
        self.set_limits(rate_limit, daily_limit, window_s=RATE_WINDOW_S)
        if search_rate_limit is None:
            search_rate_limit = DEFAULT_SEARCH_PER_SECOND if self.limiter is not None else 0
        self.search_limiter = RollingWindowLimiter(search_rate_limit, 1.0) if search_rate_limit > 0 else None
        self.stats.increment("enrollments", 0)  # a stable stats shape from the first request on
        self.webhooks: WebhookSender | None = None
        self._register_routes()

    def spoil_record(self, kind: str, record: dict[str, Any]) -> str | None:
        """HubSpot's record faults: ``huge`` fills ``jobtitle``, ``enum`` gives ``numemployees`` (the size
        range the default fit rules score) an option the portal lacks, ``idtype`` sends the id as a number."""
        record_id = record.get("id")
        if not isinstance(record_id, str) or not record_id.isdigit():
            return None
        properties = record.setdefault("properties", {})
        if kind == "huge":
            properties["jobtitle"] = self.huge_value()
        elif kind == "enum":
            properties["numemployees"] = UNKNOWN_OPTION
        elif kind == "idtype":
            record["id"] = int(record_id)
        else:
            return None
        return record_id

    def enable_webhooks(
        self, url: str, client_secret: str, *, properties: Collection[str] | None = None, app_id: int = 1
    ) -> WebhookSender:
        """Post contact creations and property changes (of ``properties``; None: all) to ``url``, signed."""
        sender = WebhookSender(url, hubspot_encoder(url, client_secret), batch_max=HUBSPOT_BATCH_MAX)
        counter = itertools.count(1)

        def changed(contact_id: int, ms: int, values: Mapping[str, str] | None) -> None:
            base = {"portalId": self.portal.portal_id, "appId": app_id, "occurredAt": ms, "attemptNumber": 0}
            base |= {"objectId": contact_id, "changeSource": "API"}
            if values is None:
                created = {"eventId": next(counter), "subscriptionId": 1, "subscriptionType": "contact.creation"}
                sender.send({**base, **created})
                return
            for name, value in values.items():
                if properties is None or name in properties:
                    event = {"eventId": next(counter), "subscriptionId": 2}
                    event["subscriptionType"] = "contact.propertyChange"
                    sender.send({**base, **event, "propertyName": name, "propertyValue": value})

        with self.lock:
            if self.webhooks is not None:
                self.webhooks.close()
            self.portal.change_listeners[:] = [changed]
            self.webhooks = sender
        return sender

    def _register_routes(self) -> None:
        # full paths, so that a route key in stats or fault options (``"POST /crm/v3/objects/deals/batch/read"``)
        # greps to its line; static contact and deal paths win over the ``{objectType}`` templates
        deal = DEAL_TYPE.name

        def deals(handler: Callable[..., Response]) -> Callable[..., Response]:
            return functools.partial(handler, objectType=deal)

        company = COMPANY_TYPE.name

        def companies(handler: Callable[..., Response]) -> Callable[..., Response]:
            return functools.partial(handler, objectType=company)

        def read_company(request: Request, companyId: str) -> Response:
            return self._read_object(request, company, companyId)

        # contacts -> companies has a static path of its own, so stats count the company cost apart
        contact_companies = functools.partial(
            self._batch_read_associations, fromObjectType="contacts", toObjectType=company
        )

        routes: tuple[tuple[str, str, Callable[..., Response]], ...] = (
            ("GET", "/crm/v3/objects/contacts", self._list),
            ("POST", "/crm/v3/objects/contacts", self._create),
            ("GET", "/crm/v3/objects/contacts/{contactId}", self._read),
            ("PATCH", "/crm/v3/objects/contacts/{contactId}", self._update),
            ("DELETE", "/crm/v3/objects/contacts/{contactId}", self._archive),
            ("POST", "/crm/v3/objects/contacts/batch/read", self._batch_read),
            ("POST", "/crm/v3/objects/contacts/batch/create", self._batch_create),
            ("POST", "/crm/v3/objects/contacts/batch/update", self._batch_update),
            ("POST", "/crm/v3/objects/contacts/batch/archive", self._batch_archive),
            ("GET", "/crm/v3/properties/{objectType}", self._list_properties),
            ("POST", "/crm/v3/properties/{objectType}", self._create_property),
            ("POST", "/crm/v3/properties/{objectType}/batch/read", self._batch_read_properties),
            ("POST", "/crm/v3/properties/{objectType}/batch/create", self._batch_create_properties),
            ("GET", "/crm/v3/properties/{objectType}/groups", self._list_groups),
            ("POST", "/crm/v3/properties/{objectType}/groups", self._create_group),
            ("GET", "/crm/v3/properties/{objectType}/groups/{groupName}", self._read_group),
            ("PATCH", "/crm/v3/properties/{objectType}/groups/{groupName}", self._update_group),
            ("DELETE", "/crm/v3/properties/{objectType}/groups/{groupName}", self._archive_group),
            ("GET", "/crm/v3/properties/{objectType}/{propertyName}", self._read_property),
            ("PATCH", "/crm/v3/properties/{objectType}/{propertyName}", self._update_property),
            ("DELETE", "/crm/v3/properties/{objectType}/{propertyName}", self._archive_property),
            ("POST", "/automation/v2/workflows/{workflowId}/enrollments/contacts/{email}", self._enroll),
            ("DELETE", "/automation/v2/workflows/{workflowId}/enrollments/contacts/{email}", self._unenroll),
            ("GET", "/automation/v2/workflows/enrollments/contacts/{vid}", self._current_enrollments),
            ("GET", "/crm/v3/objects/deals", deals(self._list_objects)),
            ("POST", "/crm/v3/objects/deals", deals(self._create_object)),
            ("GET", "/crm/v3/objects/deals/{dealId}", lambda request, dealId: self._read_object(request, deal, dealId)),
            ("POST", "/crm/v3/objects/deals/batch/read", deals(self._batch_read_objects)),
            ("POST", "/crm/v3/objects/deals/batch/create", deals(self._batch_create_objects)),
            ("GET", "/crm/v3/objects/companies", companies(self._list_objects)),
            ("POST", "/crm/v3/objects/companies", companies(self._create_object)),
            ("GET", "/crm/v3/objects/companies/{companyId}", read_company),
            ("PATCH", "/crm/v3/objects/companies/{companyId}", self._update_company),
            ("POST", "/crm/v3/objects/companies/batch/read", companies(self._batch_read_objects)),
            ("POST", "/crm/v3/objects/companies/batch/create", companies(self._batch_create_objects)),
            ("POST", "/crm/v4/associations/contacts/companies/batch/read", contact_companies),
            ("GET", "/crm/v3/objects/{objectType}", self._list_objects),
            ("POST", "/crm/v3/objects/{objectType}", self._create_object),
            ("GET", "/crm/v3/objects/{objectType}/{objectId}", self._read_object),
            ("POST", "/crm/v3/objects/{objectType}/batch/read", self._batch_read_objects),
            ("POST", "/crm/v3/objects/{objectType}/batch/create", self._batch_create_objects),
            ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read", self._batch_read_associations),
            ("GET", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}", self._list_associations),
        )
        for method, template, handler in routes:
            self.add_route(method, template, handler)
        self.add_route("POST", "/crm/v3/objects/contacts/search", self._search, tag="search")
        self.add_route("POST", "/crm/v3/objects/companies/search", self._search_companies, tag="search")
        self.add_route("GET", "/__sandbox/enrollments", self._list_enrollments, internal=True)

    # tokens


class HubSpotSandboxServer(SandboxServer[HubSpotSandbox]):
    """A running HubSpot sandbox: ``.url``, ``.token``, ``.portal``, ``.sandbox`` (the app), ``.stop()``."""

    @property
    def portal(self) -> HubSpotPortal:
        return self.app.portal

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, and stop sending webhooks."""
        if self.app.webhooks is not None:
            self.app.webhooks.close()
        super().stop(timeout)

    def client(self, *, token: str | None = None, **config: Any) -> hubspot.Client:
        """An official SDK client pointed at this sandbox (``host`` and ``base_url`` both set)."""
        import hubspot

        return hubspot.Client.create(access_token=token or self.token, host=self.url, base_url=self.url, **config)


def start_hubspot_sandbox(
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    token: str = "sandbox-token",
    contacts: int = 0,
    seed: int = 0,
    now: datetime | None = None,
    rate_limit: int | str | RateLimit | None = None,
    search_rate_limit: int | None = None,
    daily_limit: int = DEFAULT_DAILY_LIMIT,
    index_lag_s: float = 0.0,
    search_limits: SearchLimits | None = None,
    search_result_cap: int = SEARCH_RESULT_CAP,
    association_page_size: int = ASSOCIATION_PAGE_SIZE,
    webhook_url: str | None = None,
    webhook_secret: str = "",
    **faults: Unpack[FaultOptions],
) -> HubSpotSandboxServer:
    """Seed a portal with ``contacts`` synthetic people and serve it in a background thread.

    ``rate_limit``: requests per rolling 10 s per token (int, ``"100/10s"``, or None/0 = off); search then
    gets its own ``search_rate_limit`` per second (default 5; 0 = off). ``fault_rate`` (0..1) injects the
    ``fault_kinds`` from a RNG seeded with ``seed``. ``now`` anchors the synthetic dates (default: today's
    midnight UTC, so one seed gives one portal all day). ``association_page_size`` is how many associated ids
    one associations read returns per object before paging (tests make it small). ``webhook_url`` (with
    the app's client secret ``webhook_secret``) turns on signed change notifications. Stop it with ``.stop()``
    or use it as a context manager.
    """
    portal = HubSpotPortal(
        seed=seed,
        index_lag_s=index_lag_s,
        search_limits=search_limits,
        search_result_cap=search_result_cap,
        association_page_size=association_page_size,
    )
    if contacts:
        portal.seed_people(iter_people(contacts, seed=seed, now=now))
    app = HubSpotSandbox(
        portal,
        token=token,
        rate_limit=rate_limit,
        search_rate_limit=search_rate_limit,
        daily_limit=daily_limit,
        fault_seed=seed,
        **faults,
    )
    if webhook_url:
        app.enable_webhooks(webhook_url, webhook_secret)
    server = HubSpotSandboxServer(app, host=host, port=port)
    return server.start()


def serve_hubspot_sandbox(
    *,
    on_ready: Callable[[HubSpotSandboxServer], None] | None = None,
    **options: Any,
) -> None:
    """Run a sandbox in the foreground until Ctrl-C or SIGTERM (``leadsync sandbox hubspot``).

    ``options`` are those of :func:`start_hubspot_sandbox`. ``on_ready`` receives the running server
    (the CLI prints its URL and token); without it, both are printed to stdout.
    """
    server = start_hubspot_sandbox(**options)
    serve_in_foreground(server, on_ready or _announce)


def _announce(server: HubSpotSandboxServer) -> None:
    print(f"HubSpot sandbox listening on {server.url}", flush=True)
    print(f"Token: {server.token}  ({len(server.portal)} contacts)", flush=True)
