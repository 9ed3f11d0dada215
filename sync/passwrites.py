"""What a pass gathers across its pages: changed scores until a full write batch, and its own write times.

Why: a pass that reads 20,000 records of which 200 changed used to write them page by page (one batch call
per 1,000-record group, 20 calls where 2 would do). :class:`HeldWrites` holds each lead's changed score with
everything that must be committed with it (its score, history rows, trigger, cached record) until a full batch
of the CRM's size is there, or the pass ends; a lead's score is still committed only after its write, in the
same commit point as its written values and its trigger, so the outbox's crash safety is the one it was.

:class:`IndexEvidence` counts leadsync's own writes per second of the CRM's modification time, so that the
next pass can tell how far the search index had caught up: the overlap window then re-reads only what could
still be lagging, not a whole write phase of leadsync's own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.base import RecordUpdate, WriteResult
from sync.state import CachedLead, HistoryRow, StoredOutcome, StoredScore

#: key, in the stored written values, of the record's modification time right after leadsync's write
MODIFIED_KEY = "_crm_modified_at"


@dataclass
class LeadCommit:
    """One lead's part of a commit point: stored only after its write (if it has one) was answered."""

    score: StoredScore
    history: list[HistoryRow]
    update: RecordUpdate | None = None
    #: (lead id, email, qualified_at) when this score newly qualified the lead
    trigger: tuple[str, str | None, datetime] | None = None
    #: the record as read, cached after its write (None: the lead came from the cache)
    cached: CachedLead | None = None
    #: whether the written score is the shadow challenger's
    challenger: bool = False
    #: what leadsync last wrote before this pass (for the per-second counts of its own writes)
    previous_modified: str | None = None


@dataclass
class Flushed:
    """What one flush sent and committed (the pipeline adds it to the pass's summary)."""

    written: int = 0
    failed: int = 0
    challenger_written: int = 0
    values_truncated: int = 0
    new_outcomes: int = 0


#: writes the held updates (the connector's ``write``)
WriteFn = Callable[[Sequence[RecordUpdate]], WriteResult]


@dataclass
class HeldWrites:
    """Changed scores held across the pages of a pass until a full write batch (see the module docstring)."""

    write: WriteFn
    batch_size: int
    #: commits ``(scores, written, triggers, history, outcomes)`` in one transaction; returns new outcomes
    commit: Callable[..., int]
    #: values cut to the store's bound so far (the store's running count; caching happens in ``commit``)
    truncated: Callable[[], int]
    record_failures: Callable[[list[tuple[str, str, dict[str, str], str, bool]]], None]
    clear_failures: Callable[[list[str]], None]
    explicit_triggers: bool
    on_written: Callable[[int], None]
    on_failure: Callable[[str, bool, str], None]
    evidence: IndexEvidence
    held: list[LeadCommit] = field(default_factory=list)

    def add(self, commits: Iterable[LeadCommit], outcomes: Sequence[StoredOutcome] = ()) -> Flushed:
        """Commit the leads that need no write now; hold the others, writing every full batch."""
        ready: list[LeadCommit] = []
        for commit in commits:
            (self.held if commit.update is not None else ready).append(commit)
        full = len(self.held) - len(self.held) % self.batch_size
        sending, self.held = self.held[:full], self.held[full:]
        return self._send(sending, ready, outcomes)

    def finish(self) -> Flushed:
        """The end of the pass: write what is held, however few."""
        sending, self.held = self.held, []
        return self._send(sending, [], ())

    def _send(self, sending: list[LeadCommit], ready: list[LeadCommit], outcomes: Sequence[StoredOutcome]) -> Flushed:
        done = Flushed()
        if not sending and not ready and not outcomes:
            return done
        result = self.write([c.update for c in sending if c.update is not None]) if sending else WriteResult()
        landed = set(result.succeeded)
        done.written, done.failed = len(landed), len(result.failed)
        done.challenger_written = sum(c.challenger for c in sending if c.score.lead_id in landed)
        if sending:
            self.on_written(len(landed))
        for failure in result.failed:
            self.on_failure(failure.id, failure.retriable, failure.message)
        both = [*ready, *sending]
        cached = [c.cached for c in both if c.cached is not None]
        truncated_before = self.truncated()
        by_id = {c.score.lead_id: c for c in sending}
        self.record_failures(
            [
                (f.id, u.object_type, dict(u.properties), f.message, f.retriable)
                for f in result.failed
                if (u := by_id[f.id].update if f.id in by_id else None) is not None
            ]
        )
        self.clear_failures(sorted(landed))
        written: dict[str, dict[str, str]] = {}
        for lead_id in landed:
            commit = by_id[lead_id]
            assert commit.update is not None
            modified = result.modified_at.get(lead_id)
            written[lead_id] = written_values(commit.update.properties, modified)
            self.evidence.wrote(modified, commit.previous_modified)
        triggers = [c.trigger for c in both if c.trigger is not None]
        if not self.explicit_triggers:
            # workflows trigger on the written properties: the trigger is delivered with the write
            triggers = [t for t in triggers if t[0] in landed]
        done.new_outcomes = self.commit(
            scores=[c.score for c in both],
            written=written,
            triggers=triggers,
            watermark=None,
            history=[row for c in both for row in c.history],
            outcomes=list(outcomes),
            leads=cached,
        )
        done.values_truncated = self.truncated() - truncated_before
        return done


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def written_values(properties: Mapping[str, str], modified_at: datetime | None) -> dict[str, str]:
    """What was written, plus the record's modification time after the write (under MODIFIED_KEY)."""
    values = dict(properties)
    if modified_at is not None:
        values[MODIFIED_KEY] = iso_utc(modified_at)
    return values


