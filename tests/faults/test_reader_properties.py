"""Property-based tests of every reader under random and damaged input (issue 9, fault suite).

For the W3C reader and each event-export parser (XML, CSV, JSON, and .evtx from the real
samples in ``../shared/thirdparty/evtx/``), ``hypothesis`` writes files of valid records and
damages them: truncation, inserted garbage, flipped bytes, deleted runs, doubled or removed
quotes and braces, another encoding or BOM. Whatever it makes, reading the file with
``--once`` semantics (``chunks(final=True)`` then ``decode``) must

* never raise (a file-level refusal, ``FileRefused`` or ``Decoded.refused``, is an answer);
* never hang: each example runs under a watchdog, and under hypothesis' deadline;
* never use memory out of proportion to the input (``tracemalloc`` peak < 50 x input + 1 MiB;
  for .evtx, whose parser allocates outside Python, also the growth of resident memory);
* hand out positions that follow each other exactly, from the start to the end of the file;
* ship every record the damage left intact (by its record id), where "intact" is what the
  format lets a reader tell: a record whose bytes (and, for line formats, the line break
  before it) the damage did not touch. Two limits of the formats themselves are stated where
  they apply: an unbalanced quote in CSV re-pairs every later quote (CSV has no point to
  resynchronise at), so only the records before it are claimed; damage to a file's header
  (the W3C directives, a CSV's column line, the first bytes that tell the encoding, the
  .evtx file header) may cost the whole file, so there only the first three properties hold.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from shipper.sources import FORMATS  # noqa: E402
from shipper.sources.base import FileRefused  # noqa: E402
from tests.conftest import SHARED, rms_row, rms_text  # noqa: E402

PROPERTIES = settings(
    max_examples=int(os.environ.get("SHIPPER_PROPERTY_EXAMPLES", "40")),
    deadline=timedelta(seconds=5),  # a generous bound per example on a loaded 2-core machine
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WATCHDOG = 20  # seconds: an example still running then is a hang, reported as a failure


# --- reading, measured --------------------------------------------------------------------------


@dataclass
class Read:
    ids: list[int] = field(default_factory=list)
    quarantined: int = 0
    refused: bool = False
    peak: int = 0
    ends: list[tuple[int, int]] = field(default_factory=list)


def record_id(doc: dict[str, Any]) -> int:
    """The number a sample gave its record (-1 when damage took it away)."""
    if "winlog" in doc:
        return int(doc["winlog"].get("record_id", -1))
    try:
        return int(doc["event"]["id"][:8], 16)
    except ValueError:  # damage inside the id itself: the record shipped, as another one
        return -1


@contextmanager
def watchdog(seconds: int) -> Iterator[None]:
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def hang(signum: int, frame: Any) -> None:
        raise TimeoutError(f"reader still busy after {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def bound(data: bytes) -> int:
    """The memory a read of ``data`` may take at most."""
    return 50 * len(data) + (1 << 20)


def read(fmt: str, data: bytes, options: dict[str, object] | None = None) -> Read:
    """Read ``data`` as ``fmt`` the way ``--once`` does, measuring what it holds.

    A read that takes more than ``bound`` is measured again: what a process loads once, the
    first time some path needs it (the normaliser's mappings, a lazily built table), is not
    a cost of this input; what an input costs, it costs every time."""
    result = _read(fmt, data, options)
    if result.peak >= bound(data):
        result = _read(fmt, data, options)
    return result


def _read(fmt: str, data: bytes, options: dict[str, object] | None) -> Read:
    reader = FORMATS[fmt]
    result = Read()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "input"
        path.write_bytes(data)
        tracemalloc.start()
        try:
            with watchdog(WATCHDOG), open(path, "rb") as f:
                for chunk in reader.chunks(f, str(path), 0, "", True, options or {}):
                    result.ends.append((chunk.start, chunk.end))
                    out = reader.decode(chunk)
                    if out.refused:
                        result.refused = True
                        break
                    result.ids += [record_id(json.loads(doc)) for doc in out.docs]
                    result.quarantined += len(out.quarantined)
        except FileRefused:
            result.refused = True
        finally:
            result.peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return result


def check_common(result: Read, data: bytes, evtx: bool = False) -> None:
    assert result.peak < bound(data), f"peak {result.peak:,} bytes for {len(data):,} bytes of input"
    if result.refused:
        return
    pos = result.ends[0][0] if result.ends else 0
    for start, end in result.ends:
        assert start == pos and end > start, result.ends  # contiguous, always moving on
        pos = end
    rest = data[pos:]
    if not evtx and len(rest) > 1:  # (UTF-16: an odd last byte stays unread)
        # else only a file that holds nothing but a BOM is left unread, waiting for records
        assert pos == 0 and rest in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"), (pos, rest)


# --- valid files, with the byte span of every record ----------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), max_codepoint=0x2FFFF)
    | st.sampled_from("\"\\{}[]<>&,;'\t\n"),
    max_size=30,
)


@dataclass
class Sample:
    fmt: str
    data: bytes
    spans: dict[int, tuple[int, int]]  # record id -> (start, end) in bytes
    header: int  # bytes at the start whose damage may cost the whole file
    lines: bool  # records are lines: damage to the line break before one costs it too


def _assemble(fmt: str, prefix: str, records: list[tuple[int, str]], suffix: str,
              header: int | None = None, lines: bool = False) -> Sample:  # fmt: skip
    out = bytearray(prefix.encode())
    spans = {}
    for i, text in records:
        start = len(out)
        out += text.encode()
        spans[i] = (start, len(out))
    out += suffix.encode()
    return Sample(fmt, bytes(out), spans, len(prefix.encode()) if header is None else header,
                  lines)  # fmt: skip


def json_sample(messages: list[str], pretty: int) -> Sample:
    records = []
    for k, msg in enumerate(messages):
        i = k + 1
        rec = {
            "Id": 1000, "Level": 4, "RecordId": i, "ProviderName": "Microsoft RMS connector",
            "LogName": "Application", "MachineName": "RMSCON01.contoso.com",
            "TimeCreated": f"/Date({1700000000000 + i * 1000})/", "Message": msg,
            "Properties": [{"Value": msg}],
        }  # fmt: skip
        text = json.dumps(rec, indent=pretty, ensure_ascii=k % 2 == 0)
        records.append((i, text.replace("\n", "\n" + " " * pretty)))
    parts = []
    for n, (i, text) in enumerate(records):
        parts.append((i, text))
        if n < len(records) - 1:
            parts.append((-1, ",\n" + " " * pretty))
    sample = _assemble("event_json", "[\n" + " " * pretty, parts, "\n]\n", header=4)
    sample.spans.pop(-1, None)
    return sample


def xml_sample(messages: list[str]) -> Sample:
    ns = "http://schemas.microsoft.com/win/2004/08/events/event"
    records = []
    for k, msg in enumerate(messages):
        i = k + 1
        records.append((i, (
            f"<Event xmlns='{ns}'><System><Provider Name='Microsoft RMS connector'/>"
            f"<EventID>1000</EventID><Level>4</Level>"
            f"<TimeCreated SystemTime='2024-03-04T14:00:{i % 60:02d}Z'/>"
            f"<EventRecordID>{i}</EventRecordID><Channel>Application</Channel>"
            f"<Computer>RMSCON01.contoso.com</Computer></System>"
            f"<EventData><Data>{escape(msg)}</Data></EventData></Event>"
        )))  # fmt: skip
        records.append((-1, "\n"))
    prefix = '<?xml version="1.0" encoding="UTF-8"?>\n<Events>\n'
    sample = _assemble("event_xml", prefix, records, "</Events>\n", header=4)
    sample.spans.pop(-1, None)
    return sample


_CSV_COLS = ["Message", "Id", "Level", "RecordId", "ProviderName", "LogName", "MachineName",
             "TimeCreated"]  # fmt: skip


def csv_sample(messages: list[str]) -> Sample:
    records = []
    for k, msg in enumerate(messages):
        i = k + 1
        values = [msg, "1000", "4", str(i), "Microsoft RMS connector", "Application",
                  "RMSCON01.contoso.com", f"3/4/2024 9:00:{i % 60:02d} AM"]  # fmt: skip
        records.append((i, ",".join('"' + v.replace('"', '""') + '"' for v in values) + "\r\n"))
    prefix = "#TYPE System.Diagnostics.Eventing.Reader.EventLogRecord\r\n"
    prefix += ",".join(f'"{c}"' for c in _CSV_COLS) + "\r\n"
    return _assemble("event_csv", prefix, records, "", lines=True)


def w3c_sample(messages: list[str]) -> Sample:
    records = []
    for k, msg in enumerate(messages):
        i = k + 1
        name = "".join(c for c in msg if c not in "\t\r\n") or "x"
        records.append((i, "\t".join(rms_row(i, file_name=name)) + "\n"))
    return _assemble("w3c_rms", rms_text([]), records, "", lines=True)


_MESSAGES = st.lists(_TEXT, min_size=1, max_size=8)
SAMPLES: dict[str, Callable[[Any], st.SearchStrategy[Sample]]] = {
    "event_json": lambda m: st.builds(json_sample, m, st.sampled_from([2, 4])),
    "event_xml": lambda m: st.builds(xml_sample, m),
    "event_csv": lambda m: st.builds(csv_sample, m),
    "w3c_rms": lambda m: st.builds(w3c_sample, m),
}


# --- damage -------------------------------------------------------------------------------------


@dataclass
class Damage:
    data: bytes
    lo: int  # the damaged bytes of the original: [lo, hi); an insertion has lo == hi
    hi: int
    removed: bytes = b""
    inserted: bytes = b""


_GARBAGE = st.binary(min_size=1, max_size=40) | st.sampled_from(
    [b'"', b"{", b"}", b"[", b"]", b"\\", b"\n", b"\r\n", b"<Event>", b"</Event>", b'""',
     b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"<!--", b"<![CDATA[", b"\t", b","]
)  # fmt: skip


@st.composite
def damaged(draw: st.DrawFn, sample: Sample) -> Damage:
    data = sample.data
    n = len(data)
    kind = draw(st.sampled_from(["truncate", "insert", "flip", "delete", "double", "remove"]))
    if kind == "truncate":
        p = draw(st.integers(0, n))
        return Damage(data[:p], p, n, removed=data[p:])
    if kind == "insert":
        p = draw(st.integers(0, n))
        g = draw(_GARBAGE)
        return Damage(data[:p] + g + data[p:], p, p, inserted=g)
    if kind == "flip":
        p = draw(st.integers(0, n - 1))
        b = data[p] ^ draw(st.integers(1, 255))
        return Damage(data[:p] + bytes([b]) + data[p + 1 :], p, p + 1, data[p : p + 1], bytes([b]))
    if kind == "delete":
        p = draw(st.integers(0, n - 1))
        q = draw(st.integers(p + 1, min(n, p + 64)))
        return Damage(data[:p] + data[q:], p, q, removed=data[p:q])
    # double or remove one of the characters that give the text its structure
    marks = [i for i, c in enumerate(data) if c in b'"{}[]<>\n']
    if not marks:
        return Damage(data, n, n)
    p = draw(st.sampled_from(marks))
    if kind == "double":
        return Damage(data[:p] + data[p : p + 1] + data[p:], p, p, inserted=data[p : p + 1])
    return Damage(data[:p] + data[p + 1 :], p, p + 1, removed=data[p : p + 1])


def intact(sample: Sample, damage: Damage) -> set[int]:
    """The records the damage did not touch, as the format lets a reader tell."""
    lo, hi = damage.lo, damage.hi
    if lo < sample.header:
        return set()
    keep = set()
    for i, (start, end) in sample.spans.items():
        if sample.lines:
            start -= 1  # the line break that ends the record before it
        touched = (start < hi and lo < end) if hi > lo else start < lo < end
        if not touched:
            keep.add(i)
    if sample.fmt == "event_csv" and b'"' in damage.removed + damage.inserted:
        keep = {i for i in keep if sample.spans[i][1] <= lo}  # see the module docstring
    return keep


# --- the properties -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_valid_files_ship_every_record(fmt):
    @PROPERTIES
    @given(SAMPLES[fmt](_MESSAGES))
    def run(sample: Sample) -> None:
        result = read(fmt, sample.data)
        check_common(result, sample.data)
        assert sorted(result.ids) == sorted(sample.spans), result
        assert result.quarantined == 0

    run()


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_damage_costs_only_the_records_it_touches(fmt):
    @PROPERTIES
    @given(st.data())
    def run(data: st.DataObject) -> None:
        sample = data.draw(SAMPLES[fmt](_MESSAGES))
        damage = data.draw(damaged(sample))
        result = read(fmt, damage.data)
        check_common(result, damage.data)
        want = intact(sample, damage)
        if want:
            assert not result.refused
            missing = want - set(result.ids)
            assert not missing, f"intact records {sorted(missing)} did not ship"

    run()


_ENCODINGS = [("utf-8-sig", b""), ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")]


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_another_encoding_or_bom_ships_the_same_records(fmt):
    @PROPERTIES
    @given(SAMPLES[fmt](_MESSAGES), st.sampled_from(_ENCODINGS))
    def run(sample: Sample, encoding: tuple[str, bytes]) -> None:
        name, bom = encoding
        data = bom + sample.data.decode("utf-8").encode(name)
        result = read(fmt, data)
        check_common(result, data)
        assert sorted(result.ids) == sorted(sample.spans)

    run()


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_random_bytes_never_crash_hang_or_blow_up(fmt):
    @PROPERTIES
    @given(st.binary(max_size=4096) | _TEXT.map(str.encode))
    def run(data: bytes) -> None:
        check_common(read(fmt, data), data)

    run()


# --- .evtx: mutated real files ------------------------------------------------------------------

EVTX_DIR = SHARED / "thirdparty" / "evtx"
HEADER, EVTX_CHUNK = 4096, 65536


def _evtx_files() -> list[Path]:
    if not EVTX_DIR.is_dir():
        return []
    return sorted(p for p in EVTX_DIR.glob("*.evtx") if p.stat().st_size <= 1200 * 1024)


def _ids_by_chunk(data: bytes) -> list[set[int]]:
    """The record ids of each 64 KiB evtx chunk, decoded on its own."""
    from shipper.sources.base import Chunk

    out = []
    for c in range((len(data) - HEADER) // EVTX_CHUNK):
        start = HEADER + c * EVTX_CHUNK
        chunk = Chunk("evtx", "x.evtx", start, start + EVTX_CHUNK, "", "",
                      data[start : start + EVTX_CHUNK], prefix=data[:HEADER])  # fmt: skip
        decoded = FORMATS["evtx"].decode(chunk)
        out.append({record_id(json.loads(d)) for d in decoded.docs})
    return out


@pytest.fixture(scope="module")
def evtx_samples() -> list[tuple[bytes, list[set[int]]]]:
    files = _evtx_files()
    if not files:
        pytest.skip(f"{EVTX_DIR} is not there (../shared/thirdparty)")
    return [(data, _ids_by_chunk(data)) for data in (p.read_bytes() for p in files)]


@settings(PROPERTIES, max_examples=max(10, PROPERTIES.max_examples // 2))
@given(data=st.data())
def _evtx_property(samples: list[tuple[bytes, list[set[int]]]], data: st.DataObject) -> None:
    original, by_chunk = data.draw(st.sampled_from(samples))
    n = len(original)
    kind = data.draw(st.sampled_from(["flip", "overwrite", "truncate", "insert"]))
    p = data.draw(st.integers(0, n - 1))
    if kind == "flip":
        b = original[p] ^ data.draw(st.integers(1, 255))
        mutated, lo, hi = original[:p] + bytes([b]) + original[p + 1 :], p, p + 1
    elif kind == "overwrite":
        g = data.draw(st.binary(min_size=1, max_size=512))
        mutated, lo, hi = original[:p] + g + original[p + len(g) :], p, p + len(g)
    elif kind == "truncate":
        mutated, lo, hi = original[:p], p, n
    else:  # shifts every later chunk off its boundary: only the earlier ones are claimed
        g = data.draw(st.binary(min_size=1, max_size=64))
        mutated, lo, hi = original[:p] + g + original[p:], p, n
    before = _rss("VmRSS")
    try:  # the high-water mark from here: the parser's own (Rust) memory is not traced
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        before = None
    result = read("evtx", mutated)
    check_common(result, mutated, evtx=True)
    if before is not None:
        grew = _rss("VmHWM") - before
        assert grew < bound(mutated) + (8 << 20), f"resident memory grew by {grew:,} bytes"
    if lo < HEADER or result.refused:
        return
    want: set[int] = set()
    for c, ids in enumerate(by_chunk):
        start = HEADER + c * EVTX_CHUNK
        if start + EVTX_CHUNK <= lo or start >= hi:
            want |= ids
    missing = want - set(result.ids)
    assert not missing, f"{kind} at {p}: records of untouched chunks did not ship: {missing}"


def _rss(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def test_mutated_real_evtx_files(evtx_samples):
    _evtx_property(evtx_samples)


def test_the_watchdog_reports_a_hang():
    """The watchdog this suite relies on does fail a reader that never returns."""
    if not hasattr(signal, "SIGALRM"):
        pytest.skip("no SIGALRM on this platform")
    with pytest.raises(TimeoutError), watchdog(1):
        while True:
            pass
