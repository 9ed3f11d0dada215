"""Delivering the outbox: each qualification triggers the CRM's automation exactly once.

The pipeline enqueues a trigger in the same transaction as the score that qualified the lead; this module
drains the queue after the pass's writes. Each item is claimed (committed) before the CRM call and marked
done after it. A crash between the two leaves it claimed, and the CRM may or may not have received the
call: the next attempt asks the CRM (:class:`DeliveryCheck`) before sending it again, so a crash or kill
never fires a workflow twice. A connector whose triggers are the property writes themselves (no workflow,
Flow or event configured) has nothing to send: its items are settled in one statement, not two commits each.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import structlog

from connectors.base import Connector
from connectors.errors import ConnectorError, FatalError, RetriableError
from sync.state import StateStore

log = structlog.get_logger("leadsync.sync")

#: pending items read (and claimed one by one) per round
BATCH: int = 100


@runtime_checkable
class DeliveryCheck(Protocol):
    """A connector that can tell whether a workflow trigger reached the CRM (optional capability)."""

    def trigger_delivered(self, record_id: str, email: str | None) -> bool | None:
        """True when the CRM has the trigger, False when not, None when it cannot tell."""
        ...


def triggers_call_crm(connector: Connector) -> bool:
    """Whether ``connector.trigger`` calls the CRM (connectors that do not say are assumed to)."""
    return bool(getattr(connector, "triggers_call_crm", True))


def deliver_triggers(store: StateStore, connector: Connector, owner: str) -> int:
    """Drain the outbox; returns the triggers delivered (or settled, when they need no call)."""
    if not triggers_call_crm(connector):
        return store.settle_pending_triggers()
    check = connector if isinstance(connector, DeliveryCheck) else None
    delivered = 0
    while True:
        batch = store.pending_triggers(limit=BATCH)
        if not batch:
            return delivered
        progressed = False
        for item in batch:
            if not store.claim_trigger(item, owner):
                continue  # another process claimed or finished it since we read it
            try:
                if (
                    item.claimed_at is not None
                    and check is not None
                    and check.trigger_delivered(item.lead_id, item.email)
                ):
                    log.info("trigger.already_delivered", lead=item.lead_id, claimed_by=item.claimed_by)
                else:
                    connector.trigger(item.lead_id, item.email)
            except RetriableError as exc:
                store.mark_trigger_failed(item.id, str(exc), final=False)
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
            delivered += 1
            progressed = True
        if not progressed:
            return delivered  # everything left is waiting for a transient error to clear: next pass