def _second(value: datetime | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return int(value.timestamp() // 1)


@dataclass
class IndexEvidence:
    """leadsync's own writes per second of modification time, and which of them a pass's read saw.

    ``wrote`` counts a landed write in its second and takes the lead's previous write out of that one's (a
    lead written again is no longer expected at its old time): the per-pass deltas, summed over recent runs,
    say how many records should show each second's modification time now. ``saw`` counts, per second, the
    records a window read showed whose last write was in that second (whether or not they changed since:
    a changed one has left its second, it is accounted for). The first second in the window with fewer seen
    than expected is where the index was still lagging when the pass searched: the next pass re-reads from
    there (never from before ``watermark - overlap``, never from after the watermark).
    """

    deltas: Counter[int] = field(default_factory=Counter)
    seen: Counter[int] = field(default_factory=Counter)

    def wrote(self, modified: datetime | None, previous: str | None) -> None:
        second = _second(modified)
        if second is not None:
            self.deltas[second] += 1
        before = _second(previous)
        if before is not None:
            self.deltas[before] -= 1

    def saw(self, last_written: str | None) -> None:
        second = _second(last_written)
        if second is not None:
            self.seen[second] += 1

    def as_summary(self) -> dict[str, int]:
        """The deltas as they go into the run's stored summary (JSON keys are strings)."""
        return {str(s): n for s, n in sorted(self.deltas.items()) if n}

    def indexed_through(self, expected: Mapping[int, int], start: datetime, end: datetime) -> datetime | None:
        """How far the index had caught up when this pass read ``[start, end)`` (None: no evidence).

        ``expected`` is the sum of earlier passes' deltas. A second cut by either bound of the window holds
        writes the window was never meant to show, so it only counts when every write expected in it was
        seen. Up to the first second wholly inside the window whose own writes were not all seen; without
        one, up to the end of the last second that showed all of its own writes.
        """
        low, high = start.timestamp(), end.timestamp()
        seconds = sorted(s for s, n in expected.items() if n > 0 and s + 1 > low and s < high)
        last_seen: int | None = None
        for second in seconds:
            complete = self.seen.get(second, 0) >= expected[second]
            if not complete and second >= low and second + 1 <= high:
                return datetime.fromtimestamp(second, UTC)
            if complete:
                last_seen = second
        if last_seen is None:
            return None
        return min(end, datetime.fromtimestamp(last_seen + 1, UTC))


def expected_writes(summaries: Iterable[Mapping[str, object]], key: str) -> Counter[int]:
    """The per-second own writes of earlier runs (their stored deltas under ``key``), summed."""
    total: Counter[int] = Counter()
    for summary in summaries:
        deltas = summary.get(key)
        if not isinstance(deltas, Mapping):
            continue
        for second, n in deltas.items():
            try:
                total[int(second)] += int(n)
            except (TypeError, ValueError):
                continue
    return total
