"""Job leases on both backends: one holder, takeover after expiry, and a holder that cannot renew stops writing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import RecordUpdate, Window, WriteResult
from sync.daemon import GuardedConnector
from sync.lease import LeaseKeeper, LeaseLost
from sync.state import StateStore

NAME = "sync:hubspot:contacts"


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    s = StateStore.open(store_url)
    try:
        yield s
    finally:
        s.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_holder_at_a_time_and_takeover_after_expiry(store: StateStore) -> None:
    events: list[str] = []
    a = LeaseKeeper(store, NAME, "a", 1.0, on_acquired=lambda: events.append("a+"), on_lost=lambda: events.append("a-"))
    b = LeaseKeeper(store, NAME, "b", 1.0, on_acquired=lambda: events.append("b+"))
    a.tick()
    b.tick()
    assert a.held() and not b.held()
    a.check()
    with pytest.raises(LeaseLost):
        b.check()
    a.tick()  # a renewal is not a new acquisition
    assert events == ["a+"]

    time.sleep(1.1)  # a stops renewing (stalled or dead): its lease runs out
    assert not a.held()  # a no longer counts on it, even before anyone else takes it
    b.tick()
    assert b.held() and store.lease_holder(NAME) is not None
    a.tick()  # a comes back: the lease is b's now
    assert not a.held() and events == ["a+", "b+", "a-"]
    with pytest.raises(LeaseLost):
        a.check()


def test_release_lets_a_standby_take_over_at_once(store: StateStore) -> None:
    a = LeaseKeeper(store, NAME, "a", 30.0)
    b = LeaseKeeper(store, NAME, "b", 30.0)
    a.start()
    b.start()
    try:
        assert a.held() and not b.held()
        a.stop(release=True)
        deadline = time.monotonic() + 5
        while not b.held() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.held()  # well before the 30 s ttl
    finally:
        a.stop()
        b.stop()


def test_a_holder_that_cannot_renew_stops_writing_before_its_lease_can_expire(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    keeper = LeaseKeeper(store, NAME, "a", 8.0, clock=clock)
    keeper.tick()
    assert keeper.held()

    def unreachable(*_args: Any, **_kwargs: Any) -> bool:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(store, "acquire_lease", unreachable)
    clock.now += 5.0  # renewals keep failing
    keeper.tick()
    assert keeper.held()  # 3 s of the lease left, above the 2 s margin
    clock.now += 1.5
    keeper.tick()
    assert not keeper.held()  # 1.5 s left: not enough to start a write that must end before expiry
    with pytest.raises(LeaseLost):
        keeper.check()


class FakeConnector:
    name = "fake"
    api_calls = 0

    def __init__(self) -> None:
        self.writes: list[list[RecordUpdate]] = []

    def read_records(self, window: Window, properties: Any) -> Iterator[list[Any]]:
        yield []

    def read_activities(self, records: Any) -> dict[str, list[Any]]:
        return {}

    def write(self, updates: Any) -> WriteResult:
        self.writes.append(list(updates))
        return WriteResult(succeeded=[u.id for u in updates])

    def trigger(self, record_id: str, email: str | None) -> None:
        raise AssertionError("not reached")

    def ensure_properties(self, specs: Any) -> list[str]:
        return []

    def describe(self) -> dict[str, str]:
        return {}


def test_guarded_connector_refuses_writes_but_not_reads() -> None:
    inner = FakeConnector()
    allowed = {"write": True}

    def guard() -> None:
        if not allowed["write"]:
            raise LeaseLost(NAME)

    guarded = GuardedConnector(inner, guard)  # type: ignore[arg-type]
    guarded.write([RecordUpdate("1", "contact", {"leadsync_score": "5"})])
    allowed["write"] = False
    with pytest.raises(LeaseLost):
        guarded.write([RecordUpdate("2", "contact", {"leadsync_score": "6"})])
    with pytest.raises(LeaseLost):
        guarded.trigger("2", None)
    with pytest.raises(LeaseLost):
        guarded.ensure_properties([])
    assert list(guarded.read_records(Window(None, datetime.now(UTC)), [])) == [[]]
    assert guarded.trigger_delivered("1", None) is None  # the fake cannot tell
    assert [u.id for batch in inner.writes for u in batch] == ["1"]
