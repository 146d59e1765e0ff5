"""Decoders' snapshot lookups: reused for a few commits, and always honest about their age."""

from __future__ import annotations

from shipper.state import Store, event_keys
from shipper.state.lookup import MAX_AGE, SnapshotLookup

HOUR = "2024-03-05T10"


def test_a_snapshot_is_reused_for_a_while_and_says_how_old_it_is(tmp_path):
    store = Store(tmp_path)
    a, b = event_keys(["a"]), event_keys(["b"])
    both = event_keys(["a", "b"])
    store.commit([], {HOUR: a}, {})
    lookup = SnapshotLookup(Store(tmp_path, readonly=True))
    assert lookup.shipped(both, {HOUR}, seq=1) == (set(a), 1)
    store.commit([], {HOUR: b}, {})  # commit 2: not in the snapshot
    assert lookup.shipped(both, {HOUR}, seq=2) == (set(a), 1)  # the caller checks commit 2
    fresh = 1 + MAX_AGE + 1
    assert lookup.shipped(both, {HOUR}, seq=fresh) == (set(a) | set(b), fresh)


def test_an_hour_never_shipped_answers_nothing_at_once(tmp_path):
    Store(tmp_path).commit([], {HOUR: event_keys(["a"])}, {})
    lookup = SnapshotLookup(Store(tmp_path, readonly=True))
    assert lookup.shipped(event_keys(["a"]), {"2024-03-05T11"}, seq=3) == (set(), 3)
