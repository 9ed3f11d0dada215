"""Flows (invocable actions) and platform events: what the org recorded, and a flow's injected error."""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.salesforce._http import (
    SalesforceRoutes,
)
from connectors.sandbox.salesforce.schema import (
    KEY_PREFIXES,
    make_id,
)
from connectors.sandbox.salesforce.store import (
    OrgStore,
    SalesforceError,
)


class FlowsOrg(OrgStore):
    """Invocations and published events, kept for tests to read."""

    def set_flow_error(self, flow: str, message: str | None) -> None:
        """Make every interview of ``flow`` fail with ``message`` (None: succeed again). Creates the flow."""
        with self.lock:
            self.flows[flow] = message

    def invoke_flow(self, flow: str, inputs: Any) -> list[dict[str, Any]]:
        """``POST /actions/custom/flow/{flow}``: one result per input, every interview recorded.

        :raises SalesforceError: 404 for an unknown flow, 400 for malformed inputs.
        """
        with self.lock:
            if flow not in self.flows:
                raise SalesforceError(404, "NOT_FOUND", f"The requested resource does not exist: flow {flow}")
            if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) for i in inputs):
                raise SalesforceError(400, "JSON_PARSER_ERROR", "inputs must be a non-empty array of objects")
            error = self.flows[flow]
            at = self.tick()
            results = []
            for values in inputs:
                interview = str(uuid.uuid4())
                status = "Error" if error else "Finished"
                self._flow_calls.append(
                    {"flow": flow, "inputs": dict(values), "interview_id": interview, "at": at, "status": status}
                )
                results.append(
                    {
                        "actionName": flow,
                        "errors": [{"statusCode": "UNKNOWN_EXCEPTION", "message": error, "fields": []}]
                        if error
                        else None,
                        "isSuccess": not error,
                        "outputValues": {"Flow__InterviewGuid": interview, "Flow__InterviewStatus": status},
                        "sortOrder": -1,
                        "version": 1,
                    }
                )
            return results

    def flow_invocations(self, flow: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self._flow_calls if flow is None or c["flow"] == flow]

    def publish_event(self, event: str, values: Any) -> str:
        """``POST /sobjects/{Event__e}``: record the event; any ``*__c`` field is accepted."""
        with self.lock:
            if event not in self.platform_events:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            if not isinstance(values, dict):
                raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object")
            for key in values:
                if not key.endswith("__c"):
                    raise SalesforceError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {event}")
            event_id = make_id(KEY_PREFIXES["PlatformEvent"], self._id_base + len(self._events))
            self._events.append({"event": event, "id": event_id, "values": dict(values), "at": self.tick()})
            return event_id

    def published_events(self, event: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self._events if event is None or e["event"] == event]


class FlowsRoutes(SalesforceRoutes):
    """``/actions/custom/flow`` and the internal ``/__sandbox/flows`` and ``/__sandbox/events``."""

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
