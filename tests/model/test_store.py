"""Model versions in the state store (SQLite and PostgreSQL): saved by content, listed, activated one at a time."""

from __future__ import annotations

from sync.state import StateStore


def test_versions_are_saved_by_content_and_one_is_active(store: StateStore) -> None:
    assert store.list_models() == [] and store.active_model() is None
    first = store.save_model(b"model one", {"rows": 100}, "csv")
    assert store.save_model(b"model one", {"rows": 100}, "csv") == first  # same file, same version
    second = store.save_model(b"model two", {"rows": 200}, "store", activate=True)
    assert len(first) == 12 and first != second
    assert [m.version for m in store.list_models()] == [first, second]
    active = store.active_model()
    assert active is not None and active.version == second and active.body == b"model two"
    assert active.card == {"rows": 200} and active.activated_at is not None
    assert store.activate_model(first) and store.active_model_version() == first
    assert [m.active for m in store.list_models()] == [True, False]
    assert not store.activate_model("nope") and store.active_model_version() == first
    assert store.find_model_version(first[:4]) == [first]
    got = store.get_model(second)
    assert got is not None and got.body == b"model two" and not got.active
    assert store.get_model("missing") is None
