"""Dedupe lookups for decoders, from a snapshot of the id index that they keep a little while.

Looking a chunk's keys up reads every committed key of the buckets (event hours) the chunk
covers. Many small chunks in one busy hour (a folder of tiny files, follow mode on a live log)
would read the same bucket again and again, bigger each time. So a decoder keeps what it read,
tagged with the number of commits made when it asked, and reuses it for chunks handed out up to
``MAX_AGE`` commits later. Every answer says which commit it is valid for (``as_of``); the
pipeline checks the keys of the commits made since itself, as it already does for the commits
a lookup in another process could not see yet.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from shipper.state.keys import EventKey, Keys
from shipper.state.store import Store, match

#: a bucket read this many commits ago is read again
MAX_AGE = 4
#: packed keys kept per decoder (16 bytes a key); the least recently used buckets go first
MAX_BYTES = 1024 * 1024


class SnapshotLookup:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: OrderedDict[str, tuple[int, bytes, bytes]] = OrderedDict()
        self._bytes = 0

    def shipped(self, keys: Keys, buckets: Collection[str], seq: int) -> tuple[set[EventKey], int]:
        """(those of ``keys`` committed under ``buckets``, the commit count that
        answer is valid for), for a chunk handed out when ``seq`` commits had been made."""
        if not len(keys) or not buckets:
            return set(), seq
        cache = self._cache
        stale = [b for b in buckets if b not in cache or seq - cache[b][0] > MAX_AGE]
        if stale:
            fresh = self._store.packed(stale)
            for name in stale:
                self._put(name, seq, *fresh.get(name, (b"", b"")))
        found: set[EventKey] = set()
        as_of = seq
        for name in buckets:
            when, his, los = cache[name]
            cache.move_to_end(name)
            as_of = min(as_of, when)
            found |= match(keys, his, los)
        while self._bytes > MAX_BYTES and len(cache) > len(buckets):
            _, (_, his, los) = cache.popitem(last=False)
            self._bytes -= len(his) + len(los)
        return found, as_of

    def _put(self, name: str, seq: int, his: bytes, los: bytes) -> None:
        old = self._cache.pop(name, None)
        if old is not None:
            self._bytes -= len(old[1]) + len(old[2])
        self._cache[name] = (seq, his, los)
        self._bytes += len(his) + len(los)
