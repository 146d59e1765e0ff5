"""Events -> Forward protocol v1 messages (PackedForward, Forward, CompressedPackedForward). No I/O.

Each NDJSON document is decoded back into nested maps (the ECS event as a Fluentd filter sees
it) and packed as an entry ``[EventTime, record]``; entries of one tag are grouped into chunks of
at most ``max_events`` events / ``max_bytes`` encoded bytes, and each chunk becomes one message
``[tag, entries, options]`` whose options carry ``size`` (events in it) and, when acks are
wanted, ``chunk`` (a unique id the receiver echoes back as ``{"ack": id}``).

The tag is ``<prefix>.<event.dataset>`` and the time the event's own ``@timestamp`` with its
nanoseconds, both read from the document itself, so the pipeline need not carry them beside
the documents. EventTime is msgpack ext type 0 with 32-bit big-endian seconds and nanoseconds.

Entries are encoded one after the other, so the entries of a chunk, as they lie in the runs
they came in, are the PackedForward blob as it is; for Forward mode the same bytes become an
array by putting msgpack's array header in front, rather than decoding and re-encoding them. A
chunk is kept as those slices with the message's head and options around them (msgpack's
headers for the array, the bin and the entries, three forms each, written by hand in
``_bin_header``/``_array_header``: msgspec packs whole objects only, so it would need the
entries copied into one buffer first).

msgspec does the JSON decoding and msgpack encoding: measured on an RMS usage event of 1.4 kB,
decoding and packing it takes about 7 us with msgspec, 11 with orjson + msgpack (whose packer
alone takes twice msgspec's time), and this loop is the output's whole cost per event. So
events whose normaliser can pack them itself come packed (``Decoded.msgpack``: the RMS
normaliser packs each piece of an event once per distinct value, as it makes the JSON of it
once) and only get their entry's header and time here (``packed_entries``): 74,000 instructions
per event for decoding and packing, against 31,000 for the normaliser's packing.
"""

from __future__ import annotations

import base64
import bisect
import calendar
import datetime
import gzip
import os
import re
import struct
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from shipper.outputs.base import Wire

if TYPE_CHECKING:
    from shipper.sources.base import Decoded

__all__ = ["Chunk", "ForwardEncoder", "WireEncoder", "event_time", "new_chunk_id"]

EVENT_TIME = 0  # the Forward protocol's ext type code for EventTime
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9})\d*)?"
    r"(Z|[+-]\d\d:?\d\d)?$"
)
_PAIR = struct.Struct(">II")
_CACHE_MAX = 65536

Mode = Literal["packed_forward", "forward", "compressed_packed_forward"]


def event_time(timestamp: str) -> msgspec.msgpack.Ext | None:
    """ISO 8601 (``2024-03-04T09:00:01.123Z``, an offset, up to 9 fraction digits) -> EventTime;
    None when it is not such a time or lies outside what 32 unsigned bits of seconds hold."""
    pair = _parse(timestamp)
    return None if pair is None else msgspec.msgpack.Ext(EVENT_TIME, _PAIR.pack(*pair))


def _parse(timestamp: str) -> tuple[int, int] | None:
    m = _ISO.match(timestamp) if isinstance(timestamp, str) else None
    if m is None:
        return None
    y, mo, d, h, mi, s, _, zone = (int(g) if g and g.isdigit() else g for g in m.groups())
    try:
        datetime.datetime(y, mo, d, h, mi, min(s, 59))  # a real date and time (leap second ok)
    except ValueError:
        return None
    seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    nanos = int((m.group(7) or "0").ljust(9, "0"))
    if not 0 <= seconds < 2**32:
        return None
    return seconds, nanos


