"""Legacy workflow enrollment (``/automation/v2``): enrolling by email, and a contact's current workflows."""

from __future__ import annotations

import time
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.hubspot._base import (
    PortalError,
    _correlation_id,
    _iso_ms,
)
from connectors.sandbox.hubspot._http import HubSpotRoutes
from connectors.sandbox.hubspot.store import (
    PortalStore,
)


class WorkflowsPortal(PortalStore):
    """Enrollments recorded in the store."""

    def record_enrollment(self, workflow_id: str, email: str) -> dict[str, Any]:
        """Enroll a contact by email into a (legacy) workflow.

        :raises PortalError: 404 when no active contact has that email.
        """
        with self.lock:
            found = self._by_email.get(email.strip().lower())
            if found is None:
                raise PortalError(404, "OBJECT_NOT_FOUND", f"Contact with email {email} does not exist")
            entry = {
                "workflowId": workflow_id,
                "email": email,
                "contactId": str(found),
                "enrolledAt": _iso_ms(time.time_ns() // 1_000_000),
            }
            self._enrollments.append(entry)
            return dict(entry)

    # engagements and associations


class WorkflowsRoutes(HubSpotRoutes):
    """``/automation/v2/workflows/...`` and the internal ``/__sandbox/enrollments``."""

    def _enroll(self, request: Request, workflowId: str, email: str) -> Response:
        try:
            self.portal.record_enrollment(workflowId, email)
        except PortalError as exc:
            # the legacy v2 API's error shape: no category
            body = {
                "status": "error",
                "message": exc.message,
                "correlationId": _correlation_id(),
                "requestId": _correlation_id(),
            }
            return json_response(body, 404)
        self.stats.increment("enrollments")
        return Response(status=204)

    def _unenroll(self, request: Request, workflowId: str, email: str) -> Response:
        self.stats.increment("unenrollments")
        return Response(status=204)

    def _current_enrollments(self, request: Request, vid: str) -> Response:
        """Workflows a contact is currently enrolled in: a JSON array of workflow objects.

        The sandbox's workflows never finish, so every enrollment stays current (in HubSpot a contact leaves
        the list when the workflow completes).
        """
        if self.portal.contact(vid) is None:
            body = {"status": "error", "message": f"Contact {vid} does not exist", "requestId": _correlation_id()}
            return json_response(body, 404)
        workflow_ids = sorted({e["workflowId"] for e in self.portal.enrollments() if e["contactId"] == vid.strip()})
        return json_response(
            [
                {
                    "id": int(w) if str(w).isdigit() else w,
                    "portalId": self.portal.portal_id,
                    "name": f"Workflow {w}",
                    "type": "DRIP_DELAY",
                    "enabled": True,
                }
                for w in workflow_ids
            ]
        )

    def _list_enrollments(self, request: Request) -> Response:
        return json_response({"results": self.portal.enrollments()})


# running it ----------------------------------------------------------------------------------------------
