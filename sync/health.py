"""The daemon's HTTP side: ``/healthz`` (liveness), ``/readyz`` (readiness) and ``/metrics`` (Prometheus).

A small WSGI app on werkzeug's threaded server (already a dependency for the sandboxes) in a background
thread. The checks never call out from the request thread: ``/readyz`` answers from results the daemon's
probe keeps fresh, so a slow database or CRM cannot make the health endpoints hang, and scraping or
probing often costs the CRM nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["Check", "HealthServer"]

#: ``() -> (passing, details)``; details are shown as JSON
Check = Callable[[], tuple[bool, Mapping[str, Any]]]


class _QuietHandler(WSGIRequestHandler):
    """No access log: probes every few seconds would drown the daemon's own log lines."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class HealthServer:
    """Serves the three endpoints on ``host:port`` (port 0: a free one, see :attr:`port`)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        live: Check,
        ready: Check,
        registry: CollectorRegistry,
        mounts: Mapping[str, Callable[..., Iterable[bytes]]] | None = None,
    ) -> None:
        self._live = live
        #: other WSGI apps served on the same port, by exact path (the webhook endpoints)
        self._mounts = dict(mounts or {})
        self._ready = ready
        self._metrics = make_wsgi_app(registry)
        self._server: BaseWSGIServer = make_server(host, port, self._app, threaded=True, request_handler=_QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        if path in ("/healthz", "/livez"):
            return self._answer(self._live, start_response)
        if path == "/readyz":
            return self._answer(self._ready, start_response)
        mounted = self._mounts.get(path)
        if mounted is not None:
            return mounted(environ, start_response)
        body = json.dumps({"error": "not found", "endpoints": ["/healthz", "/readyz", "/metrics"]}).encode()
        start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _answer(check: Check, start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            ok, details = check()
        except Exception as exc:  # a broken check is a failing check, never a 500 with a traceback
            ok, details = False, {"error": f"{type(exc).__name__}: {exc}"}
        body = json.dumps({"status": "ok" if ok else "failing", **details}, default=str).encode()
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
