"""The checkpoint store: each mutating case is checked on the open store and after reopening,
which is what catches state that only ever lived in memory."""

from __future__ import annotations

import time

import pytest

from shipper.state import FileState, Store, event_key


def pos(key: str, offset: int) -> FileState:
    return FileState(key, f"/logs/{key}", "w3c_rms", offset, "{}", 10, "h", offset, 1)


@pytest.fixture(params=["open", "reopened"])
def reopen(request, tmp_path):
    """Returns a function giving the store to check: the same one, or a fresh connection."""

    def get(store: Store) -> Store:
        if request.param == "open":
            return store
        store.close()
        return Store(tmp_path)

    return get


def test_commit_keeps_positions_ids_and_output_states_together(tmp_path, reopen):
    store = Store(tmp_path)
    store.commit([pos("a", 100)], [event_key("id-1")], {"ndjson:x": {"length": 5}})
    store = reopen(store)
    assert store.files()["a"].offset == 100
    assert store.shipped([event_key("id-1"), event_key("id-2")]) == {event_key("id-1")}
    assert store.output_states() == {"ndjson:x": {"length": 5}}


def test_a_later_commit_moves_the_position_forward(tmp_path, reopen):
    store = Store(tmp_path)
    store.commit([pos("a", 100)], [], {})
    store.commit([pos("a", 250), pos("b", 7)], [], {})
    store = reopen(store)
    assert {k: s.offset for k, s in store.files().items()} == {"a": 250, "b": 7}


def test_prune_expires_ids_by_when_they_were_shipped_not_event_time(tmp_path, reopen):
    store = Store(tmp_path)
    day = 86400
    now = time.time()
    store.commit([], [event_key("old")], {}, now=now - 100 * day)
    store.commit([], [event_key("recent")], {}, now=now - 1 * day)
    assert store.prune(90 * day, now=now) == 1
    store = reopen(store)
    assert store.shipped([event_key("old"), event_key("recent")]) == {event_key("recent")}


def test_forgotten_files_lose_their_position_but_ids_stay(tmp_path, reopen):
    store = Store(tmp_path)
    store.commit([pos("a", 1), pos("b", 2)], [event_key("x")], {})
    store.forget_files(["a"])
    store = reopen(store)
    assert set(store.files()) == {"b"}
    assert store.shipped([event_key("x")]) == {event_key("x")}


def test_many_ids_are_looked_up_in_one_call(tmp_path):
    store = Store(tmp_path)
    ids = [event_key(f"id-{i}") for i in range(30000)]
    store.commit([], ids[::2], {})
    assert store.shipped(ids) == set(ids[::2])
    assert store.id_count() == 15000


def test_ids_stay_found_across_merges_into_the_main_index(tmp_path, reopen, monkeypatch):
    import shipper.state.store as store_mod

    monkeypatch.setattr(store_mod, "MERGE_AT", 100)
    store = Store(tmp_path)
    ids = [event_key(f"id-{i}") for i in range(1000)]
    for i in range(0, 1000, 70):  # commits of 70: merges happen between some of them
        store.commit([], ids[i : i + 70], {})
    store = reopen(store)
    assert store.shipped(ids) == set(ids)
    assert store.id_count() == 1000
    assert store.prune(0, now=time.time() + 10) == 1000
    assert store.shipped(ids) == set()