def _now() -> msgspec.msgpack.Ext:
    ns = time.time_ns()
    return msgspec.msgpack.Ext(EVENT_TIME, _PAIR.pack(ns // 10**9, ns % 10**9))


def new_chunk_id() -> str:
    """128 random bits, base64: unique enough that a receiver can tell a resend by it."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


@dataclass(slots=True)
class Chunk:
    """One message as written on the wire; kept until acknowledged, and resent unchanged.

    The message is held in ``parts`` (its head, slices of the runs its entries came in, its
    options), which the connection writes with one ``sendmsg``: the entries are not copied
    into a buffer of the chunk's own and again into a packed message (two copies of every
    byte sent, most of the sending process's own work, with a fresh 4 MiB buffer per chunk)."""

    tag: str
    parts: tuple[bytes | memoryview, ...]
    size: int  # events
    chunk_id: str | None  # None without acks
    acked: bool = False
    sends: int = 0  # times written to a connection
    sent_at: float = 0.0

    @property
    def message(self) -> bytes:
        """The message as one ``bytes`` (for TLS, and for reading it back)."""
        return b"".join(self.parts)


class _Open:
    """A chunk being filled: slices of the runs its entries are in, adjacent ones merged (no
    object per entry, so the heap does not fill with a chunk's worth of small blocks)."""

    __slots__ = ("count", "nbytes", "parts", "_data", "_start", "_stop")

    def __init__(self) -> None:
        self.parts: list[memoryview] = []
        self.count = 0  # entries
        self.nbytes = 0
        self._data: memoryview | None = None  # the slice being extended
        self._start = self._stop = 0

    def add(self, data: memoryview, start: int, stop: int) -> None:
        """Take ``data[start:stop]``: one or more whole entries."""
        self.nbytes += stop - start
        if data is self._data and start == self._stop:
            self._stop = stop
            return
        if self._data is not None:
            self.parts.append(self._data[self._start : self._stop])
        self._data, self._start, self._stop = data, start, stop

    def slices(self) -> list[memoryview]:
        if self._data is not None:
            self.parts.append(self._data[self._start : self._stop])
            self._data = None
        return self.parts


class ForwardEncoder:
    """Turns NDJSON runs into chunks; one instance per output (it caches EventTimes)."""

    def __init__(
        self,
        tag_prefix: str,
        mode: Mode = "packed_forward",
        max_events: int = 2000,
        max_bytes: int = 4 * 1024 * 1024,
        with_ack: bool = True,
        gzip_level: int = 1,
    ) -> None:
        self.tag_prefix = tag_prefix
        self.mode = mode
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.with_ack = with_ack
        self.gzip_level = gzip_level
        self._times: dict[str, msgspec.msgpack.Ext] = {}
        #: per timestamp: an entry's start, its array header and EventTime packed
        self._heads: dict[str, bytes] = {}
        self._days: dict[str, int | None] = {}  # "YYYY-MM-DD" -> its first second
        self._minutes: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:" -> its first second, or -1
        self._tags: dict[str, str] = {}
        self._json = msgspec.json.Decoder()
        self._encoder = msgspec.msgpack.Encoder()
        self._pack = self._encoder.encode
        #: events whose @timestamp could not be read; sent with the time they were encoded
        self.untimed = 0

    def chunks(self, runs: Iterable[bytes]) -> Iterator[Chunk]:
        """Chunks of the documents in ``runs`` (NDJSON, each ending in a line break), in
        order within each tag: each run packed as the decoders pack it (``entries``), then
        cut as the decoders' runs are (``chunks_from_wires``)."""
        wires = (self.entries(doc for doc in run.split(b"\n") if doc) for run in runs)
        return self.chunks_from_wires(wires)

    def entries(self, docs: Iterable[bytes]) -> Wire:
        """The documents as Forward entries ``[EventTime, record]``, packed one after the other,
        each labelled with its tag: what decoder processes hand the output (``WireEncoder``),
        which then only cuts them into chunks (``chunks_from_wires``)."""
        decode, pack_into = self._json.decode, self._encoder.encode_into
        times, tags, tag_of = self._times, self._tags, self._tag
        buf = bytearray()
        ends = array("q")
        labels: list[str] = []
        end, label = ends.append, labels.append
        for doc in docs:
            record = decode(doc)
            if type(record) is dict:
                ts = record.get("@timestamp")
                event = record.get("event")
            else:
                ts = event = None
            t = times.get(ts) if type(ts) is str else None
            if t is None:
                t = self._time(ts)
            dataset = event.get("dataset") if type(event) is dict else None
            tag = tags.get(dataset) if type(dataset) is str else None
            label(tag or tag_of(dataset))
            pack_into((t, record), buf, -1)
            end(len(buf))
        return Wire(bytes(buf), ends, labels)

    def packed_entries(
        self, records: Sequence[bytes], timestamps: Sequence[str], datasets: Sequence[str]
    ) -> Wire:
        """``entries`` for events whose normaliser packed them already (``Decoded.msgpack``):
        each entry is the array header, the EventTime of ``timestamps[i]`` (the event's
        ``@timestamp``) and the record's bytes as they are; the tag is made from
        ``datasets[i]`` (the event's ``event.dataset``). The same bytes as ``entries``, without
        decoding and packing each event again, which is most of what ``entries`` costs."""
        heads, times, tags, tag_of = self._heads, self._times, self._tags, self._tag
        pack = self._encoder.encode
        pieces: list[bytes] = []
        ends = array("q")
        labels: list[str] = []
        put, end, label = pieces.append, ends.append, labels.append
        total = 0
        for record, ts, dataset in zip(records, timestamps, datasets, strict=True):
            head = heads.get(ts)
            if head is None:
                head = b"\x92" + pack(times.get(ts) or self._time(ts))
                if len(heads) >= _CACHE_MAX:
                    heads.clear()
                heads[ts] = head
            put(head)
            put(record)
            total += len(head) + len(record)
            end(total)
            label(tags.get(dataset) or tag_of(dataset))
        return Wire(b"".join(pieces), ends, labels)

    def chunks_from_wires(self, wires: Iterable[Wire]) -> Iterator[Chunk]:
        """``chunks`` for entries the decoders packed (``entries``): the same chunks, cut
        from the runs' bytes; a run of one tag (the usual chunk of a file) is cut by its
        offsets alone, without a step per event."""
        max_events, max_bytes = self.max_events, self.max_bytes
        open_: dict[str, _Open] = {}
        for w in wires:
            ends, labels = w.ends, w.labels
            n = len(ends)
            if not n:
                continue
            assert labels is not None, "Fluentd entries come with their tags"
            data = memoryview(w.read())
            if labels.count(labels[0]) == n:
                tag = labels[0]
                i = 0
                while i < n:
                    o = open_.get(tag)
                    if o is None:
                        o = open_[tag] = _Open()
                    base = ends[i - 1] if i else 0
                    stop = min(n, i + max_events - o.count)
                    j = bisect.bisect_right(ends, base + max_bytes - o.nbytes, i, stop)
                    if j == i:
                        if o.count:  # full by bytes: the next entry starts the next chunk
                            yield self._close(tag, o)
                            del open_[tag]
                            continue
                        j = i + 1  # one entry over max_bytes goes alone
                    o.add(data, base, ends[j - 1])
                    o.count += j - i
                    i = j
                    if o.count >= max_events or o.nbytes >= max_bytes or j < stop:
                        yield self._close(tag, o)
                        del open_[tag]
                continue
            start = 0
            for k in range(n):
                stop_at, tag = ends[k], labels[k]
                o = open_.get(tag)
                if o is None:
                    o = open_[tag] = _Open()
                elif o.nbytes + stop_at - start > max_bytes:  # full: this entry starts the next
                    yield self._close(tag, o)
                    o = open_[tag] = _Open()
                o.add(data, start, stop_at)
                start = stop_at
                o.count += 1
                if o.count >= max_events:
                    yield self._close(tag, o)
                    del open_[tag]
        for tag, o in open_.items():
            yield self._close(tag, o)

    def _time(self, ts: Any) -> msgspec.msgpack.Ext:
        """EventTime of a timestamp not in the cache. The pipeline writes
        ``YYYY-MM-DDTHH:MM:SS.fffZ``, whose seconds and fractions rarely repeat but whose
        minutes do: the first second of each minute is cached, the rest is two slices and a
        sum (about a third of the instructions of the general way, which caches days)."""
        if type(ts) is str and len(ts) == 24 and ts[19] == "." and ts[23] == "Z":
            base = self._minutes.get(ts[:17])
            if base is None:
                base = self._minute(ts[:17])
            sec, ms = ts[17:19], ts[20:23]
            if base >= 0 and sec.isdecimal() and ms.isdecimal() and int(sec) <= 60:
                t = msgspec.msgpack.Ext(EVENT_TIME, _PAIR.pack(base + int(sec), int(ms) * 10**6))
                if len(self._times) >= _CACHE_MAX:
                    self._times.clear()
                self._times[ts] = t
                return t
        return self._time_general(ts)

    def _minute(self, prefix: str) -> int:
        """The first second of the minute ``YYYY-MM-DDTHH:MM:``, or -1 when it is not one (or
        its seconds would not fit EventTime's 32 bits): then the general way decides."""
        whole = _parse(prefix + "00Z") if prefix[16:] == ":" else None
        base = -1 if whole is None or whole[0] + 60 >= 2**32 else whole[0]
        if len(self._minutes) >= _CACHE_MAX:
            self._minutes.clear()
        self._minutes[prefix] = base
        return base

    def _time_general(self, ts: Any) -> msgspec.msgpack.Ext:
        """``_time`` for any form ``event_time`` takes: the start of each day is cached, the
        rest is a few slices and sums."""
        pair = None
        if type(ts) is str:
            frac, hms = ts[20:-1], ts[11:19]
            if (
                ts[-1:] == "Z"
                and ts[10:11] == "T"
                and (len(ts) == 20 or (ts[19] == "." and frac.isdigit()))
                and hms[2:3] == ":"
                and hms[5:6] == ":"
                and (digits := hms[:2] + hms[3:5] + hms[6:]).isdigit()
            ):
                day = self._days.get(ts[:10], -1)
                if day == -1:
                    whole = _parse(ts[:10] + "T00:00:00Z")
                    day = None if whole is None else whole[0]
                    if len(self._days) >= _CACHE_MAX:
                        self._days.clear()
                    self._days[ts[:10]] = day
                h, mi, sec = int(digits[:2]), int(digits[2:4]), int(digits[4:])
                if day is not None and h < 24 and mi < 60 and sec <= 60:
                    seconds = day + h * 3600 + mi * 60 + sec
                    if seconds < 2**32:
                        pair = seconds, int(frac[:9].ljust(9, "0") or 0)
            else:
                pair = _parse(ts)
        if pair is None:
            self.untimed += 1
            return _now()
        t = msgspec.msgpack.Ext(EVENT_TIME, _PAIR.pack(*pair))
        if len(self._times) >= _CACHE_MAX:
            self._times.clear()
        self._times[ts] = t
        return t

    def _tag(self, dataset: Any) -> str:
        tag = self._tags.get(dataset) if type(dataset) is str else None
        if tag is None:
            if type(dataset) is str and dataset:
                safe = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset).strip(".")
            else:
                safe = "unknown"
            tag = f"{self.tag_prefix}.{safe or 'unknown'}"
            if type(dataset) is str and len(self._tags) < 1024:
                self._tags[dataset] = tag
        return tag

    def _close(self, tag: str, o: _Open) -> Chunk:
        """The message for a chunk: ``[tag, entries, {size, chunk?, compressed?}]``, as msgpack
        packs it, in parts around the entries' slices: msgpack's header of a 3-array, the tag,
        the header of the entries (bin for PackedForward, array for Forward), the options."""
        size = o.count
        options: dict[str, Any] = {"size": size}
        chunk_id = new_chunk_id() if self.with_ack else None
        if chunk_id is not None:
            options["chunk"] = chunk_id
        entries: list[Any] = o.slices()
        if self.mode == "forward":
            # the entries one after the other are the body of a msgpack array of them
            header = _array_header(size)
        else:
            if self.mode == "compressed_packed_forward":
                entries = [gzip.compress(b"".join(entries), self.gzip_level, mtime=0)]
                options["compressed"] = "gzip"
            header = _bin_header(sum(len(e) for e in entries))
        head = b"\x93" + self._pack(tag) + header
        return Chunk(tag, (head, *entries, self._pack(options)), size, chunk_id)


class WireEncoder:
    """The entry encoding as decoder processes run it (``shipper.outputs.base.WireEncoder``):
    documents to Forward entries with their tags (``ForwardEncoder.entries``), beside the
    decoding, in as many processes as decode. Decoding each document back into maps and
    packing it as msgpack is the Fluentd output's whole cost per event; done in the sending
    process it would cap the pipeline at what one core packs.

    Pickled once per run, kept by each decoder process; the caches are made there. Events
    that come as msgpack already (``msgpack``: the RMS normaliser packs them, from the pieces
    it makes the JSON of) skip the decoding and packing (``ForwardEncoder.packed_entries``).
    """

    #: ask the normalisers for msgpack records (``Decoded.msgpack``)
    msgpack = True

    def __init__(self, tag_prefix: str) -> None:
        self.tag_prefix = tag_prefix
        self._encoder: ForwardEncoder | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"tag_prefix": self.tag_prefix}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.tag_prefix = state["tag_prefix"]
        self._encoder = None

    def encode(self, events: Decoded) -> Wire:
        """Tag and time come from the documents themselves, as in ``ForwardEncoder.chunks``."""
        if self._encoder is None:
            self._encoder = ForwardEncoder(self.tag_prefix)
        if events.msgpack:
            return self._encoder.packed_entries(events.msgpack, events.timestamps, events.datasets)
        return self._encoder.entries(events.docs)


def _bin_header(n: int) -> bytes:
    """msgpack's bin header for ``n`` bytes (bin 8, bin 16, bin 32)."""
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _array_header(n: int) -> bytes:
    """msgpack's array header for ``n`` items (fixarray, array 16, array 32)."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")
