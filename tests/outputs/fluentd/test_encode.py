"""Events -> Forward messages, checked by decoding the bytes with msgpack (not msgspec)."""

from __future__ import annotations

import datetime
import gzip
import pickle
import random
import time
from pathlib import Path

import msgpack
import orjson
import pytest

from shipper.outputs.fluentd.encode import ForwardEncoder, WireEncoder, event_time
from shipper.sources import FORMATS, Decoded

from .conftest import event

REPO = Path(__file__).resolve().parents[3]


def _ext(code: int, data: bytes) -> tuple[int, int]:
    assert code == 0 and len(data) == 8
    return int.from_bytes(data[:4], "big"), int.from_bytes(data[4:], "big")


def unpack(message: bytes) -> list:
    return msgpack.unpackb(message, raw=False, ext_hook=_ext)


def entries_of(blob: bytes) -> list:
    u = msgpack.Unpacker(raw=False, ext_hook=_ext)
    u.feed(blob)
    return list(u)


@pytest.mark.parametrize(
    ("text", "seconds", "nanos"),
    [
        ("1970-01-01T00:00:00Z", 0, 0),
        ("2024-03-04T09:00:01.123Z", 1709542801, 123000000),
        ("2024-03-04T09:00:01.1234567Z", 1709542801, 123456700),  # Windows' 100 ns ticks
        ("2024-03-04T09:00:01.123456789123Z", 1709542801, 123456789),  # beyond ns: cut
        ("2024-03-04T10:30:01+01:30", 1709542801, 0),
        ("2024-03-04T07:00:01-0200", 1709542801, 0),
        ("2024-03-04 09:00:01", 1709542801, 0),  # no zone: UTC, as the pipeline writes
        ("2106-02-07T06:28:15Z", 2**32 - 1, 0),
    ],
)
def test_event_time_keeps_the_nanoseconds_of_the_timestamp(text, seconds, nanos):
    t = event_time(text)
    assert t is not None and t.code == 0
    assert _ext(t.code, t.data) == (seconds, nanos)


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
             "1969-12-31T23:59:59Z", "2106-02-07T06:28:16Z"],
)  # fmt: skip
def test_times_that_are_not_times_or_do_not_fit_are_refused(text):
    assert event_time(text) is None


def test_an_event_without_a_usable_time_is_sent_with_the_time_it_was_encoded():
    enc = ForwardEncoder("shipper")
    doc = event(1, ts="not a time")
    (chunk,) = enc.chunks([orjson.dumps(doc) + b"\n"])
    ((seconds, _), record) = entries_of(unpack(chunk.message)[1])[0]
    assert record == doc and abs(seconds - time.time()) < 60
    assert enc.untimed == 1


