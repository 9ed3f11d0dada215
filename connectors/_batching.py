"""Batch writes that survive one bad record: the same policy for every CRM."""

from __future__ import annotations

from collections.abc import Callable

from connectors.base import RecordFailure, RecordUpdate, WriteResult
from connectors.errors import RequestRejected, RetriableError


def write_isolating(batch: list[RecordUpdate], send: Callable[[list[RecordUpdate]], WriteResult]) -> WriteResult:
    """Send ``batch``; when the CRM rejects it whole for one bad record, split until that record is alone.

    ``send`` raises ``RequestRejected`` for a whole-batch rejection and ``RetriableError`` once its retries
    are spent; per-record failures travel in the ``WriteResult`` it returns. Records of a batch that failed
    transiently come back as retriable failures, kept for a later pass instead of failing the run.
    """
    if not batch:
        return WriteResult()
    try:
        return send(batch)
    except RequestRejected as exc:
        if len(batch) == 1:
            return WriteResult(failed=[RecordFailure(batch[0].id, str(exc), retriable=False, status=exc.status)])
        middle = len(batch) // 2
        result = write_isolating(batch[:middle], send)
        result.extend(write_isolating(batch[middle:], send))
        return result
    except RetriableError as exc:
        return WriteResult(failed=[RecordFailure(u.id, str(exc), retriable=True, status=exc.status) for u in batch])
