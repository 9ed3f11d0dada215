"""Near-real-time scoring from CRM webhooks: verified notifications, a bounded queue, micro-passes.

``verify`` (signatures, secrets), ``events`` (the bodies), ``queue`` (coalescing, back-pressure),
``endpoint`` (the WSGI app on the daemon's port), ``micropass`` (the pipeline's pass over ids read by id) and
:class:`WebhookService`, which the daemon starts. May import the rest of sync/ (pipeline, state, metrics,
passwrites) and connectors.base; never leadsync/.
"""

from sync.webhooks.endpoint import PATHS, WebhookEndpoint, WebhookSettings
from sync.webhooks.events import Notice
from sync.webhooks.micropass import WEBHOOK_JOB, MicroPass, MicroResult
from sync.webhooks.queue import NoticeQueue
from sync.webhooks.service import WebhookService

__all__ = [
    "PATHS",
    "WEBHOOK_JOB",
    "MicroPass",
    "MicroResult",
    "Notice",
    "NoticeQueue",
    "WebhookEndpoint",
    "WebhookService",
    "WebhookSettings",
]
