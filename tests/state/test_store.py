"""The checkpoint store: each mutating case is checked on the open store and after reopening,
which is what catches state that only ever lived in memory."""

from __future__ import annotations

import time

import pytest

from shipper.state import FileState, Keys, Store, event_keys


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


HOUR = "2024-03-05T10"


def filed(ids: list[str], bucket: str = HOUR) -> dict[str, Keys]:
    return {bucket: event_keys(ids)}


def found(store: Store, ids: list[str], buckets: tuple[str, ...] = (HOUR,)) -> set[str]:
    """Which of ``ids`` the store says were shipped, looking in ``buckets``."""
    keys = event_keys(ids)
    shipped = store.shipped(keys, set(buckets))
    return {i for i, k in zip(ids, keys, strict=True) if k in shipped}


def test_commit_keeps_positions_ids_and_output_states_together(tmp_path, reopen):
    store = Store(tmp_path)
    store.commit([pos("a", 100)], filed(["id-1"]), {"ndjson:x": {"length": 5}})
    store = reopen(store)
    assert store.files()["a"].offset == 100
    assert found(store, ["id-1", "id-2"]) == {"id-1"}
    assert store.output_states() == {"ndjson:x": {"length": 5}}


def test_ids_are_found_only_under_the_time_they_were_filed_by(tmp_path, reopen):
    store = Store(tmp_path)
    store.commit([], {HOUR: event_keys(["a"]), "2024-03-05T11": event_keys(["b"])}, {})
    store = reopen(store)
    assert found(store, ["a", "b"]) == {"a"}
    assert found(store, ["a", "b"], (HOUR, "2024-03-05T11")) == {"a", "b"}
    assert found(store, ["a", "b"], ("2024-03-06T10",)) == set()


def test_a_later_commit_moves_the_position_forward(tmp_path, reopen):
    store = Store(tmp_path)
    store.commit([pos("a", 100)], {}, {})
    store.commit([pos("a", 250), pos("b", 7)], {}, {})
    store = reopen(store)
    assert {k: s.offset for k, s in store.files().items()} == {"a": 250, "b": 7}


def test_prune_expires_ids_by_when_they_were_shipped_not_event_time(tmp_path, reopen):
    store = Store(tmp_path)
    day = 86400
    now = time.time()
    store.commit([], filed(["old"]), {}, now=now - 100 * day)
    store.commit([], filed(["recent"]), {}, now=now - 1 * day)
    assert store.prune(90 * day, now=now) == 1
    store = reopen(store)
    assert found(store, ["old", "recent"]) == {"recent"}


def test_forgotten_files_lose_their_position_but_ids_stay(tmp_path, reopen):
    store = Store(tmp_path)
    store.commit([pos("a", 1), pos("b", 2)], filed(["x"]), {})
    store.forget_files(["a"])
    store = reopen(store)
    assert set(store.files()) == {"b"}
    assert found(store, ["x"]) == {"x"}


def test_many_ids_are_looked_up_in_one_call(tmp_path):
    store = Store(tmp_path)
    ids = [f"id-{i}" for i in range(30000)]
    store.commit([], filed(ids[::2]), {})
    assert found(store, ids) == set(ids[::2])
    assert store.id_count() == 15000


def test_only_a_full_128_bit_match_is_a_duplicate(tmp_path):
    store = Store(tmp_path)
    store.commit([], {HOUR: Keys.of([(7, 1)])}, {})
    assert store.shipped(Keys.of([(7, 2), (7, 1), (8, 1)]), {HOUR}) == {(7, 1)}
    assert store.shipped(Keys.of([(7, 2)]), {HOUR}) == set()
    many = Keys.of([(7, 2), (7, 1)] + [(100 + i, i) for i in range(200)])  # matched as sets
    assert store.shipped(many, {HOUR}) == {(7, 1)}


def test_keys_sharing_a_hi_half_are_each_found_by_their_whole_key(tmp_path):
    store = Store(tmp_path)
    # two stored keys with one hi: the second must be found too, one by one and as sets
    store.commit([], {HOUR: Keys.of([(7, 1), (7, 2)])}, {})
    assert store.shipped(Keys.of([(7, 2)]), {HOUR}) == {(7, 2)}
    assert store.shipped(Keys.of([(7, 2), (7, 3)]), {HOUR}) == {(7, 2)}
    many = Keys.of([(7, 2), (7, 3)] + [(100 + i, i) for i in range(200)])
    assert store.shipped(many, {HOUR}) == {(7, 2)}


def test_a_key_is_found_only_at_a_whole_key_position_in_the_packed_index(tmp_path):
    store = Store(tmp_path)
    # 0 and 0x11223344 packed side by side (little-endian) hold 0x1122334400000000's bytes
    # at offset 4: a match there is half of one key and half of another
    store.commit([], {HOUR: Keys.of([(0, 5), (0x11223344, 6)])}, {})
    assert store.shipped(Keys.of([(0x1122334400000000, 5)]), {HOUR}) == set()
    assert store.shipped(Keys.of([(0x11223344, 6), (0, 5)]), {HOUR}) == {(0, 5), (0x11223344, 6)}


def test_ids_stay_found_when_many_small_commits_are_merged(tmp_path, reopen, monkeypatch):
    import shipper.state.store as store_mod

    monkeypatch.setattr(store_mod, "COMPACT_AT", 4)
    store = Store(tmp_path)
    ids = [f"id-{i}" for i in range(1000)]
    now = time.time()
    for n, i in enumerate(range(0, 1000, 70)):  # commits of 70: merges happen between some
        store.commit([], filed(ids[i : i + 70]), {}, now=now - 1000 + n)
    rows = store._read.execute("SELECT count(*) FROM id_runs").fetchone()[0]
    assert rows < 4
    store = reopen(store)
    assert found(store, ids) == set(ids)
    assert store.id_count() == 1000
    assert store.prune(0, now=now - 1000 + 5) == 0  # a merged row keeps its newest time
    assert store.prune(0, now=time.time() + 10) == 1000
    assert found(store, ids) == set()


def test_a_checkpoint_from_the_old_id_index_is_refused_clearly(tmp_path):
    import sqlite3

    from shipper.errors import ConfigError

    db = sqlite3.connect(tmp_path / "checkpoint.sqlite")
    db.execute("CREATE TABLE shipped_ids (k1 INTEGER PRIMARY KEY, k2, shipped_at)")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="earlier development version"):
        Store(tmp_path)
