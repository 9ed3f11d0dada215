"""One sync pass: pull -> map -> score -> diff -> write back -> trigger.

Records are processed in groups (memory does not grow with the portal). Records read back only because
leadsync wrote them cost nothing more: no activity read, no scoring, no write. The others are gathered across
pages into groups of a full activities read; their changed scores are held across groups until a full write
batch (``sync.passwrites``), and each lead's score, written values and outbox entry are committed in one
transaction after its write. The watermark moves only when the whole window has been processed, and never
past the moment the pass started.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from connectors.base import Connector, OutcomeReader, OutcomeSpec, RawRecord, RecordUpdate, Window
from connectors.errors import BudgetExhausted
from mappings import LeadMapping
from scoring import Activity, CompiledRules, Lead, QualificationState, Score
from sync.companies import CompanyFields
from sync.echoes import echoes, soon_after_write
from sync.passwrites import (
    MODIFIED_KEY,
    Flushed,
    HeldWrites,
    IndexEvidence,
    LeadCommit,
    expected_writes,
    written_values,
)
from sync.prefetch import prefetched
from sync.refusals import MAX_VALUE_CHARS, RecordScreen, tally
from sync.scoring_step import (
    CachedPage,
    LeadValues,
    ScoreValues,
    activities_as_dicts,
    activities_from_dicts,
    cache_batch,
    records_batch,
    score_batch,
)
from sync.scoring_step import qualification as _qualification
from sync.state import CachedLead, HistoryRow, StateStore, StoredOutcome, StoredScore
from sync.state.models import NO_MODEL
from sync.triggers import deliver_triggers
from sync.writeback import WritebackSettings, changed_properties, desired_properties

if TYPE_CHECKING:  # scikit-learn and skops come with it: imported by the pass that loads a model
    from sync.predict import ModelScorer

log = structlog.get_logger("leadsync.sync")

__all__ = ["MODIFIED_KEY", "SyncPipeline", "SyncSummary"]

#: records gathered before one activities read (HubSpot reads associations for 1,000 records a call)
BATCH_SIZE = 1000
#: cached leads read per query when a rules change rescores the cache (one bulk query and batch each)
RESCORE_CHUNK = 5_000
#: updates per write call when the connector does not say (HubSpot batches take 100)
WRITE_BATCH_SIZE = 100
#: run-summary key of a pass's own writes per second of modification time (see ``sync.passwrites``)
WRITES_PER_S_KEY = "own_writes_per_s"
#: a record modified this soon after leadsync's write, with every tracked property as leadsync left it, is
#: the CRM's own echo of that write (calculated properties), not a change
ECHO_WINDOW = timedelta(seconds=60)
#: runs whose per-second writes are summed for the index evidence (older writes are outside any overlap)
EVIDENCE_RUNS = 20

#: called with (event, count): "read", "scored", "written"
Progress = Callable[[str, int], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class PassInterrupted(Exception):
    """Raised by a progress callback or a guarded connector to stop a pass between two commit points.

    The daemon raises subclasses on shutdown and when its job lease is lost. The run is recorded as
    ``stopped``; whatever was committed stays, and the next pass resumes from the same watermark.
    """


#: the headline counters of a pass, in the order people read them (the CLI's table, the demo's totals)
SUMMARY_KEYS: tuple[str, ...] = (
    "leads_read",
    "leads_scored",
    "leads_written",
    "leads_unchanged",
    "write_failures",
    "qualified",
    "newly_qualified",
    "workflows_triggered",
    "api_calls",
    "duration_s",
)


@dataclass
class SyncSummary:
    """What one pass did (``sync --json`` prints it)."""

    crm: str
    full: bool
    dry_run: bool
    rules_version: str
    leads_read: int = 0
    #: leads re-scored from the local cache because the rules changed (no CRM read)
    leads_rescored: int = 0
    #: companies whose mapped values changed in the window, and their cached leads rescored (no lead read)
    companies_changed: int = 0
    company_rescored: int = 0
    leads_scored: int = 0
    leads_written: int = 0
    leads_unchanged: int = 0
    #: records read back only because leadsync wrote them: no activity read, no scoring, no write
    own_writes_read_back: int = 0
    #: records the overlap window read again with nothing changed since leadsync last read them (as free)
    unchanged_read_back: int = 0
    write_failures: int = 0
    qualified: int = 0
    newly_qualified: int = 0
    workflows_triggered: int = 0
    properties_created: list[str] = field(default_factory=list)
    bad_values: int = 0
    #: records skipped because the CRM sent them without a usable id (never scored, never written)
    bad_records: int = 0
    #: records refused on their own (``sync.refusals``: never cached, scored or written; the pass is partial),
    #: by reason, and the first few with the CRM's context (object, id, call, problem)
    records_refused: int = 0
    refused_by_reason: dict[str, int] = field(default_factory=dict)
    refusals: list[dict[str, str]] = field(default_factory=list)
    #: cached values cut to the state store's bound (the CRM's limit for the property, else 64 KiB)
    values_truncated: int = 0
    api_calls: int = 0
    duration_s: float = 0.0
    watermark: str | None = None
    run_id: int | None = None
    grades: dict[str, int] = field(default_factory=lambda: {"hot": 0, "warm": 0, "cold": 0})
    #: leads whose first outcome (conversion) this pass read from the CRM
    outcomes: int = 0
    #: cached leads without an outcome whose window is open, asked again for one (a conversion or a won deal
    #: that did not modify the lead is missed by the incremental read)
    outcomes_rechecked: int = 0
    #: the last lead id the re-check reached; the next pass resumes after it (round robin over the cache)
    outcomes_recheck_cursor: str | None = None
    #: when the cache was last re-checked for outcomes (a pass within ``recheck_interval`` of it asks nothing)
    outcomes_rechecked_at: str | None = None
    #: the rate limit the connector paced at by the end of the pass, and where it came from
    rate_limit: dict[str, Any] | None = None
    #: where this pass's window started (the overlap re-reads from here) and how far the search index had
    #: caught up with leadsync's own writes when it read (the next pass's window starts there)
    window_start: str | None = None
    indexed_through: str | None = None
    #: leads the shadow challenger scored (its scores go to the history, arm "challenger")
    challenger_scored: int = 0
    #: leads whose write carried the challenger's score (``challenger.split``)
    challenger_written: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_rate_limit(info: Mapping[str, Any] | None) -> str:
    """One line on the rate limit a pass ran under and where it came from (``status``)."""
    if not info:
        return "unknown (no pass recorded it yet)"
    parts: list[str] = []
    max_calls, period, source = info.get("max_calls"), info.get("period_s"), info.get("source")
    portal, margin = info.get("portal_max"), info.get("margin")
    if max_calls is None:
        parts.append("no rolling-window cap (the CRM has none)")
    else:
        pace = f"{max_calls} calls per {float(period or 0):g} s"
        if source == "portal":
            less = f" less the {float(margin):g} margin" if margin else ""
            parts.append(f"{pace} (the CRM's X-HubSpot-RateLimit-Max {portal}{less})")
        elif source == "portal+config":
            parts.append(f"{pace} (the configured budget; the CRM allows {portal})")
        else:
            parts.append(f"{pace} (the configured budget or the default; the CRM has not said its limit)")
    if info.get("others"):
        parts.append(f"other apps used {info['others']} of the last window")
    if info.get("daily_limit") is not None:
        where = f" ({info['daily_source']})" if info.get("daily_source") else ""
        parts.append(f"daily: {info.get('daily_remaining')} of {info['daily_limit']} left{where}")
    return "; ".join(parts)


def stored_score(score: Score, now: datetime) -> StoredScore:
    return StoredScore(
        lead_id=score.lead_id,
        total=score.total,
        fit=score.fit,
        engagement=score.engagement,
        penalties=score.penalties,
        grade=score.grade,
        qualified=score.qualified,
        qualified_at=score.qualified_at,
        hits=[
            {"rule": h.rule, "part": h.part, "points": h.points, "value": h.value, "count": h.count} for h in score.hits
        ],
        reasons=score.reasons,
        rules_version=score.rules_version,
        scored_at=now,
        points=score.points,
    )


def history_row(score: Score | ScoreValues, now: datetime, arm: str = "champion") -> HistoryRow:
    """The history row of a score (stored only when it differs from the lead's last one)."""
    return HistoryRow(score.lead_id, now, score.total, score.grade, score.qualified, score.rules_version, arm)


#: the arms of a shadow challenger (``score_history.arm``)
CHAMPION, CHALLENGER = "champion", "challenger"


def challenger_share(lead_id: str) -> float:
    """Where a lead falls in [0, 1): a stable hash of its id (SHA-256, not Python's per-process salted
    ``hash()``), so the same leads get the challenger's score on every pass, in every process and replica."""
    return int.from_bytes(hashlib.sha256(lead_id.encode("utf-8")).digest()[:8], "big") / 2**64


def written_arm(lead_id: str, split: float) -> str:
    """The arm whose score is written to the CRM for this lead (the champion unless the hash falls in ``split``)."""
    return CHALLENGER if split > 0 and challenger_share(lead_id) < split else CHAMPION


@dataclass
class PageArms:
    """One page's scores per arm: what is written (and stored as the current score), and each arm's history."""

    written: list[Score]
    history: list[HistoryRow]
    challenger_ids: frozenset[str] = frozenset()


class SyncPipeline:
    """Runs sync passes of one CRM account against one state store."""

    def __init__(
        self,
        *,
        connector: Connector,
        mapping: LeadMapping,
        rules: CompiledRules,
        store: StateStore,
        writeback: WritebackSettings,
        overlap: timedelta = timedelta(minutes=1),
        settle: timedelta = timedelta(seconds=30),
        explicit_triggers: bool = False,
        clock: Callable[[], datetime] = utcnow,
        progress: Progress | None = None,
        scoring_clock: Callable[[], datetime] | None = None,
        owner: str | None = None,
        outcomes: OutcomeSpec | None = None,
        outcome_window: timedelta | None = None,
        recheck_per_pass: int = 5000,
        recheck_interval: timedelta = timedelta(0),
        challenger: CompiledRules | None = None,
        challenger_split: float = 0.0,
        use_model: bool = True,
        model_exclude: Collection[str] = (),
        read_ahead: int = 2,
        max_value_chars: int = MAX_VALUE_CHARS,
    ) -> None:
        self.connector = connector
        self.mapping = mapping
        self.rules = rules
        self.store = store
        self.writeback = writeback
        self.overlap = overlap
        self.settle = settle
        self.explicit_triggers = explicit_triggers
        self.clock = clock
        self.progress = progress or (lambda event, n: None)
        self.batch_size = BATCH_SIZE
        #: pages the reader thread keeps ahead of scoring and writing (0: read in the pass's own thread)
        self.read_ahead = read_ahead
        #: the "now" scores are computed at (default: the pass start); pinned by tests so that runs made at
        #: different times score alike (decay, qualified_at), while windows still follow the real clock
        self.scoring_clock = scoring_clock
        #: who claims outbox items (shown in the outbox when a delivery was interrupted)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.stream = f"{connector.name}:{mapping.object_type}s"
        #: what counts as converted; None: outcomes are not read
        self.outcomes = outcomes
        #: leads created longer ago than this are not re-checked for an outcome (None: every lead is)
        self.outcome_window = outcome_window
        #: cached leads without an outcome asked again each pass (0: never)
        self.recheck_per_pass = recheck_per_pass
        #: at most one outcome re-check per this long (0: every pass)
        self.recheck_interval = recheck_interval
        #: the shadow challenger's rules (None: none), and the share of leads its score is written for
        self.challenger = challenger
        self.challenger_split = challenger_split
        #: score with the state store's active predictive model (read at each pass start; None: rules alone)
        self.use_model = use_model
        self.model_exclude = model_exclude
        self.model: ModelScorer | None = None
        #: the pass's changed scores waiting for a full write batch (set up at each pass start)
        self._held = self._held_writes(IndexEvidence())
        #: the primary company's fields of each record (``sync.companies``; HubSpot only)
        self.companies = CompanyFields(connector, mapping, store)
        rulesets = [r.rules for r in (rules, challenger) if r is not None]
        enumerations = getattr(connector, "enumerations", None)  # restricted enumerations' options, when it says
        self.screen = RecordScreen(
            connector.name, mapping, rulesets, enumerations=enumerations, max_value_chars=max_value_chars
        )

    def _outcome_reader(self) -> OutcomeReader | None:
        """The connector when it reads outcomes and outcomes are enabled (else None)."""
        if self.outcomes is None or not isinstance(self.connector, OutcomeReader):
            return None
        return self.connector

    def read_properties(self) -> list[str]:
        props = {*self.mapping.properties, *self.writeback.read_properties()}
        if self.writeback.stage_property:
            props.add(self.writeback.stage_property)
        # what a logged activity changes on the record: a read-back showing none of it changed is an echo
        props.update(getattr(self.connector, "activity_markers", None) or ())
        reader = self._outcome_reader()
        if reader is not None and self.outcomes is not None:
            props.update(reader.outcome_properties(self.outcomes))
        return sorted(props)

    @property
    def indexed_stream(self) -> str:
        """The watermark-table key of how far the search index had caught up at the last pass."""
        return f"{self.stream}:indexed"

    def window(self, *, full: bool, now: datetime) -> Window:
        watermark = None if full else self.store.get_watermark(self.stream)
        if watermark is None:
            return Window(start=None, end=now)  # a full read sees everything as of now: no index involved
        # re-read `overlap` before the watermark for changes the index showed late, but no further back than
        # the index can still be lagging: where the last pass saw every one of leadsync's own writes, the
        # index had caught up (leadsync's own write phase is not read again for nothing)
        start = watermark - self.overlap
        indexed = self.store.get_watermark(self.indexed_stream)
        if indexed is not None:
            start = min(watermark, max(start, indexed))
        # changes younger than `settle` may not be searchable yet: they belong to the next window
        return Window(start=start, end=max(watermark, now - self.settle))

    def _write_batch_size(self) -> int:
        size = getattr(self.connector, "write_batch_size", None)
        return size if isinstance(size, int) and size > 0 else WRITE_BATCH_SIZE

    def _held_writes(self, evidence: IndexEvidence) -> HeldWrites:
        def written(n: int) -> None:
            self.progress("written", n)

        def failed(record: str, retriable: bool, message: str) -> None:
            log.warning("write.failed", record=record, retriable=retriable, message=message)

        return HeldWrites(
            write=self.connector.write,
            batch_size=self._write_batch_size(),
            commit=self.store.commit_pass,
            truncated=lambda: self.store.values_truncated,
            record_failures=self.store.record_failures,
            clear_failures=self.store.clear_failures,
            explicit_triggers=self.explicit_triggers,
            on_written=written,
            on_failure=failed,
            evidence=evidence,
        )

    def _flushed(self, summary: SyncSummary, done: Flushed) -> None:
        summary.leads_written += done.written
        summary.write_failures += done.failed
        summary.challenger_written += done.challenger_written
        summary.values_truncated += done.values_truncated
        summary.outcomes += done.new_outcomes

    def _recent_summaries(self) -> list[dict[str, Any]]:
        return [run.summary for run in self.store.last_runs(EVIDENCE_RUNS, job="sync")]

    def run_once(self, *, full: bool = False, dry_run: bool = False) -> SyncSummary:
        """One pass; raises ``ConnectorError`` when the CRM fails for good (the run is recorded as failed)."""
        started = time.monotonic()
        calls_before = self.connector.api_calls
        now = self.clock()
        score_now = self.scoring_clock() if self.scoring_clock is not None else now
        summary = SyncSummary(crm=self.connector.name, full=full, dry_run=dry_run, rules_version=self.rules.version)
        run_id = None if dry_run else self.store.start_run("sync")
        summary.run_id = run_id
        if run_id is not None:
            structlog.contextvars.bind_contextvars(run_id=run_id)  # on every log line of this pass, retries included
        log.info("sync.start", run_id=run_id, full=full, dry_run=dry_run, rules_version=self.rules.version)
        evidence = IndexEvidence()  # before anything can fail: the failed run's summary records it too
        try:
            self._load_model()
            if not dry_run:
                summary.properties_created = self.connector.ensure_properties(self.writeback.property_specs())
            previous_rules = self._previous_rules_version()
            self._held = self._held_writes(evidence)
            if not full and previous_rules is not None and previous_rules != self.rules.version:
                log.info("sync.rules_changed", previous=previous_rules, current=self.rules.version)
                self.rescore_from_cache(score_now, summary, dry_run=dry_run)
            window = self.window(full=full, now=now)
            summary.window_start = window.start.isoformat() if window.start is not None else None
            self.companies.fresh = window.start is None  # a full pass reads every company again
            company_leads = self.companies.refresh(window, persist=not dry_run)
            summary.companies_changed, seen = len(self.companies.changed), set[str]()
            # records leadsync itself wrote cost nothing more; the others are gathered across pages so that
            # activities are read for a full batch of records per call
            batch: list[RawRecord] = []
            reading = prefetched(self.connector.read_records(window, self.read_properties()), depth=self.read_ahead)
            with closing(reading) as pages:  # an error here stops the reader before its next call
                for page in pages:
                    usable = self._usable(page, summary)
                    summary.leads_read += len(usable)
                    self.progress("read", len(usable))
                    # a full pass rescores everything (its own write-backs still reuse their cached activities)
                    fresh = self._changed(usable, summary, evidence) if window.start is not None else usable
                    batch.extend(fresh)
                    if company_leads:  # rescored with the page: not again from the cache
                        seen.update(r.id for r in fresh)
                    while len(batch) >= self.batch_size:
                        self._process_page(batch[: self.batch_size], score_now, summary, dry_run=dry_run)
                        batch = batch[self.batch_size :]
            if batch:
                self._process_page(batch, score_now, summary, dry_run=dry_run)
            # leads whose company changed, and that the pass did not read: rescored from the cache
            for group, acts in self.companies.rescore_pages(company_leads, seen, persist=not dry_run):
                summary.company_rescored += len(group)
                self._process_page(group, score_now, summary, dry_run=dry_run, cached_activities=acts)
            if not dry_run:
                self._flushed(summary, self._held.finish())
                indexed = self._indexed_through(window, evidence)
                summary.indexed_through = indexed.isoformat()
                self.store.set_watermark(self.stream, window.end)
                self.store.set_watermark(self.indexed_stream, indexed)
                summary.watermark = window.end.isoformat()
                self._retry_failed_writes(summary)
                summary.workflows_triggered += deliver_triggers(
                    self.store, self.connector, self.owner, explicit=self.explicit_triggers
                )
                if window.start is not None:  # a full read has just asked every lead already
                    self.recheck_outcomes(now, summary)
                else:
                    summary.outcomes_rechecked_at = now.isoformat()
        except Exception as exc:
            summary.api_calls = self.connector.api_calls - calls_before
            summary.duration_s = round(time.monotonic() - started, 3)
            summary.rate_limit = self._limit_info()
            # the budget guard stops a pass on purpose: committed pages stay, the watermark does not move
            status = "stopped" if isinstance(exc, BudgetExhausted | PassInterrupted) else "failed"
            if run_id is not None:
                stored = {**summary.as_dict(), WRITES_PER_S_KEY: evidence.as_summary()}
                self.store.finish_run(run_id, status, stored, error=str(exc))
            if isinstance(exc, PassInterrupted):
                log.warning("sync.stopped", run_id=run_id, reason=str(exc))
            else:
                log.error("sync.failed", run_id=run_id, error=str(exc), error_type=type(exc).__name__)
            raise
        summary.api_calls = self.connector.api_calls - calls_before
        summary.duration_s = round(time.monotonic() - started, 3)
        summary.rate_limit = self._limit_info()
        if run_id is not None:
            status = "partial" if summary.records_refused else "ok"  # the rest went on; the refused are counted
            self.store.finish_run(run_id, status, {**summary.as_dict(), WRITES_PER_S_KEY: evidence.as_summary()})
        log.info("sync.done", **{k: v for k, v in summary.as_dict().items() if k != "properties_created"})
        return summary

    def process_records(self, pages: Iterable[Sequence[RawRecord]]) -> SyncSummary:
        """A webhook micro-pass (``sync.webhooks``): records read by id take the pass's own steps (own writes
        free, score, diff, held writes committed with their scores, the outbox); no window, no watermark."""
        started, calls_before = time.monotonic(), self.connector.api_calls
        now = self.scoring_clock() if self.scoring_clock is not None else self.clock()
        summary = SyncSummary(crm=self.connector.name, full=False, dry_run=False, rules_version=self.rules.version)
        evidence = IndexEvidence()
        self._held = self._held_writes(evidence)
        self.companies.fresh, self.companies.changed, self.companies.read_in_pass = False, {}, set()
        batch: list[RawRecord] = []
        for page in pages:
            usable = self._usable(page, summary)
            summary.leads_read += len(usable)
            self.progress("read", len(usable))
            batch.extend(self._changed(usable, summary, evidence))
        for start in range(0, len(batch), self.batch_size):
            self._process_page(batch[start : start + self.batch_size], now, summary, dry_run=False)
        self._flushed(summary, self._held.finish())
        summary.workflows_triggered += deliver_triggers(
            self.store, self.connector, self.owner, explicit=self.explicit_triggers
        )
        summary.api_calls = self.connector.api_calls - calls_before
        summary.duration_s = round(time.monotonic() - started, 3)
        return summary

    def _limit_info(self) -> dict[str, Any] | None:
        """The connector's rate limit in force and its source (None: the connector does not say)."""
        info = getattr(self.connector, "limit_info", None)
        return dict(info()) if callable(info) else None

    def _indexed_through(self, window: Window, evidence: IndexEvidence) -> datetime:
        """Where the next pass's window may start: how far the index had caught up with leadsync's own
        writes when this pass read (a full read involves no index: everything before its end was seen).

        Without evidence (a quiet pass) the overlap applies, but never before what an earlier pass proved:
        moving back would re-read, right after a full sync, the write-backs that pass already read."""
        if window.start is None:
            return window.end
        expected = expected_writes(self._recent_summaries(), WRITES_PER_S_KEY)
        indexed = evidence.indexed_through(expected, window.start, window.end)
        if indexed is not None:
            return indexed
        proven = self.store.get_watermark(self.indexed_stream)
        return max(window.end - self.overlap, proven) if proven is not None else window.end - self.overlap

    def _changed(self, page: Sequence[RawRecord], summary: SyncSummary, evidence: IndexEvidence) -> list[RawRecord]:
        """The records of a page that changed other than by leadsync's own write (those are only counted).

        A write moves the record's modification time, so the next pass reads it back; re-reading its
        activities, rescoring and rewriting it would cost calls for nothing (the storm PRODUCT.md warns
        about). See :meth:`_own_writes` for how such a read-back is told from a change.
        """
        written = self.store.get_written([r.id for r in page])
        for record in page:
            evidence.saw(written.get(record.id, {}).get(MODIFIED_KEY))
        own = self._own_writes(page, written)
        summary.own_writes_read_back += len(own)
        same = self._unchanged_since_read([r for r in page if r.id not in own], written)
        summary.unchanged_read_back += len(same)
        return [r for r in page if r.id not in own and r.id not in same]

    def _unchanged_since_read(self, page: Sequence[RawRecord], written: Mapping[str, Mapping[str, str]]) -> set[str]:
        """Records the overlap window read again although nothing changed since leadsync last read them: the
        same modification time as cached (any change, a logged activity included, moves it) and the same
        values. They cost the search page that returned them, no activity read, no scoring."""
        dated = [r for r in page if r.updated_at is not None]
        if not dated:
            return set()
        cached = self.store.get_leads([r.id for r in dated])
        ignore = set(self._cursor_properties())
        return {
            r.id
            for r in dated
            if (c := cached.get(r.id)) is not None
            and c.updated_at is not None
            and c.updated_at == r.updated_at
            and echoes(r, c, written.get(r.id, {}), ignore)
        }

    def _own_writes(self, page: Sequence[RawRecord], written: Mapping[str, Mapping[str, str]]) -> set[str]:
        """Records read back only because leadsync wrote them: nothing about them changed since.

        Its modification time is the one the write returned (or within ``ECHO_WINDOW`` after it, the CRM
        recomputing its own properties, when the connector names its ``activity_markers``), and every tracked
        property is what leadsync last read of it or
        wrote to it. The second test catches a change made between leadsync's read and its write (the write
        then returns a time after that change); logging an activity moves a tracked property too
        (``activity_markers``: HubSpot's last activity date), so a new call or email is never an echo.
        """
        # without activity markers a later modification may be a new activity the record's fields do not show
        # (a Salesforce Task moves the lead's SystemModstamp only): then only the exact write time counts
        window = ECHO_WINDOW if getattr(self.connector, "activity_markers", None) is not None else timedelta(0)
        timely = [r for r in page if soon_after_write(r, written.get(r.id), window)]
        if not timely:
            return set()
        cached = self.store.get_leads([r.id for r in timely])
        ignore = set(self._cursor_properties())
        return {r.id for r in timely if echoes(r, cached.get(r.id), written[r.id], ignore)}

    def _cursor_properties(self) -> Sequence[str]:
        """Properties that move with every change (modification times): never compared."""
        props = getattr(self.connector, "cursor_properties", ())
        return tuple(props) if isinstance(props, tuple | list) else ()

    def _load_model(self) -> None:
        """The active model for this pass (its properties join the writeback); rules alone without one.

        scikit-learn and skops (seconds to import) are imported only when a model is active.
        """
        stored = self.store.active_model() if self.use_model else None
        if stored is None:
            self.model = None
            if self.use_model:
                log.info("model.none", reason=NO_MODEL)
            return
        from sync.predict import ModelScorer

        self.model = ModelScorer.from_stored(stored, self.rules, self.model_exclude)
        if self.model is not None and not self.writeback.model_properties:
            self.writeback = dataclasses.replace(self.writeback, model_properties=True)

    def _usable(self, page: Sequence[RawRecord], summary: SyncSummary) -> list[RawRecord]:
        """The page without the records ``sync.refusals`` refuses (no usable id, an id of another type, an
        oversized value, an unknown option a rule reads): never cached, scored or written, only counted."""
        usable, refused = self.screen.screen(page)
        summary.records_refused += len(refused)
        summary.bad_records += tally(refused, summary.refused_by_reason, summary.refusals)
        return usable

    def _bad_value(self, summary: SyncSummary) -> Callable[[str, str, Any, str], None]:
        def report(record_id: str, prop: str, raw: Any, problem: str) -> None:
            summary.bad_values += 1
            log.warning("crm.bad_value", crm=self.connector.name, record=record_id, property=prop, problem=problem)

        return report

    def _process_page(
        self,
        page: Sequence[RawRecord],
        now: datetime,
        summary: SyncSummary,
        *,
        dry_run: bool,
        cached: CachedPage | None = None,
        cached_activities: Mapping[str, list[Activity]] | None = None,
    ) -> None:
        """Score and diff one group of changed records on the columnar path (``sync.scoring_step``); commit
        what needs no write, hold the changed scores for a full write batch (``sync.passwrites``). The group
        comes from the cache with ``cached`` (a chunk decoded already) or ``cached_activities``."""
        from_cache = cached is not None or cached_activities is not None
        page = page if from_cache else self.companies.enrich(page, persist=not dry_run)
        ids = [r.id for r in page]
        written = self.store.get_written(ids)
        activities: Mapping[str, Sequence[Activity]] = (
            dict(cached_activities or {}) if from_cache else self._activities(page, written, summary)
        )
        outcomes = [] if from_cache or dry_run else self._read_outcomes(page, written)
        on_bad = self._bad_value(summary)
        if cached is None:
            states = {i: _qualification(s) for i, s in self.store.get_scores(ids).items()}
            batch = records_batch(self.mapping, page, activities, states, on_bad)
        else:
            states, batch = cached.states, cached.batch
        scored = score_batch(self.rules, batch, now)
        reasons: list[str] = [""] * len(page)
        if self.model is None and self.challenger is None:  # the columnar path: no Lead, Score on demand
            values: Sequence[ScoreValues | Score] = [scored.values(i) for i in range(len(page))]
            leads: Sequence[LeadValues | Lead] = [scored.lead(i) for i in range(len(page))]
            arms = PageArms([], [history_row(v, now) for v in values])
            full: Callable[[], Sequence[Score]] = scored.scores
        else:  # the model and the challenger read lead and score objects
            lead_objects = [self.mapping.to_lead(r.id, r.properties, object_type=r.object_type) for r in page]
            if cached is not None:
                activities = cached.activity_objects()
            arms = self._score_arms(lead_objects, activities, states, scored.scores(), now, summary)
            scores = arms.written
            if self.model is not None:
                state_list = [states.get(lead.id) for lead in lead_objects]
                scores, reasons = self.model.apply(lead_objects, activities, scores, now, state_list)
                if self.model.second_pass and self.challenger is None:  # the history follows the rescored totals
                    arms = PageArms(scores, [history_row(s, now) for s in scores])
            values, leads, final = scores, lead_objects, scores
            full = lambda: final  # noqa: E731
        summary.leads_scored += len(page)
        self.progress("scored", len(page))
        full_scores: Sequence[Score] = full() if not dry_run else []

        history: dict[str, list[HistoryRow]] = {}
        for row in arms.history:
            history.setdefault(row.lead_id, []).append(row)
        commits: list[LeadCommit] = []
        for i, (record, value, lead, why) in enumerate(zip(page, values, leads, reasons, strict=True)):
            summary.grades[value.grade] = summary.grades.get(value.grade, 0) + 1
            trigger = None
            if value.qualified:
                summary.qualified += 1
                prev = states.get(record.id)
                if value.qualified_at is not None and (prev is None or prev.qualified_at != value.qualified_at):
                    summary.newly_qualified += 1
                    trigger = (record.id, scored.emails[i], value.qualified_at)
            desired = desired_properties(value, lead, self.writeback, why)
            # what leadsync last wrote wins; properties it never wrote (a fresh state store over a CRM that
            # already holds values) fall back to the CRM's own, so they are not rewritten on every pass
            baseline: Mapping[str, str | None] = {k: record.properties.get(k) for k in desired} | (
                written.get(record.id) or {}
            )
            changes = changed_properties(desired, baseline)
            if not changes:
                summary.leads_unchanged += 1
            if dry_run:
                summary.leads_written += bool(changes)
                summary.challenger_written += bool(changes) and record.id in arms.challenger_ids
                continue
            commits.append(
                LeadCommit(
                    score=stored_score(full_scores[i], now),
                    history=history.get(record.id, []),
                    update=RecordUpdate(record.id, lead.object_type, changes) if changes else None,
                    trigger=trigger,
                    cached=None
                    if from_cache
                    else CachedLead(
                        id=record.id,
                        object_type=record.object_type,
                        email=scored.emails[i],
                        properties=dict(record.properties),
                        activities=activities_as_dicts(activities[record.id]),
                        updated_at=record.updated_at,
                    ),
                    challenger=record.id in arms.challenger_ids,
                    previous_modified=(written.get(record.id) or {}).get(MODIFIED_KEY),
                )
            )
        if dry_run:
            return
        self._flushed(summary, self._held.add(commits, outcomes))

    def _score_arms(
        self,
        leads: Sequence[Lead],
        activities: Mapping[str, Sequence[Activity]],
        states: Mapping[str, QualificationState | None],
        champion: Sequence[Score],
        now: datetime,
        summary: SyncSummary,
    ) -> PageArms:
        """Score the page with the shadow challenger too (bulk, like the champion) and pick each lead's
        written score: the champion's, or the challenger's for the leads ``challenger_split`` hashes to it.

        The stored current score is the written one, so each arm's hysteresis state comes from the stored
        score when that arm is written and from the arm's last history row when it is not.
        """
        history = [history_row(s, now) for s in champion]
        if self.challenger is None:
            return PageArms(list(champion), history)
        ids = [lead.id for lead in leads]
        to_challenger = frozenset(i for i in ids if written_arm(i, self.challenger_split) == CHALLENGER)
        shadow = self.store.last_history([i for i in ids if i not in to_challenger], CHALLENGER)
        challenger = self.challenger.score_many(
            (
                (
                    lead,
                    activities[lead.id],
                    states.get(lead.id) if lead.id in to_challenger else _history_qualification(shadow.get(lead.id)),
                )
                for lead in leads
            ),
            now,
        )
        summary.challenger_scored += len(challenger)
        if not to_challenger:
            return PageArms(list(champion), history + [history_row(s, now, CHALLENGER) for s in challenger])
        # the champion of challenger-written leads: rescored with its own state (the stored one is the challenger's)
        moved = [lead for lead in leads if lead.id in to_challenger]
        own = self.store.last_history([lead.id for lead in moved], CHAMPION)
        rescored = {
            s.lead_id: s
            for s in self.rules.score_many(
                ((lead, activities[lead.id], _history_qualification(own.get(lead.id))) for lead in moved), now
            )
        }
        champion = [rescored.get(s.lead_id, s) for s in champion]
        written = [c if c.lead_id in to_challenger else s for s, c in zip(champion, challenger, strict=True)]
        return PageArms(
            written,
            [history_row(s, now) for s in champion] + [history_row(s, now, CHALLENGER) for s in challenger],
            to_challenger,
        )

    def _read_outcomes(
        self, page: Sequence[RawRecord], written: Mapping[str, Mapping[str, str]]
    ) -> list[StoredOutcome]:
        """The page's outcomes as the CRM shows them (none when the connector or the config does not read them).

        Not asked again: records whose outcome is stored already (the earliest one counts, and it is known);
        leadsync's own write-backs never get here.
        """
        reader = self._outcome_reader()
        if reader is None or self.outcomes is None:
            return []
        skip = self._own_writes(page, written) | set(self.store.get_outcomes([r.id for r in page]))
        asked = [r for r in page if r.id not in skip]
        if not asked:
            return []
        found = reader.read_outcomes(asked, self.outcomes)
        return [StoredOutcome(o.record_id, o.converted_at, o.source, dict(o.detail)) for o in found.values()]

    def recheck_outcomes(self, now: datetime, summary: SyncSummary) -> None:
        """Ask the CRM again for the outcome of cached leads that have none yet and whose window is open.

        The incremental read misses outcomes that do not modify the lead: Salesforce reads only unconverted
        leads (a converted one is never read again) and a HubSpot deal closing won does not touch the contact.
        At most ``recheck_per_pass`` leads a pass, resuming after the last one checked (round robin, so the
        lead checked longest ago comes next). Records are built from the cache without the outcome
        properties, so the connector looks each one up by id (Salesforce: one query per 450 leads).
        """
        reader = self._outcome_reader()
        if reader is None or self.outcomes is None or self.recheck_per_pass <= 0:
            return
        previous, last_at = self._previous_recheck()
        if last_at is not None and self.recheck_interval > timedelta(0) and now - last_at < self.recheck_interval:
            # asked recently: outcomes come slowly, and asking costs calls every pass (carry the cursor on)
            summary.outcomes_recheck_cursor, summary.outcomes_rechecked_at = previous, last_at.isoformat()
            return
        summary.outcomes_rechecked_at = now.isoformat()
        spec = self.mapping.fields.get("created_at")
        prop = spec.property if spec is not None else "createdate"
        picked: list[str] = []
        cursor: str | None = None  # None: the cache was gone through to its end
        # from after the previous pass's last lead to the end, then from the start up to it
        for after, until in ((previous, None), (None, previous)) if previous else ((None, None),):
            for page in self.store.iter_lead_values(prop, after=after):
                known = self.store.get_outcomes([lead_id for lead_id, _ in page])
                for lead_id, raw in page:
                    if until is not None and lead_id > until:
                        break
                    if lead_id in known or not self._window_open(lead_id, raw, now):
                        continue
                    picked.append(lead_id)
                    if len(picked) >= self.recheck_per_pass:
                        cursor = lead_id
                        break
                else:
                    continue
                break
            if cursor is not None:
                break
        summary.outcomes_recheck_cursor = cursor
        if not picked:
            return
        hidden = set(reader.outcome_properties(self.outcomes))
        cached = self.store.get_leads(picked)
        records = [
            RawRecord(c.id, c.object_type, {k: v for k, v in c.properties.items() if k not in hidden}, c.updated_at)
            for c in (cached[i] for i in picked if i in cached)
        ]
        found = reader.read_outcomes(records, self.outcomes)
        summary.outcomes_rechecked += len(records)
        summary.outcomes += self.store.upsert_outcomes(
            [StoredOutcome(o.record_id, o.converted_at, o.source, dict(o.detail)) for o in found.values()]
        )

    def _window_open(self, lead_id: str, raw: str | None, now: datetime) -> bool:
        """Whether the lead may still convert within its window (no creation date: it may)."""
        if self.outcome_window is None or raw in (None, ""):
            return True
        created = self.mapping.convert(lead_id, "created_at", raw, None)
        return not isinstance(created, datetime) or created + self.outcome_window > now

    def _previous_recheck(self) -> tuple[str | None, datetime | None]:
        """The last re-check's cursor and time, from the last ok pass (each pass carries them on)."""
        for run in self.store.last_runs(20, job="sync"):
            if run.status in ("ok", "partial"):  # a partial pass went on past the records it refused
                cursor = run.summary.get("outcomes_recheck_cursor")
                at = run.summary.get("outcomes_rechecked_at")
                try:
                    when = datetime.fromisoformat(str(at)) if at else None
                except ValueError:
                    when = None
                return (str(cursor) if cursor else None), when
        return None, None

    def _activities(
        self, page: Sequence[RawRecord], written: Mapping[str, Mapping[str, str]], summary: SyncSummary
    ) -> dict[str, list[Activity]]:
        """Activities of a group of records, one read for all of them (a full batch per call).

        Records unchanged since leadsync's own write are filtered out before (``_changed``); those that
        still match here (a group built by a caller that did not filter) reuse the cached activities.
        """
        untouched = self._own_writes(page, written)
        fresh = [r for r in page if r.id not in untouched]
        raw = self.connector.read_activities(fresh) if fresh else {}
        activities = {
            r.id: [Activity(r.id, a.kind, a.timestamp, a.attributes) for a in raw.get(r.id, [])] for r in fresh
        }
        if untouched:
            cached = self.store.get_leads(sorted(untouched))
            for lead_id in untouched:
                hit = cached.get(lead_id)
                activities[lead_id] = activities_from_dicts(lead_id, hit.activities) if hit else []
            summary.own_writes_read_back += len(untouched)
        return activities

    def _previous_rules_version(self) -> str | None:
        for run in self.store.last_runs(20, job="sync"):
            if run.status in ("ok", "partial") and run.summary.get("rules_version"):
                return str(run.summary["rules_version"])
        return None

    def rescore_from_cache(self, now: datetime, summary: SyncSummary, *, dry_run: bool) -> None:
        """Rescore every cached lead with the current rules and write what changed; reads nothing from the CRM."""
        for chunk in self.store.iter_lead_chunks(chunk_size=RESCORE_CHUNK):
            cached = cache_batch(self.mapping, chunk, self._bad_value(summary))
            page = [RawRecord(*r, None) for r in zip(chunk.ids, chunk.object_types, cached.properties, strict=True)]
            summary.leads_rescored += len(page)
            self._process_page(page, now, summary, dry_run=dry_run, cached=cached)

    def _retry_failed_writes(self, summary: SyncSummary) -> None:
        """Send again the writes that failed for a transient reason in earlier passes."""
        pending = self.store.failed_writes(retriable_only=True)
        if not pending:
            return
        updates = [RecordUpdate(f.lead_id, f.object_type, f.properties) for f in pending]
        result = self.connector.write(updates)
        by_id = {u.id: u for u in updates}
        self.store.record_failures(
            [
                (f.id, by_id[f.id].object_type, dict(by_id[f.id].properties), f.message, f.retriable)
                for f in result.failed
            ]
        )
        self.store.clear_failures(result.succeeded)
        self.store.record_written(
            {i: written_values(by_id[i].properties, result.modified_at.get(i)) for i in result.succeeded}
        )
        for i in result.succeeded:
            self._held.evidence.wrote(result.modified_at.get(i), None)
        summary.leads_written += len(result.succeeded)


def _history_qualification(row: HistoryRow | None) -> QualificationState | None:
    """An unwritten arm's hysteresis state from its last history row (which keeps no ``qualified_at``)."""
    if row is None:
        return None
    return QualificationState(qualified=row.qualified, qualified_at=row.at if row.qualified else None)
