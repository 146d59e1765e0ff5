"""Dedupe keys: event ids as 128-bit values, one chunk of ids at a time, filed by event time.

An id that already is a 128-bit random value (RMS row ids and correlation ids are GUIDs,
Windows event ids are 32 hex digits) is used as it is, case-insensitively; anything else is
hashed with BLAKE2b. Both are uniformly spread, which is all the index needs. A key is kept as
two signed 64-bit integers, ``hi`` and ``lo``, because that is what SQLite stores natively.

Converting ids one by one (``int(hex, 16)``, split, sign) costs about a microsecond each in
Python, a tenth of the whole per-event budget. ``event_keys`` converts a chunk's worth in a few
C-level bytes operations instead: check the shape of all the ids at once with
``bytes.translate``, then ``unhexlify`` them into one buffer read as an array of int64.

Keys are filed under their event's time (``bucket``): the same event, downloaded again in
another file, carries the same time, so a key can only have been shipped before under its own
bucket. Looking up a chunk's keys then reads the keys of the few hours it covers, and a backfill
of hours never shipped reads nothing at all. Where a format's times may differ between two
exports of the same event (a local time read with another time zone), keys are filed by day
and looked up in the day before and after as well (``exact=False``).
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from binascii import unhexlify
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta
from itertools import groupby

EventKey = tuple[int, int]

_HALF = 1 << 64
_SIGN = 1 << 63

# every byte maps to "?", except hex digits to "x" and "-" to itself
_SHAPE = bytearray(b"?" * 256)
for _c in b"0123456789abcdefABCDEF":
    _SHAPE[_c] = ord("x")
_SHAPE[ord("-")] = ord("-")
_SHAPE_TABLE = bytes(_SHAPE)
_GUID = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
_HEX32 = b"x" * 32


def event_key(event_id: str) -> EventKey:
    """The dedupe key of one event id (``event_keys`` gives the same for many at once)."""
    h = event_id.replace("-", "")
    if len(h) == 32:
        try:
            v = int(h, 16)
        except ValueError:
            pass
        else:
            hi, lo = v >> 64, v & (_HALF - 1)
            return (hi - _HALF if hi >= _SIGN else hi), (lo - _HALF if lo >= _SIGN else lo)
    d = hashlib.blake2b(event_id.encode("utf-8"), digest_size=16).digest()
    return int.from_bytes(d[:8], "big", signed=True), int.from_bytes(d[8:], "big", signed=True)


class Keys:
    """The keys of a run of events, ``hi[i]``/``lo[i]`` belonging to the i-th event.

    Two ``array('q')`` rather than a list of tuples: they cross process boundaries as two
    buffers, not as thousands of objects.
    """

    __slots__ = ("hi", "lo")

    def __init__(self, hi: array[int] | None = None, lo: array[int] | None = None) -> None:
        self.hi: array[int] = array("q") if hi is None else hi
        self.lo: array[int] = array("q") if lo is None else lo

    def __len__(self) -> int:
        return len(self.hi)

    def __iter__(self) -> Iterator[EventKey]:
        return zip(self.hi, self.lo, strict=True)

    @classmethod
    def of(cls, pairs: Iterable[EventKey]) -> Keys:
        keys = cls()
        for hi, lo in pairs:
            keys.hi.append(hi)
            keys.lo.append(lo)
        return keys


def event_keys(ids: Sequence[str]) -> Keys:
    """The dedupe keys of ``ids``, equal to ``event_key`` of each."""
    n = len(ids)
    if n:
        joined = "".join(ids)
        if joined.isascii():
            raw = joined.encode("ascii")
            shape = raw.translate(_SHAPE_TABLE)
            hexes = None
            if len(raw) == 36 * n and shape == _GUID * n:
                hexes = raw.replace(b"-", b"")
            elif len(raw) == 32 * n and shape == _HEX32 * n:
                hexes = raw
            if hexes is not None:
                both = array("q")
                both.frombytes(unhexlify(hexes))
                if sys.byteorder == "little":
                    both.byteswap()  # the hex is big-endian
                return Keys(both[0::2], both[1::2])
    return Keys.of(event_key(i) for i in ids)


def bucket(timestamp: str, exact: bool) -> str:
    """The bucket a key is filed under: its event's UTC hour, or day when not ``exact``."""
    return timestamp[:13] if exact else timestamp[:10]


def by_bucket(keys: Keys, timestamps: Sequence[str], exact: bool) -> dict[str, Keys]:
    """``keys`` grouped by the bucket of the matching ``timestamps`` (ISO 8601 UTC)."""
    width = 13 if exact else 10
    names = [t[:width] for t in timestamps]
    if not names:
        return {}
    if names[0] == names[-1] and names.count(names[0]) == len(names):
        return {names[0]: keys}
    groups: dict[str, Keys] = {}
    start = 0
    for name, run in groupby(names):  # records mostly come in time order: few, long runs
        end = start + len(list(run))
        group = groups.get(name)
        if group is None:
            groups[name] = Keys(keys.hi[start:end], keys.lo[start:end])
        else:
            group.hi.extend(keys.hi[start:end])
            group.lo.extend(keys.lo[start:end])
        start = end
    return groups


def search_buckets(buckets: Iterable[str], exact: bool) -> set[str]:
    """Where keys filed under ``buckets`` may have been filed before (see the module doc)."""
    found = set(buckets)
    if exact:
        return found
    for name in list(found):
        try:
            day = date.fromisoformat(name)
        except ValueError:
            continue
        found.add((day - timedelta(days=1)).isoformat())
        found.add((day + timedelta(days=1)).isoformat())
    return found
