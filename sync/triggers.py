"""Delivering the outbox: each qualification triggers the CRM's automation exactly once.

The pipeline enqueues a trigger in the same transaction as the score that qualified the lead; this module
drains the queue after the pass's writes. Each item is claimed (committed) before the CRM call and marked
done after it. A crash between the two leaves it claimed, and the CRM may or may not have received the
call: the next attempt asks the CRM (:class:`DeliveryCheck`) before sending it again, so a crash or kill
never fires a workflow twice. Where the CRM cannot tell (a Salesforce Flow or platform event), the
interrupted item is not sent again: it ends ``failed`` with a message saying so (``leadsync status`` shows
it) rather than risk a second firing. An attempt the CRM answered with an error (a 5xx, a 429) releases the
claim: it did not deliver, so the next pass sends it without doubt.

Without explicit triggers (no workflow, Flow or event configured) the CRM's automation reacts to the written
properties: the trigger was delivered with the write, and the pending items are settled in one statement
instead of two commits each.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import structlog

from connectors.base import Connector
from connectors.errors import ConnectorError, FatalError, RetriableError
from sync.state import StateStore
from sync.state.outbox import unconfirmed_delivery

log = structlog.get_logger("leadsync.sync")

#: pending items read (and claimed one by one) per round
BATCH: int = 100


@runtime_checkable
class DeliveryCheck(Protocol):
    """A connector that can tell whether a workflow trigger reached the CRM (optional capability)."""

    def trigger_delivered(self, record_id: str, email: str | None) -> bool | None:
        """True when the CRM has the trigger, False when not, None when it cannot tell."""
        ...


def deliver_triggers(store: StateStore, connector: Connector, owner: str, *, explicit: bool) -> int:
    """Drain the outbox; returns the triggers delivered (or settled, when ``explicit`` is False)."""
    if not explicit:
        return store.settle_pending_triggers()
    check = connector if isinstance(connector, DeliveryCheck) else None
    delivered_total = 0
    while True:
        batch = store.pending_triggers(limit=BATCH)
        if not batch:
            return delivered_total
        progressed = False
        for item in batch:
            if not store.claim_trigger(item, owner):
                continue  # another process claimed or finished it since we read it
            try:
                interrupted = item.claimed_at is not None
                delivered = check.trigger_delivered(item.lead_id, item.email) if interrupted and check else None
                if delivered:
                    log.info("trigger.already_delivered", lead=item.lead_id, claimed_by=item.claimed_by)
                elif interrupted and delivered is None:
                    message = unconfirmed_delivery(connector.name, item)
                    store.mark_trigger_failed(item.id, message, final=True)
                    log.error("trigger.unconfirmed", lead=item.lead_id, claimed_by=item.claimed_by, error=message)
                    progressed = True
                    continue
                else:
                    connector.trigger(item.lead_id, item.email)
            except RetriableError as exc:
                answered = exc.status is not None and exc.status >= 400  # an error answer: not delivered
                store.mark_trigger_failed(item.id, str(exc), final=False, release=answered)
                log.warning("trigger.retry_later", lead=item.lead_id, error=str(exc))
                continue
            except FatalError as exc:
                store.mark_trigger_failed(item.id, str(exc), final=True)
                log.error("trigger.failed", lead=item.lead_id, error=str(exc))
                progressed = True
                continue
            except ConnectorError:
                raise
            store.mark_triggered(item.id)
            delivered_total += 1
            progressed = True
        if not progressed:
            return delivered_total  # everything left is waiting for a transient error to clear: next pass
