"""Threaded HTTP(S) server infrastructure shared by the CRM sandboxes.

A sandbox is a :class:`SandboxApp` (a WSGI app: routing, request statistics, and a request pipeline of
auth -> rate limit -> fault injection -> handler, with the vendor specifics as overridable hooks) served
by a :class:`SandboxServer` on 127.0.0.1 in a background thread. The server is werkzeug's threaded WSGI
server (the class ``werkzeug.serving.make_server(..., threaded=True)`` builds), subclassed only to track
its connection threads so that :meth:`SandboxServer.stop` leaves no thread running: it shuts their
sockets down and joins them, and an injected slow response ends at once instead of outliving the server.

Faults come at a seeded random rate (``fault_rate``/``fault_kinds``) or scheduled, deterministically:
``app.faults.schedule("corrupt", "GET /crm/v3/objects/contacts", nth=2)`` gives the 2nd request to that
endpoint a truncated 200 body (``html``: a gateway's 200 error page; ``drip``: the right body, trickled;
``stall``: half the body, then silence). Record faults leave the page well-formed and spoil its first record
(``huge``: a 50 MB text value; ``enum``: an enumeration value that is none of its options; ``idtype``: the
record's id sent as a JSON number); the vendor subclass says how (:meth:`SandboxApp.spoil_record`), and
``app.faults.spoiled`` lists (kind, record id) of every record so spoiled, for tests to look at.

Every sandbox serves ``GET /__sandbox/stats`` (no auth, never counted, never throttled or faulted)::

    {"requests": total, "by_endpoint": {"METHOD /path/{template}": n}, "throttled": n429, "faults": n}
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import random
import re
import signal
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypedDict, TypeVar

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

__all__ = [
    "ALL_FAULT_KINDS",
    "FAULT_KINDS",
    "PAYLOAD_FAULT_KINDS",
    "RECORD_FAULT_KINDS",
    "RESET_STATS_PATH",
    "STATS_PATH",
    "UNKNOWN_OPTION",
    "Abort",
    "DropConnection",
    "FaultInjector",
    "FaultOptions",
    "FaultRule",
    "LimitDecision",
    "RateLimit",
    "RequestStats",
    "RollingWindowLimiter",
    "Route",
    "SandboxApp",
    "SandboxServer",
    "gc_paused",
    "json_response",
    "parse_fault_kinds",
    "parse_fault_rule",
    "parse_rate_limit",
    "retry_after_header",
    "serve_in_foreground",
]

logger = logging.getLogger("connectors.sandbox")

#: internal endpoints: no auth, no limits, no faults, not counted in the statistics
STATS_PATH = "/__sandbox/stats"
RESET_STATS_PATH = "/__sandbox/reset-stats"
#: fault kinds drawn at the random fault rate by default: an HTTP status with the vendor's error body, a slow
#: (but correct) response, or a socket closed without any response
FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "slow", "drop")
#: faults in a 200's body: ``corrupt`` (the real body truncated: malformed JSON or CSV), ``html`` (a gateway's
#: text/html error page, the handler never runs), ``drip`` (the correct body trickled, by default 64 bytes/s
#: in small writes, so that a per-read timeout never trips), ``stall`` (the headers and the first half of the
#: correct body, then nothing for ``stall_s``, 60 s by default, then the connection closes)
PAYLOAD_FAULT_KINDS: tuple[str, ...] = ("corrupt", "html", "drip", "stall")
#: faults in one record of a well-formed 200 page (its first one): ``huge`` (a text property of
#: ``huge_value_bytes``, 50 MB by default), ``enum`` (an enumeration property the rules use, given a value
#: that is none of its options), ``idtype`` (the record id a JSON number instead of the documented string)
RECORD_FAULT_KINDS: tuple[str, ...] = ("huge", "enum", "idtype")
#: every kind ``fault_kinds`` and :meth:`FaultInjector.schedule` accept
ALL_FAULT_KINDS: tuple[str, ...] = FAULT_KINDS + PAYLOAD_FAULT_KINDS + RECORD_FAULT_KINDS
#: the value the ``enum`` fault gives an enumeration property: no portal or org has it as an option
UNKNOWN_OPTION = "leadsync-sandbox-unknown-option"
#: a proxy's error page, served by the ``html`` fault with status 200
GATEWAY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"
)
#: how often the serve loop checks for shutdown; small so that stop() is quick
_POLL_INTERVAL_S = 0.05

Handler = Callable[..., Response]

_gc_lock = threading.Lock()
_gc_state = {"pauses": 0, "was_enabled": False}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a burst of allocations (seeding, a search over 200k).

    A portal holds millions of container objects; every few thousand new tuples the collector would scan
    them all again, which made a 100k-contact search five times slower. Nested and concurrent pauses are
    counted: the collector comes back when the last one ends, and only if it was on to begin with.
    """
    with _gc_lock:
        if _gc_state["pauses"] == 0:
            _gc_state["was_enabled"] = gc.isenabled()
            gc.disable()
        _gc_state["pauses"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["pauses"] -= 1
            if _gc_state["pauses"] == 0 and _gc_state["was_enabled"]:
                gc.enable()


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A compact JSON response (compact because benchmarks serve many pages)."""
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(payload, status=status, headers=dict(headers or {}), mimetype="application/json")


class Abort(Exception):
    """Raised by a handler to answer with ``response`` (a vendor error) from anywhere in its call stack."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class DropConnection(ConnectionError):
    """Raised inside the app to close the socket without any response.

    werkzeug treats a ``ConnectionError`` from the app as a dropped connection and sends nothing; our
    request handler then closes the socket, so the client sees the connection die mid-request.
    """


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` requests per rolling ``window_s`` seconds."""

    limit: int
    window_s: float = 10.0


_RATE_RE = re.compile(r"^\s*(\d+)\s*(/\s*(\d+(?:\.\d+)?)?\s*(ms|s|sec|m|min)?)?\s*$", re.IGNORECASE)


def parse_rate_limit(value: str | int | RateLimit | None, *, default_window_s: float = 10.0) -> RateLimit | None:
    """Parse a CLI rate limit such as ``"100/10s"``, ``"5/s"``, ``"100"`` (per 10 s) or ``"0"`` (off).

    :raises ValueError: when the text is not of the form ``N[/[W](ms|s|m)]``.
    """
    if value is None or isinstance(value, RateLimit):
        return value if (value is None or value.limit > 0) else None
    if isinstance(value, int):
        return RateLimit(value, default_window_s) if value > 0 else None
    match = _RATE_RE.match(value)
    if not match or (match.group(2) and match.group(3) is None and match.group(4) is None):
        msg = f"invalid rate limit {value!r}: expected N/10s (requests per window), e.g. 100/10s"
        raise ValueError(msg)
    limit = int(match.group(1))
    if limit <= 0:
        return None
    if match.group(2) is None:
        return RateLimit(limit, default_window_s)
    amount = float(match.group(3)) if match.group(3) else 1.0
    unit = (match.group(4) or "s").lower()
    factor = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0}[unit]
    if amount * factor <= 0:
        msg = f"invalid rate limit {value!r}: the window must be positive"
        raise ValueError(msg)
    return RateLimit(limit, amount * factor)


@dataclass(frozen=True, slots=True)
class LimitDecision:
    """Outcome of one limiter check; ``remaining`` is after this request, ``retry_after_s`` when refused."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float = 0.0


class RollingWindowLimiter:
    """Per-key rolling-window limiter (HubSpot's ``TEN_SECONDLY_ROLLING`` policy is one).

    Refused requests do not consume the window, as with the vendors: a client that backs off recovers.
    """

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if limit <= 0 or window_s <= 0:
            msg = "limit and window_s must be positive"
            raise ValueError(msg)
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> LimitDecision:
        """Count one request for ``key`` unless the window is full."""
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            horizon = now - self.window_s
            while hits and hits[0] <= horizon:
                hits.popleft()
            if len(hits) >= self.limit:
                retry_after = hits[0] + self.window_s - now
                return LimitDecision(False, self.limit, 0, max(retry_after, 0.001))
            hits.append(now)
            return LimitDecision(True, self.limit, self.limit - len(hits))


class RequestStats:
    """Thread-safe request counters, served at ``GET /__sandbox/stats``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._by_endpoint: dict[str, int] = {}
        self._throttled = 0
        self._faults = 0
        self._extra: dict[str, int] = {}

    def record_request(self, endpoint: str) -> None:
        with self._lock:
            self._requests += 1
            self._by_endpoint[endpoint] = self._by_endpoint.get(endpoint, 0) + 1

    def record_throttled(self) -> None:
        with self._lock:
            self._throttled += 1

    def record_fault(self) -> None:
        with self._lock:
            self._faults += 1

    def increment(self, name: str, amount: int = 1) -> None:
        """Count a vendor-specific event (e.g. workflow enrollments) that tests want to see in stats."""
        with self._lock:
            self._extra[name] = self._extra.get(name, 0) + amount

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "by_endpoint": dict(sorted(self._by_endpoint.items())),
                "throttled": self._throttled,
                "faults": self._faults,
                **self._extra,
            }

    def reset(self) -> None:
        with self._lock:
            self._requests = self._throttled = self._faults = 0
            self._by_endpoint.clear()
            self._extra = dict.fromkeys(self._extra, 0)


@dataclass(slots=True)
class FaultRule:
    """A scheduled fault: from the ``nth`` request (counted from when it was scheduled) to ``endpoint``
    (a route key such as ``"GET /crm/v3/objects/contacts"``; None: any endpoint), ``times`` requests in a row
    (None: every one from then on) get ``kind``."""

    kind: str
    endpoint: str | None = None
    nth: int = 1
    times: int | None = 1
    seen: int = 0
    fired: int = 0

    def hit(self, endpoint: str) -> bool:
        """Count one request; True when this one gets the fault."""
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        self.seen += 1
        if self.seen < self.nth or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(kinds)
    unknown = [k for k in chosen if k not in ALL_FAULT_KINDS]
    if unknown or not chosen:
        msg = (
            f"fault kinds must be a non-empty subset of {', '.join(ALL_FAULT_KINDS)}; got {', '.join(chosen) or 'none'}"
        )
        raise ValueError(msg)
    return chosen


def parse_fault_kinds(text: str) -> tuple[str, ...]:
    """``"corrupt,html"`` -> ``("corrupt", "html")`` (the sandbox CLI's ``--fault-kinds``).

    :raises ValueError: naming the unknown kinds.
    """
    return _check_kinds(k.strip() for k in text.split(",") if k.strip())


_RULE_RE = re.compile(r"^\s*(\w+)\s*:\s*(\d+)(\+?)\s*(?::\s*(\S.*?))?\s*$")


def parse_fault_rule(text: str) -> FaultRule:
    """``KIND:N[+][:METHOD /path/{template}]``: the Nth request (``N+``: and every later one) to that endpoint
    (default: any) gets KIND, e.g. ``corrupt:2:GET /crm/v3/objects/contacts`` (the sandbox CLI's ``--fault-at``).

    :raises ValueError: when the text is not of that form or the kind is unknown.
    """
    match = _RULE_RE.match(text)
    if not match or int(match.group(2)) < 1:
        msg = (
            f"invalid fault rule {text!r}: expected KIND:N[+][:METHOD /path], "
            "e.g. corrupt:2:GET /crm/v3/objects/contacts"
        )
        raise ValueError(msg)
    kind = _check_kinds([match.group(1)])[0]
    return FaultRule(kind, match.group(4), int(match.group(2)), None if match.group(3) else 1)


class FaultInjector:
    """Injects faults: scheduled ones (:meth:`schedule`, deterministic) first, else drawn at ``rate`` from a
    seeded RNG, so that a fault sequence is reproducible."""

    def __init__(
        self,
        rate: float = 0.0,
        *,
        seed: int = 0,
        kinds: Iterable[str] = FAULT_KINDS,
        slow_s: float = 2.0,
        drip_bytes_per_s: float = 64.0,
        stall_s: float = 60.0,
        huge_value_bytes: int = 50 * 1024 * 1024,
    ) -> None:
        self.kinds = _check_kinds(kinds)
        self.rate = rate
        self.slow_s = slow_s
        #: how fast a ``drip`` fault sends the body (about 20 writes a second, of up to 64 bytes each)
        self.drip_bytes_per_s = drip_bytes_per_s
        #: how long a ``stall`` fault keeps the connection silent after half the body
        self.stall_s = stall_s
        #: how long the value a ``huge`` fault puts in a record is
        self.huge_value_bytes = huge_value_bytes
        #: (kind, original record id) of every record a record fault spoiled, in order
        self.spoiled: list[tuple[str, str]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            msg = f"fault rate must be within 0..1, got {value}"
            raise ValueError(msg)
        self._rate = value

    def schedule(
        self, kind: str | FaultRule, endpoint: str | None = None, *, nth: int = 1, times: int | None = 1
    ) -> FaultRule:
        """Give the ``nth`` next request to ``endpoint`` (None: any), and ``times - 1`` after it (None: all
        later ones), the fault ``kind``. Returns the rule (its ``fired`` counts the faults it injected)."""
        rule = kind if isinstance(kind, FaultRule) else FaultRule(_check_kinds([kind])[0], endpoint, nth, times)
        if rule.nth < 1 or (rule.times is not None and rule.times < 1):
            msg = f"a fault rule needs nth >= 1 and times >= 1 (or None), got nth={rule.nth} times={rule.times}"
            raise ValueError(msg)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_schedule(self) -> None:
        with self._lock:
            self._rules.clear()

    def draw(self, endpoint: str = "") -> str | None:
        """The fault to inject into this request to ``endpoint`` (a route key), or None."""
        with self._lock:
            chosen = None
            for rule in self._rules:  # every rule counts the request, even when an earlier one fires
                if rule.hit(endpoint) and chosen is None:
                    chosen = rule.kind
            if chosen is not None:
                return chosen
            if self._rate <= 0.0 or self._rng.random() >= self._rate:
                return None
            return self._rng.choice(self.kinds)


class FaultOptions(TypedDict, total=False):
    """The fault options a sandbox's constructor and ``start_*`` function pass through to :class:`SandboxApp`.

    One home for them, so that each layer need not repeat the list; the defaults are :class:`SandboxApp`'s.
    """

    fault_rate: float
    fault_kinds: Iterable[str]
    slow_response_s: float


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. ``template`` uses the vendor docs' ``{param}`` syntax, which is also the stats key."""

    method: str
    template: str
    handler: Handler
    internal: bool = False
    tag: str = ""

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


_PARAM_RE = re.compile(r"\{(\w+)\}")


class SandboxApp:
    """Base WSGI app of a sandbox: routing, stats and the request pipeline.

    Pipeline for every non-internal request: count it, :meth:`authenticate`, :meth:`admit` (rate limits;
    may answer 429, counted as throttled), draw a fault (counted), then run the handler under
    :attr:`lock`, so that handlers see a consistent portal. Subclasses supply the vendor's behaviour by
    overriding the hooks; handlers may raise :class:`Abort` with a vendor error response.
    """

    def __init__(
        self,
        *,
        token: str = "",
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        slow_response_s: float = 2.0,
    ) -> None:
        #: the credential the vendor's gate accepts from the start (servers report it to clients)
        self.token = token
        #: guards the portal: every handler runs holding it; take it too when touching the portal directly
        self.lock = threading.RLock()
        self.stats = RequestStats()
        self.faults = FaultInjector(fault_rate, seed=fault_seed, kinds=fault_kinds, slow_s=slow_response_s)
        #: set when the server stops, so that injected slow responses end at once
        self.stopping = threading.Event()
        self._routes: dict[str, Route] = {}
        self._url_map = Map(strict_slashes=False, merge_slashes=False)
        self.add_route("GET", STATS_PATH, self._serve_stats, internal=True)
        self.add_route("POST", RESET_STATS_PATH, self._reset_stats, internal=True)

    def set_limits(self, rate_limit: str | int | RateLimit | None, daily_limit: int, *, window_s: float) -> None:
        """Install the two limits every vendor's gate applies: a rolling window (None: off) and a daily budget."""
        self.limiter = rolling_limiter(rate_limit, window_s=window_s)
        self.daily_limit = daily_limit
        self.daily = DailyBudget(daily_limit)

    def add_route(self, method: str, template: str, handler: Handler, *, internal: bool = False, tag: str = "") -> None:
        """Register ``handler(request, **path_params)`` for ``METHOD /path/{param}``."""
        route = Route(method.upper(), template, handler, internal, tag)
        if route.key in self._routes:
            msg = f"duplicate route {route.key}"
            raise ValueError(msg)
        self._routes[route.key] = route
        self._url_map.add(Rule(_PARAM_RE.sub(r"<\1>", template), methods=[route.method], endpoint=route.key))

    @property
    def routes(self) -> list[Route]:
        return list(self._routes.values())

    # hooks for the vendor-specific subclass

    def authenticate(self, request: Request, route: Route) -> str | Response:
        """The principal (token) the request runs as, or the vendor's 401 response."""
        return ""

    def admit(self, request: Request, route: Route, principal: str) -> Response | dict[str, str]:
        """Apply rate limits: a 429 response, or the headers to add to the normal response."""
        return {}

    def fault_response(self, status: int) -> Response:
        """The vendor's body for an injected 5xx."""
        return json_response({"message": "injected fault", "status": status}, status)

    #: the key of a record page's list of records (HubSpot ``results``, Salesforce ``records``)
    records_key = "results"

    def spoil_record(self, kind: str, record: dict[str, Any]) -> str | None:
        """Make one record of a page hostile in place for the record fault ``kind`` (see
        :data:`RECORD_FAULT_KINDS`); returns the record's original id, or None when this record has nothing
        the fault can spoil (the page then goes out unchanged)."""
        return None

    def huge_value(self) -> str:
        """The value a ``huge`` fault puts in a record: a job title, padded to ``huge_value_bytes``."""
        return "VP " + "x" * max(0, self.faults.huge_value_bytes - 3)

    def handle_exception(self, exc: Exception) -> Response | None:
        """Render a vendor error raised by a handler; None means "a bug": logged and answered with a 500."""
        return None

    def not_found(self, request: Request) -> Response:
        return json_response({"message": f"no route for {request.method} {request.path}"}, 404)

    def method_not_allowed(self, request: Request) -> Response:
        return json_response({"message": f"method {request.method} not allowed on {request.path}"}, 405)

    # WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        response = self.dispatch(Request(environ))
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route one request through the pipeline (public so that tests can call it without a socket)."""
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            key, params = adapter.match()
        except MethodNotAllowed:
            self.stats.record_request(f"{request.method} <unmatched>")
            return self.method_not_allowed(request)
        except NotFound:
            self.stats.record_request(f"{request.method} <unmatched>")
            return self.not_found(request)
        route = self._routes[str(key)]
        if route.internal:
            return self._run(route, request, params)
        self.stats.record_request(route.key)
        principal = self.authenticate(request, route)
        if isinstance(principal, Response):
            return principal
        admitted = self.admit(request, route, principal)
        if isinstance(admitted, Response):
            if admitted.status_code == 429:
                self.stats.record_throttled()
            return admitted
        fault = self.faults.draw(route.key)
        if fault is not None:
            self.stats.record_fault()
            if fault == "drop":
                request.get_data()  # the request arrived whole; only the answer is lost
                raise DropConnection("sandbox fault: connection dropped")
            if fault == "html":  # a gateway answered in the vendor's place: the request never arrived
                request.get_data()
                return Response(GATEWAY_PAGE, status=200, mimetype="text/html")
            if fault == "slow":
                self.stopping.wait(self.faults.slow_s)
            elif fault not in PAYLOAD_FAULT_KINDS + RECORD_FAULT_KINDS:
                return self.fault_response(int(fault))
        response = self._run(route, request, params)
        for name, value in admitted.items():
            response.headers[name] = value
        if fault == "corrupt":
            return _truncated(response)
        if fault == "drip":
            return self._dripped(response)
        if fault == "stall":
            return self._stalled(response)
        if fault in RECORD_FAULT_KINDS:
            return self._spoiled(fault, response)
        return response

    def _stalled(self, response: Response) -> Response:
        """The same answer: its headers and the first half of its body, then silence for ``stall_s`` (ended
        early when the server stops), then the connection is closed: the client never gets the rest."""
        body = response.get_data()
        stopping, stall_s = self.stopping, self.faults.stall_s

        def half_then_silence() -> Iterator[bytes]:
            yield body[: len(body) // 2]
            stopping.wait(stall_s)
            raise DropConnection("sandbox fault: stalled mid-body")

        stalled = Response(half_then_silence(), status=response.status_code, headers=response.headers)
        stalled.headers["Content-Length"] = str(len(body))
        return stalled

    def _spoiled(self, kind: str, response: Response) -> Response:
        """The same JSON page with its first record spoiled by :meth:`spoil_record` (anything else unchanged)."""
        if response.status_code != 200 or not (response.mimetype or "").endswith("json"):
            return response
        try:
            page = json.loads(response.get_data())
        except ValueError:
            return response
        records = page.get(self.records_key) if isinstance(page, dict) else None
        if not isinstance(records, list) or not records or not isinstance(records[0], dict):
            return response
        spoiled = self.spoil_record(kind, records[0])
        if spoiled is None:
            return response
        with self.faults._lock:
            self.faults.spoiled.append((kind, spoiled))
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return json_response(page, 200, headers)

    def _dripped(self, response: Response) -> Response:
        """The same answer, its body sent slowly (the declared Content-Length is the full one)."""
        body = response.get_data()
        rate = max(self.faults.drip_bytes_per_s, 1.0)
        chunk = max(1, min(64, int(rate / 20)))  # about 20 writes a second: no socket read ever waits long
        stopping = self.stopping

        def trickle() -> Iterator[bytes]:
            for start in range(0, len(body), chunk):
                if start and stopping.wait(chunk / rate):
                    return  # the server is stopping: the client sees a short body
                yield body[start : start + chunk]

        dripped = Response(trickle(), status=response.status_code, headers=response.headers)
        dripped.headers["Content-Length"] = str(len(body))
        return dripped

    def _run(self, route: Route, request: Request, params: Mapping[str, Any]) -> Response:
        try:
            with self.lock:
                return route.handler(request, **params)
        except Abort as exc:
            return exc.response
        except Exception as exc:
            handled = self.handle_exception(exc)
            if handled is not None:
                return handled
            # a sandbox bug: answer like the vendor's 500 (clients see a server error), keep the traceback
            logger.exception("sandbox handler failed: %s %s", request.method, request.path)
            return self.fault_response(500)

    def _serve_stats(self, request: Request) -> Response:
        return json_response(self.stats.snapshot())

    def _reset_stats(self, request: Request) -> Response:
        self.stats.reset()
        return Response(status=204)


def _truncated(response: Response) -> Response:
    """Status 200 with the first half of the real body (malformed JSON or a short CSV), same content type."""
    body = response.get_data() or b'{"results": [{"id": "1", "properties": {'
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(body[: max(1, len(body) // 2)], status=200, headers=headers)


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log (benchmarks make thousands of calls); close the socket after an injected drop."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.debug("sandbox %s: " + message, type, *args)

    def connection_dropped(self, error: BaseException, environ: dict[str, Any] | None = None) -> None:
        self.close_connection = True

    def handle(self) -> None:
        try:
            super().handle()
        except OSError as exc:  # the socket was shut down by stop(), or a TLS error on a dying socket
            logger.debug("sandbox connection ended: %s", exc)


class _TrackingWSGIServer(ThreadedWSGIServer):
    """werkzeug's threaded server, tracking connection threads so that shutdown can end and join them."""

    def __init__(
        self,
        host: str,
        port: int,
        app: SandboxApp,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(host, port, app, _QuietRequestHandler, False, ssl_context)
        self._conn_lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._closing = False

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"sandbox-conn-{self.port}",
            daemon=True,
        )
        with self._conn_lock:
            if self._closing:
                self.shutdown_request(request)
                return
            self._connections[thread] = request
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("sandbox connection error from %s", client_address, exc_info=True)

    def close_connections(self, timeout: float) -> list[threading.Thread]:
        """Shut every open connection down and join its thread; returns the threads still alive."""
        with self._conn_lock:
            self._closing = True
            items = list(self._connections.items())
        for _thread, sock in items:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread, _sock in items:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return [thread for thread, _sock in items if thread.is_alive()]


_AppT = TypeVar("_AppT", bound=SandboxApp)


class SandboxServer(Generic[_AppT]):
    """Serve a :class:`SandboxApp` on ``host:port`` (0 = a free port) in a background thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``ssl_context`` turns on TLS (the
    Salesforce sandbox: simple-salesforce only speaks https).
    """

    def __init__(
        self,
        app: _AppT,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self._tls = ssl_context is not None
        self._server = _TrackingWSGIServer(host, port, app, ssl_context)
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def sandbox(self) -> _AppT:
        """The app being served (the same object as ``.app``)."""
        return self.app

    @property
    def token(self) -> str:
        """The token clients present (the app's :attr:`SandboxApp.token`)."""
        return self.app.token

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start serving in a daemon thread (idempotent)."""
        if self._stopped:
            msg = "a stopped sandbox server cannot be restarted; create a new one"
            raise RuntimeError(msg)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL_S},
                name=f"sandbox-server-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close open connections, end injected sleeps and join every thread.

        :raises RuntimeError: when a connection thread does not end within ``timeout``.
        """
        if self._stopped:
            return
        self._stopped = True
        self.app.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
        leftover = self._server.close_connections(timeout)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                leftover.append(self._thread)
        if leftover:
            msg = f"sandbox threads still running after stop: {[t.name for t in leftover]}"
            raise RuntimeError(msg)

    def stats(self) -> dict[str, Any]:
        """The same snapshot as ``GET /__sandbox/stats``, without a request."""
        return self.app.stats.snapshot()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_ServerT = TypeVar("_ServerT", bound=SandboxServer[Any])


def serve_in_foreground(server: _ServerT, on_ready: Callable[[_ServerT], None]) -> None:
    """Keep a started ``server`` running until Ctrl-C or SIGTERM, then stop it (``leadsync sandbox ...``).

    ``on_ready`` gets the running server first (to print its URL and credentials). SIGTERM is only caught
    on the main thread (Python allows no other), and the previous handler is put back afterwards.
    """
    done = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: done.set())
    try:
        on_ready(server)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        server.stop()


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up and at least 1."""
    return str(max(1, math.ceil(seconds)))


# rate-limit building blocks both CRMs' gates use -----------------------------------------------------------


def rolling_limiter(value: str | int | RateLimit | None, *, window_s: float = 10.0) -> RollingWindowLimiter | None:
    """The limiter a sandbox's ``rate_limit`` option asks for (see :func:`parse_rate_limit`), or None when off."""
    limit = parse_rate_limit(value, default_window_s=window_s)
    return RollingWindowLimiter(limit.limit, limit.window_s) if limit else None


class DailyBudget:
    """A day's API allowance per key (HubSpot counts per token, Salesforce per org), thread-safe.

    The day never ends in a sandbox: tests move the counter with :meth:`set_used` instead.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def used(self, key: str = "") -> int:
        with self._lock:
            return self._used.get(key, 0)

    def set_used(self, used: int, key: str = "") -> None:
        with self._lock:
            self._used[key] = used

    def exhausted(self, key: str = "") -> bool:
        with self._lock:
            return self._used.get(key, 0) >= self.limit

    def spend(self, key: str = "") -> int:
        """Count one request whatever the budget says; returns the count after it."""
        with self._lock:
            used = self._used[key] = self._used.get(key, 0) + 1
            return used

    def try_spend(self, key: str = "", also: Callable[[], bool] | None = None) -> tuple[bool, int]:
        """Count one request unless the budget is spent or ``also`` (checked under the same lock) refuses.

        Returns (allowed, the count after this request).
        """
        with self._lock:
            used = self._used.get(key, 0)
            allowed = used < self.limit and (also is None or also())
            if allowed:
                used = self._used[key] = used + 1
            return allowed, used
