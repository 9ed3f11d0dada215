"""StateStore behaviour; every test runs on SQLite and on PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from sync import state as state_module
from sync.state import CachedLead, StateStore, StoredScore

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=1), "CET")


def lead(i: int | str, email: str | None = None, **props: Any) -> CachedLead:
    lead_id = str(i)
    return CachedLead(
        id=lead_id,
        object_type="contact",
        email=email if email is not None else f"user{lead_id}@acme.com",
        properties={"firstname": f"U{lead_id}", **props},
        activities=[{"kind": "page_view", "timestamp": "2025-03-01T10:00:00Z", "url": "/pricing"}],
        updated_at=T0,
    )


def score(lead_id: str, total: int = 50, *, qualified_at: datetime | None = None) -> StoredScore:
    return StoredScore(
        lead_id=lead_id,
        total=total,
        fit=30,
        engagement=total - 20,
        penalties=-10,
        grade="warm",
        qualified=qualified_at is not None,
        qualified_at=qualified_at,
        hits=[{"rule": "vp_title", "points": 15}, {"rule": "pricing_page", "points": 10, "count": 3}],
        reasons="+15 VP title; +10 pricing page x3; -10 free email",
        rules_version="v1",
        scored_at=T0,
    )


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)


# ---- runs -------------------------------------------------------------------------------------------


def test_runs(store: StateStore) -> None:
    first = store.start_run("sync")
    second = store.start_run("triggers")
    store.finish_run(first, "ok", {"leads_read": 3, "nested": {"a": [1, 2]}})
    store.finish_run(second, "failed", {}, error="boom")
    runs = store.last_runs()
    assert [r.id for r in runs] == [second, first]
    assert runs[0].status == "failed" and runs[0].error == "boom"
    assert runs[1].summary == {"leads_read": 3, "nested": {"a": [1, 2]}}
    assert_utc(runs[1].started_at)
    assert_utc(runs[1].finished_at)
    assert [r.id for r in store.last_runs(limit=1)] == [second]
    assert [r.id for r in store.last_runs(job="sync")] == [first]
    running = store.start_run("sync")
    assert store.last_runs(1)[0].status == "running" and store.last_runs(1)[0].finished_at is None
    with pytest.raises(ValueError):
        store.finish_run(running, "done", {})
    with pytest.raises(KeyError):
        store.finish_run(999_999, "ok", {})


# ---- watermarks -------------------------------------------------------------------------------------


def test_watermark_roundtrip(store: StateStore) -> None:
    assert store.get_watermark("hubspot:contacts") is None
    store.set_watermark("hubspot:contacts", T0)
    assert store.get_watermark("hubspot:contacts") == T0
    later = T0 + timedelta(hours=1)
    store.set_watermark("hubspot:contacts", later)
    store.set_watermark("salesforce:leads", T0)
    assert store.get_watermark("hubspot:contacts") == later
    assert store.watermarks() == {"hubspot:contacts": later, "salesforce:leads": T0}
    store.set_watermark("hubspot:contacts", None)  # None clears
    assert store.get_watermark("hubspot:contacts") is None
    store.set_watermark("hubspot:contacts", None)  # clearing twice is fine
    assert store.watermarks() == {"salesforce:leads": T0}


def test_timezone_aware_roundtrip(store: StateStore) -> None:
    in_cet = datetime(2025, 6, 30, 23, 30, 0, 654321, tzinfo=CET)  # 22:30 UTC, same instant
    store.set_watermark("s", in_cet)
    got = store.get_watermark("s")
    assert got == in_cet
    assert got is not None and got.tzinfo == UTC and got.hour == 22 and got.microsecond == 654321

    store.upsert_leads([CachedLead("1", "contact", None, {}, [], in_cet)])
    cached = store.find_lead("1")
    assert cached is not None and cached.updated_at == in_cet and cached.updated_at.tzinfo == UTC

    store.save_scores([score("1", qualified_at=in_cet)])
    stored = store.get_scores(["1"])["1"]
    assert stored.qualified_at == in_cet and stored.qualified_at.tzinfo == UTC
    assert stored.scored_at == T0 and stored.scored_at.tzinfo == UTC

    store.enqueue_triggers([("1", None, in_cet)])
    item = store.pending_triggers()[0]
    assert item.qualified_at == in_cet and item.qualified_at.tzinfo == UTC
    assert_utc(item.created_at)
    # the same instant in another zone is the same qualification
    assert store.enqueue_triggers([("1", None, in_cet.astimezone(UTC))]) == 0


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.set_watermark("s", datetime(2025, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        store.enqueue_triggers([("1", None, datetime(2025, 1, 1))])  # noqa: DTZ001
    assert store.get_watermark("s") is None
    assert store.outbox_counts()["pending"] == 0


# ---- lead cache -------------------------------------------------------------------------------------


def test_upsert_and_find_leads(store: StateStore) -> None:
    store.upsert_leads([lead(1, "Ann.Lee@Acme.COM"), lead(2), lead(3, email="")])
    assert store.count_leads() == 3
    found = store.find_lead("1")
    assert found == lead(1, "Ann.Lee@Acme.COM")
    assert store.find_lead("ann.lee@acme.com") == found  # email, case-insensitive
    assert store.find_lead("  ANN.LEE@acme.com ") == found
    assert store.find_lead("nobody@acme.com") is None
    assert store.find_lead("") is None

    # upsert replaces the record whole (properties and activities), no duplicate row
    changed = CachedLead("1", "contact", "ann@newco.io", {"jobtitle": "VP"}, [], T0 + timedelta(days=1))
    store.upsert_leads([changed])
    assert store.count_leads() == 3
    assert store.find_lead("1") == changed
    assert store.find_lead("ann.lee@acme.com") is None
    assert store.find_lead("ANN@NEWCO.IO") == changed
    assert store.get_leads(["2", "1", "404", "2"]) == {"2": lead(2), "1": changed}


def test_find_by_email_prefers_the_most_recently_updated(store: StateStore) -> None:
    old = CachedLead("00Q1", "lead", "dup@acme.com", {}, [], T0)
    new = CachedLead("0031", "contact", "DUP@acme.com", {}, [], T0 + timedelta(days=2))
    store.upsert_leads([old, new])
    assert store.find_lead("dup@acme.com") == new


def test_upsert_leads_with_duplicate_ids_in_one_batch_keeps_the_last(store: StateStore) -> None:
    store.upsert_leads([lead(1, a="first"), lead(1, a="second")])
    found = store.find_lead("1")
    assert store.count_leads() == 1 and found is not None and found.properties["a"] == "second"


def test_iter_leads_streams_in_bounded_chunks(store: StateStore) -> None:
    ids = [f"{i:05d}" for i in range(2_345)]
    store.upsert_leads([lead(i) for i in reversed(ids)])
    chunks = list(store.iter_leads(chunk_size=1000))
    assert [len(c) for c in chunks] == [1000, 1000, 345]
    assert [cached.id for c in chunks for cached in c] == ids  # every lead once, ordered by id

    assert [len(c) for c in store.iter_leads(chunk_size=469)] == [469] * 5  # no trailing empty chunk
    assert [len(c) for c in store.iter_leads(chunk_size=5000)] == [2_345]
    with pytest.raises(ValueError):
        next(store.iter_leads(chunk_size=0))


def test_iter_leads_uses_keyset_not_offset_and_is_lazy(store: StateStore) -> None:
    store.upsert_leads([lead(i) for i in range(10, 20)])
    statements: list[str] = []
    offsets: list[Any] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "FROM leads" in statement:
            statements.append(statement.upper())
            if "OFFSET" in statement.upper():  # SQLAlchemy's SQLite dialect always adds "OFFSET ?"
                offsets.append(parameters[-1])

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        iterator = store.iter_leads(chunk_size=4)
        assert [c.id for c in next(iterator)] == ["10", "11", "12", "13"]
        assert len(statements) == 1  # one chunk read so far: nothing else is held in memory
        # writing between chunks works (no transaction is held open) and later keys are still seen
        store.upsert_leads([lead(99)])
        rest = [c.id for chunk in iterator for c in chunk]
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert rest == ["14", "15", "16", "17", "18", "19", "99"]
    assert all("LIMIT" in s for s in statements)
    assert all(offset == 0 for offset in offsets)  # keyset paging: never skips rows by OFFSET
    assert all("LEADS.ID >" in s for s in statements[1:])


def test_empty_cache(store: StateStore) -> None:
    assert store.count_leads() == 0
    assert list(store.iter_leads()) == []
    assert store.find_lead("x") is None
    store.upsert_leads([])


def test_delete_leads(store: StateStore) -> None:
    store.upsert_leads([lead(1), lead(2)])
    store.save_scores([score("1"), score("2")])
    store.record_written({"1": {"leadsync_score": "50"}})
    store.record_failures([("1", "contact", {"leadsync_score": "50"}, "bad", True)])
    store.delete_leads(["1"])
    assert store.count_leads() == 1
    assert store.get_scores(["1", "2"]).keys() == {"2"}
    assert store.get_written(["1"]) == {}
    assert store.failed_writes() == []


# ---- scores and written state -----------------------------------------------------------------------


def test_save_and_get_scores(store: StateStore) -> None:
    assert store.get_scores(["1"]) == {}
    store.save_scores([score("1"), score("2", 80, qualified_at=T0)])
    got = store.get_scores(["1", "2", "3"])
    assert got == {"1": score("1"), "2": score("2", 80, qualified_at=T0)}
    assert got["2"].qualified is True and got["1"].qualified is False
    store.save_scores([score("1", 10)])  # replaces
    assert store.get_scores(["1"])["1"].total == 10
    assert store.get_scores([]) == {}


def test_many_ids_are_chunked(store: StateStore) -> None:
    ids = [str(i) for i in range(1_234)]  # more than one IN (...) chunk
    store.save_scores([score(i) for i in ids])
    store.record_written({i: {"leadsync_score": i} for i in ids})
    assert len(store.get_scores(ids)) == 1_234
    assert store.get_written(ids)["1233"] == {"leadsync_score": "1233"}
    store.record_failures([(i, "contact", {}, "x", True) for i in ids])
    store.clear_failures(ids)
    assert store.failed_writes() == []


def test_record_written_merges_per_lead(store: StateStore) -> None:
    assert store.get_written(["1"]) == {}
    store.record_written({"1": {"leadsync_score": "40", "leadsync_grade": "cold"}, "2": {"leadsync_score": "5"}})
    store.record_written({"1": {"leadsync_score": "55", "leadsync_qualified_at": "2025-03-01T12:00:00Z"}})
    assert store.get_written(["1", "2", "3"]) == {
        "1": {
            "leadsync_score": "55",
            "leadsync_grade": "cold",
            "leadsync_qualified_at": "2025-03-01T12:00:00Z",
        },
        "2": {"leadsync_score": "5"},
    }
    store.record_written({})


# ---- failed writes ----------------------------------------------------------------------------------


def test_failures_increment_attempts_and_clear(store: StateStore) -> None:
    times = iter([T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=9)])
    store._clock = lambda: next(times)
    store.record_failures(
        [
            ("1", "contact", {"leadsync_score": "50"}, "INVALID_EMAIL", False),
            ("2", "contact", {"leadsync_score": "60"}, "timeout", True),
        ]
    )
    store.record_failures([("2", "contact", {"leadsync_score": "61"}, "503 Service Unavailable", True)])
    failures = {f.lead_id: f for f in store.failed_writes()}
    assert failures["1"].attempts == 1 and failures["1"].retriable is False
    assert failures["1"].message == "INVALID_EMAIL"
    second = failures["2"]
    assert second.attempts == 2
    assert second.properties == {"leadsync_score": "61"} and second.message == "503 Service Unavailable"
    assert second.first_failed_at == T0 and second.last_failed_at == T0 + timedelta(minutes=5)
    assert [f.lead_id for f in store.failed_writes(retriable_only=True)] == ["2"]
    assert len(store.failed_writes(limit=1)) == 1
    assert store.failure_counts() == {"retriable": 1, "permanent": 1}

    # the same lead twice in one batch counts twice
    store.record_failures([("3", "lead", {}, "a", True), ("3", "lead", {}, "b", True)])
    third = {f.lead_id: f for f in store.failed_writes()}["3"]
    assert third.attempts == 2 and third.message == "b" and third.object_type == "lead"

    store.clear_failures(["2", "3", "404"])
    assert [f.lead_id for f in store.failed_writes()] == ["1"]
    store.clear_failures([])
    store.record_failures([])


# ---- workflow-trigger outbox ------------------------------------------------------------------------


def test_outbox_dedup_per_qualification(store: StateStore) -> None:
    assert store.outbox_counts() == {"pending": 0, "done": 0, "failed": 0}
    assert store.enqueue_triggers([("1", "a@acme.com", T0), ("2", None, T0)]) == 2
    assert store.enqueue_triggers([("1", "a@acme.com", T0)]) == 0  # enqueued twice: still one item
    assert store.enqueue_triggers([("3", None, T0), ("3", None, T0)]) == 1  # duplicate within a batch
    pending = store.pending_triggers()
    assert [(p.lead_id, p.email, p.qualified_at, p.status, p.attempts) for p in pending] == [
        ("1", "a@acme.com", T0, "pending", 0),
        ("2", None, T0, "pending", 0),
        ("3", None, T0, "pending", 0),
    ]
    store.mark_triggered(pending[0].id)
    assert store.enqueue_triggers([("1", "a@acme.com", T0)]) == 0  # done items also dedupe
    # a new qualification (un-qualified, qualified again later) enqueues again
    assert store.enqueue_triggers([("1", "a@acme.com", T0 + timedelta(days=30))]) == 1
    assert store.outbox_counts() == {"pending": 3, "done": 1, "failed": 0}
    assert store.enqueue_triggers([]) == 0


def test_outbox_lifecycle(store: StateStore) -> None:
    store._clock = lambda: T0 + timedelta(minutes=1)
    store.enqueue_triggers([(str(i), None, T0) for i in range(5)])
    items = store.pending_triggers(limit=3)
    assert [i.lead_id for i in items] == ["0", "1", "2"]  # oldest first, limited

    store.mark_triggered(items[0].id)
    store.mark_trigger_failed(items[1].id, "429 Too Many Requests", final=False)
    store.mark_trigger_failed(items[2].id, "404 workflow not found", final=True)

    by_lead = {i.lead_id: i for i in store.outbox_items(limit=10)}
    assert by_lead["0"].status == "done" and by_lead["0"].done_at == T0 + timedelta(minutes=1)
    assert by_lead["1"].status == "pending" and by_lead["1"].attempts == 1
    assert by_lead["1"].last_error == "429 Too Many Requests"
    assert by_lead["2"].status == "failed" and by_lead["2"].last_error == "404 workflow not found"
    assert [i.lead_id for i in store.pending_triggers()] == ["1", "3", "4"]
    assert store.outbox_counts() == {"pending": 3, "done": 1, "failed": 1}
    assert [i.lead_id for i in store.outbox_items(status="failed")] == ["2"]
    with pytest.raises(KeyError):
        store.mark_triggered(999_999)
    with pytest.raises(KeyError):
        store.mark_trigger_failed(999_999, "x", final=True)


def test_settling_marks_every_pending_item_done_in_one_statement(store: StateStore) -> None:
    """A CRM whose automation reacts to the written properties has no call to make: nothing is claimed."""
    store._clock = lambda: T0 + timedelta(minutes=2)
    store.enqueue_triggers([(str(i), None, T0) for i in range(4)])
    store.mark_trigger_failed(store.pending_triggers(limit=1)[0].id, "404 workflow not found", final=True)
    assert store.settle_pending_triggers() == 3
    assert store.settle_pending_triggers() == 0  # nothing pending any more
    items = {i.lead_id: i for i in store.outbox_items(limit=10)}
    assert items["0"].status == "failed"  # a failed item is not swept up with the pending ones
    assert [(items[k].status, items[k].claimed_by, items[k].attempts) for k in ("1", "2", "3")] == [
        ("done", None, 1)
    ] * 3
    assert items["1"].done_at == T0 + timedelta(minutes=2)


# ---- a pass's commit point --------------------------------------------------------------------------


def test_commit_pass(store: StateStore) -> None:
    store.record_written({"1": {"leadsync_grade": "cold"}})
    store.commit_pass(
        scores=[score("1", 90, qualified_at=T0), score("2")],
        written={"1": {"leadsync_score": "90"}, "2": {"leadsync_score": "50"}},
        triggers=[("1", "a@acme.com", T0)],
        watermark=("hubspot:contacts", T0),
    )
    assert store.get_scores(["1", "2"]).keys() == {"1", "2"}
    assert store.get_written(["1"]) == {"1": {"leadsync_grade": "cold", "leadsync_score": "90"}}
    assert [p.lead_id for p in store.pending_triggers()] == ["1"]
    assert store.get_watermark("hubspot:contacts") == T0
    store.commit_pass(scores=[], written={}, triggers=[], watermark=None)  # an empty pass is fine


def _assert_nothing_written(store: StateStore) -> None:
    assert store.get_scores(["1", "2"]) == {}
    assert store.get_written(["1", "2"]) == {"2": {"leadsync_grade": "before"}}
    assert store.outbox_counts() == {"pending": 0, "done": 0, "failed": 0}
    assert store.get_watermark("hubspot:contacts") == T0


def test_commit_pass_is_atomic_on_a_database_error(store: StateStore) -> None:
    store.set_watermark("hubspot:contacts", T0)
    store.record_written({"2": {"leadsync_grade": "before"}})
    bad_trigger: Any = (None, None, T0)  # lead_id NOT NULL: the database refuses the third step
    with pytest.raises(IntegrityError):
        store.commit_pass(
            scores=[score("1"), score("2")],
            written={"1": {"leadsync_score": "50"}, "2": {"leadsync_score": "50"}},
            triggers=[("1", None, T0), bad_trigger],
            watermark=("hubspot:contacts", T0 + timedelta(hours=1)),
        )
    _assert_nothing_written(store)


def test_commit_pass_is_atomic_when_the_last_step_fails(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.set_watermark("hubspot:contacts", T0)
    store.record_written({"2": {"leadsync_grade": "before"}})
    executed: list[str] = []
    original = StateStore._enqueue_triggers

    def spy(self: StateStore, conn: Any, items: Any) -> int:
        executed.append("triggers")
        return original(self, conn, items)

    def crash(*_args: Any) -> None:
        raise RuntimeError("crash while moving the watermark")

    monkeypatch.setattr(StateStore, "_enqueue_triggers", spy)
    monkeypatch.setattr(StateStore, "_set_watermark", crash)
    with pytest.raises(RuntimeError, match="crash"):
        store.commit_pass(
            scores=[score("1", qualified_at=T0)],
            written={"1": {"leadsync_score": "50"}},
            triggers=[("1", None, T0)],
            watermark=("hubspot:contacts", T0 + timedelta(hours=1)),
        )
    assert executed == ["triggers"]  # the earlier steps did run, inside the transaction
    _assert_nothing_written(store)


def test_multi_row_writes_are_all_or_nothing(store: StateStore) -> None:
    bad: Any = CachedLead("2", None, None, {}, [], None)  # type: ignore[arg-type]  # object_type NOT NULL
    with pytest.raises(IntegrityError):
        store.upsert_leads([lead(1), bad, lead(3)])
    assert store.count_leads() == 0


# ---- leases -----------------------------------------------------------------------------------------


def test_leases(store: StateStore) -> None:
    now = [T0]
    store._clock = lambda: now[0]
    ttl = timedelta(seconds=30)
    assert store.acquire_lease("sync", "replica-a", ttl)
    assert not store.acquire_lease("sync", "replica-b", ttl)  # held
    assert store.acquire_lease("sync", "replica-a", ttl)  # renewal
    assert store.lease_holder("sync") == ("replica-a", T0 + ttl)
    assert store.acquire_lease("triggers", "replica-b", ttl)  # another job, another lease
    now[0] = T0 + ttl  # expired
    assert store.lease_holder("sync") is None
    assert store.acquire_lease("sync", "replica-b", ttl)
    assert not store.acquire_lease("sync", "replica-a", ttl)
    store.release_lease("sync", "replica-a")  # not the holder: no-op
    assert store.lease_holder("sync") == ("replica-b", T0 + 2 * ttl)
    store.release_lease("sync", "replica-b")
    assert store.acquire_lease("sync", "replica-a", ttl)


def test_one_lease_winner_among_concurrent_replicas(store_url: str) -> None:
    replicas = [StateStore.open(store_url) for _ in range(4)]
    barrier = threading.Barrier(len(replicas))
    won: list[str] = []

    def contend(name: str, s: StateStore) -> None:
        barrier.wait()
        if s.acquire_lease("sync", name, timedelta(minutes=1)):
            won.append(name)

    threads = [threading.Thread(target=contend, args=(f"r{i}", s)) for i, s in enumerate(replicas)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        for s in replicas:
            s.close()
    assert len(won) == 1


# ---- concurrency ------------------------------------------------------------------------------------


def test_concurrent_writers_wait_instead_of_failing(store: StateStore) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for k in range(10):
                store.record_written({f"{n}-{k}": {"leadsync_score": str(k)}})
                store.record_failures([("shared", "contact", {}, f"{n}-{k}", True)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert store.failed_writes()[0].attempts == 40  # no lost increment
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(state_module.t_written)).scalar_one() == 40


def test_json_columns_roundtrip(store: StateStore) -> None:
    properties = {"firstname": "Zoë 山田", "odd": "nul\x00byte", "n": 3, "nested": {"list": [1, None, True]}}
    activities: list[dict[str, Any]] = [{"kind": "meeting", "timestamp": T0, "attendees": ["a", "b"]}]
    store.upsert_leads([CachedLead("1", "contact", None, properties, activities, None)])
    found = store.find_lead("1")
    assert found is not None and found.properties == properties
    # datetimes nested in JSON are stored as ISO-8601 strings
    assert found.activities == [{"kind": "meeting", "timestamp": T0.isoformat(), "attendees": ["a", "b"]}]