def test_chunks_split_by_events_and_bytes_and_group_by_dataset():
    docs = [event(i, "azure_rms.usage" if i % 3 else "windows.events") for i in range(100)]
    run = b"".join(orjson.dumps(d) + b"\n" for d in docs)
    enc = ForwardEncoder("p", max_events=10, max_bytes=1_000_000)
    cut = run.index(b"\n", len(run) // 2) + 1
    chunks = list(enc.chunks([run[:cut], run[cut:]]))
    by_tag: dict[str, list] = {}
    for c in chunks:
        tag, blob, options = unpack(c.message)
        assert tag == c.tag and options == {"size": c.size, "chunk": c.chunk_id}
        assert 1 <= c.size <= 10 and len(entries_of(blob)) == c.size
        by_tag.setdefault(tag, []).extend(r for _, r in entries_of(blob))
    assert [r["event"]["id"] for r in by_tag["p.windows.events"]] == [
        d["event"]["id"] for d in docs if d["event"]["dataset"] == "windows.events"
    ]
    assert len(by_tag["p.azure_rms.usage"]) == 66
    small = list(ForwardEncoder("p", max_bytes=2048).chunks([run]))
    assert all(len(c.message) < 2048 + 512 for c in small) and sum(c.size for c in small) == 100


def test_modes_and_options_on_the_wire():
    run = b"".join(orjson.dumps(event(i)) + b"\n" for i in range(5))
    (fwd,) = ForwardEncoder("s", "forward", with_ack=False).chunks([run])
    tag, entries, options = unpack(fwd.message)
    assert isinstance(entries, list) and len(entries) == 5 and options == {"size": 5}
    assert fwd.chunk_id is None
    (gz,) = ForwardEncoder("s", "compressed_packed_forward").chunks([run])
    tag, blob, options = unpack(gz.message)
    assert options["compressed"] == "gzip" and options["size"] == 5
    assert [r for _, r in entries_of(gzip.decompress(blob))] == [event(i) for i in range(5)]


def test_a_dataset_with_odd_characters_still_makes_a_valid_tag():
    doc = event(1, "Weird Name/..x")
    (c,) = ForwardEncoder("shipper").chunks([orjson.dumps(doc) + b"\n"])
    assert c.tag == "shipper.Weird_Name_..x"
    nodata = {"@timestamp": "2024-01-01T00:00:00Z", "message": "no event.dataset"}
    (c,) = ForwardEncoder("shipper").chunks([orjson.dumps(nodata) + b"\n"])
    assert c.tag == "shipper.unknown"


def test_the_encoder_caches_seconds_yet_gives_every_fraction_its_own_time():
    texts = ["2024-03-04T09:00:01.123Z", "2024-03-04T09:00:01.456Z", "2024-03-04T09:00:01Z",
             "2024-03-04T09:00:01.1234567Z", "2024-03-04T10:30:01+01:30", "2024-02-30T00:00:00Z",
             "2024-03-04T09:00:01.Z", "2024-03-04T09:00:01.123Z"]  # fmt: skip
    enc = ForwardEncoder("s")
    run = b"".join(orjson.dumps(event(i, ts=t)) + b"\n" for i, t in enumerate(texts))
    (chunk,) = enc.chunks([run])
    times = [t for t, _ in entries_of(unpack(chunk.message)[1])]
    for text, got in zip(texts, times, strict=True):
        want = event_time(text)
        if want is None:
            assert abs(got[0] - time.time()) < 60, text
        else:
            assert got == _ext(want.code, want.data), text
    assert enc.untimed == 2


@pytest.mark.parametrize(
    "text", ["2024-03-04T24:00:00Z", "2024-03-04T09:60:00Z", "2024-03-04T9:00:00.5Z",
             "2024-03-04T09:00:+1Z", "1969-12-31T23:59:59.5Z", "2106-02-07T06:28:16Z"],
)  # fmt: skip
def test_the_encoders_fast_path_refuses_what_event_time_refuses(text):
    assert event_time(text) is None
    enc = ForwardEncoder("s")
    enc._time(text)
    assert enc.untimed == 1


@pytest.mark.parametrize(("max_events", "max_bytes"), [(2000, 4 << 20), (7, 1 << 20), (50, 3000)])
@pytest.mark.parametrize("mixed", [False, True])
def test_entries_packed_by_the_decoders_make_the_same_chunks(max_events, max_bytes, mixed):
    """What the pipeline sends (entries packed in the decoders, cut into chunks by the output)
    is what the output makes of the documents itself: same tags, sizes and bytes."""
    docs = [
        event(i, "windows.events" if mixed and i % 4 == 0 else "azure_rms.usage")
        for i in range(300)
    ]
    docs[5]["message"] = "x" * 5000  # an entry over max_bytes on its own
    docs[6]["@timestamp"] = "not a time"
    lines = [orjson.dumps(d) for d in docs]
    packer = pickle.loads(pickle.dumps(WireEncoder("p")))
    wires = [packer.encode(Decoded(docs=lines[k : k + 64])) for k in range(0, 300, 64)]
    own = ForwardEncoder("p", max_events=max_events, max_bytes=max_bytes)
    cut = ForwardEncoder("p", max_events=max_events, max_bytes=max_bytes)

    untimed = docs[6]["event"]["id"]

    def shape(chunks):
        """Tag, size and entries of each chunk; the untimed event's time (the clock's when it
        was packed) left out; the entries' bytes where they hold no such time."""
        out = []
        for c in chunks:
            tag, blob, _ = unpack(c.message)
            entries = [(None if r["event"]["id"] == untimed else t, r) for t, r in entries_of(blob)]
            exact = None if any(t is None for t, _ in entries) else blob
            out.append((c.tag, c.size, entries, exact))
        return out

    want = shape(own.chunks([b"".join(x + b"\n" for x in lines)]))
    assert shape(cut.chunks_from_wires(wires)) == want
    assert sum(size for _, size, _, _ in want) == 300


def test_the_minute_cache_gives_what_event_time_gives():
    """The encoder's usual form (``YYYY-MM-DDTHH:MM:SS.fffZ``) takes a cached minute and two
    slices; random times and the edges (leap second, leap day, the end of 32-bit seconds)
    come out as ``event_time`` makes them, or as untimed where it refuses them."""
    rng = random.Random(5)
    texts = ["2024-02-29T23:59:60.250Z", "2023-02-29T10:00:00.000Z", "2106-02-07T06:28:15.999Z",
             "2106-02-07T06:27:59.000Z", "1970-01-01T00:00:00.000Z", "2024-03-04T09:61:00.000Z",
             "2024-03-04T09:00:6x.000Z", "2024-03-04T09:00:00.0a0Z"]  # fmt: skip
    for _ in range(2000):
        t = datetime.datetime(1970, 1, 1) + datetime.timedelta(
            seconds=rng.randrange(2**32 + 3600), milliseconds=rng.randrange(1000)
        )
        texts.append(t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z")
    enc = ForwardEncoder("s")
    untimed = 0
    for text in texts:
        got, want = enc._time(text), event_time(text)
        if want is None:
            untimed += 1
            assert enc.untimed == untimed, text
        else:
            assert got == want, text


@pytest.mark.parametrize("keep_original", [False, True])
def test_events_the_normaliser_packed_make_the_entries_their_json_makes(keep_original):
    """RMS usage events come from the decoders as msgpack records too (the chunk's options
    ask for them, as the pipeline's do when a Fluentd output is configured): their entries
    are the very bytes packed from the JSON documents, tag by tag."""
    w3c = FORMATS["w3c_rms"]
    packer = pickle.loads(pickle.dumps(WireEncoder("p")))
    options = {"msgpack": True, "keep_original": keep_original}
    events = 0
    for src in sorted((REPO / "examples" / "rms").iterdir()):
        with src.open("rb") as f:
            for chunk in w3c.chunks(f, str(src), 0, "", True, dict(options)):
                decoded = w3c.decode(chunk)
                if not decoded.docs:
                    continue
                assert len(decoded.msgpack) == len(decoded.docs)
                packed = packer.encode(decoded)
                from_json = packer.encode(Decoded(docs=decoded.docs))
                assert packed.read() == from_json.read()
                assert list(packed.ends) == list(from_json.ends)
                assert packed.labels == from_json.labels == ["p.azure_rms.usage"] * len(packed)
                events += len(packed)
    assert events > 300


def test_events_of_every_other_format_come_packed_as_their_json() -> None:
    """Windows events and performance counters are packed from their dicts by the decoders:
    the same events as their JSON, member for member, and the same entries."""
    packer = pickle.loads(pickle.dumps(WireEncoder("p")))
    options = {"msgpack": True, "timezone": "UTC", "date_format": "%m/%d/%Y %I:%M:%S %p"}
    names = [n for n in FORMATS if n != "w3c_rms"]
    events, seen = 0, set()
    evtx = REPO.parent / "shared" / "thirdparty" / "evtx"  # real .evtx files, when present
    folders = [REPO / "examples" / "windows", REPO / "examples" / "perf", evtx]
    for folder in folders:
        for src in sorted(folder.iterdir()) if folder.is_dir() else []:
            head = src.read_bytes()[:4096]
            fmt = FORMATS[next(n for n in names if FORMATS[n].sniff(head, str(src)))]
            with src.open("rb") as f:
                for chunk in fmt.chunks(f, str(src), 0, "", True, dict(options)):
                    decoded = fmt.decode(chunk)
                    assert len(decoded.msgpack) == len(decoded.docs)
                    for record, doc in zip(decoded.msgpack, decoded.docs, strict=True):
                        assert orjson.dumps(msgpack.unpackb(record)) == doc
                    if decoded.docs:
                        packed = packer.encode(decoded)
                        from_json = packer.encode(Decoded(docs=decoded.docs))
                        assert packed.labels == from_json.labels
                        # a time EventTime cannot hold (before 1970) is the clock's, twice
                        timed = [event_time(t) is not None for t in decoded.timestamps]
                        assert [
                            (t if ok else None, r)
                            for ok, (t, r) in zip(timed, entries_of(packed.read()), strict=True)
                        ] == [
                            (t if ok else None, r)
                            for ok, (t, r) in zip(timed, entries_of(from_json.read()), strict=True)
                        ]
                    events += len(decoded.docs)
                    seen |= set(decoded.datasets)
    assert events > 50
    assert {"rms_connector.events", "ecma2host.events", "rms_connector.perf"} <= seen


@pytest.mark.parametrize("mode", ["packed_forward", "forward", "compressed_packed_forward"])
@pytest.mark.parametrize("events", [1, 40, 400])  # entries of a few hundred bytes, tens of kB, MB
def test_a_chunk_sent_in_parts_is_the_message_msgpack_makes(mode, events):
    """A chunk is held as its head, slices of the runs and its options, and written with one
    gathering write; together they are exactly what msgpack packs for ``[tag, entries,
    options]``: bin 8/16/32 (or array) headers of the right size, nothing between the slices."""
    docs = [event(i, "windows.events" if i % 5 == 0 else "azure_rms.usage") for i in range(events)]
    if events == 1:  # under 256 bytes: bin 8
        docs = [{"@timestamp": "2024-03-04T09:00:01Z", "event": {"dataset": "d"}}]
    if events == 400:
        for d in docs:
            d["message"] = "m" * 2500
    lines = [orjson.dumps(d) for d in docs]
    packer = pickle.loads(pickle.dumps(WireEncoder("p")))
    wires = [packer.encode(Decoded(docs=lines[k : k + 7])) for k in range(0, events, 7)]
    chunks = list(ForwardEncoder("p", mode).chunks_from_wires(wires))
    assert sum(c.size for c in chunks) == events
    for c in chunks:
        message = b"".join(c.parts)
        tag, body, options = msgpack.unpackb(message, raw=False)
        assert tag == c.tag and options["size"] == c.size
        # the whole message as msgpack packs it (for Forward mode: the entries re-packed)
        want = b"\x93" + msgpack.packb(tag) + msgpack.packb(body) + msgpack.packb(options)
        assert message == want
        if mode == "forward":
            assert len(body) == c.size
        else:
            blob = gzip.decompress(body) if mode == "compressed_packed_forward" else body
            assert len(entries_of(blob)) == c.size
