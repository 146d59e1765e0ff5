"""A record bigger than ``pipeline.max_record_bytes``, in every format (issue 9, defect 5).

A 16 MB string in a PowerShell JSON export used to take 2 GB and 37 s, a 100 MB one 9.7 GB
and shipped nothing, not even the good file beside it. Now such a record is quarantined with
its size and its first 64 KiB, memory stays about the bound while it is skipped, and the
records around it and the files beside it ship. The exports are generated here, in the test's
temporary folder, a piece at a time (never whole in memory).
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shipper.config import parse_config
from shipper.pipeline import Pipeline, Summary, quarantine_path
from shipper.sources import FORMATS
from shipper.sources.limits import DEFAULT, HEAD
from tests.conftest import rms_row, rms_text

MiB = 1024 * 1024


# --- exports, written a piece at a time -------------------------------------------------------
# Each writer takes the ids of the records and {id: size} of those to make oversized (their
# message, or a W3C field, is that many bytes of filler); it returns {id: byte offset} of
# every record, so that tests can check positions exactly.


def _filler(f: Any, n: int, char: bytes = b"A") -> None:
    piece = char * MiB
    for _ in range(n // MiB):
        f.write(piece)
    f.write(char * (n % MiB))


def write_json(path: Path, ids: list[int], big: dict[int, int] | None = None) -> dict[int, int]:
    big = big or {}
    at = {}
    with open(path, "wb") as f:
        f.write(b"[\n")
        for k, i in enumerate(ids):
            rec = {
                "Id": 1000,
                "Level": 4,
                "RecordId": i,
                "ProviderName": "Microsoft RMS connector",
                "LogName": "Application",
                "MachineName": "RMSCON01.contoso.com",
                "TimeCreated": f"/Date({1700000000000 + i * 1000})/",
                "Message": "@@",
            }
            text = json.dumps(rec, indent=4).replace("\n", "\n    ")
            head, tail = text.split("@@")
            if k:
                f.write(b",\n")
            f.write(b"    ")
            at[i] = f.tell()
            f.write(head.encode())
            _filler(f, big[i]) if i in big else f.write(b"ok")
            f.write(tail.encode())
        f.write(b"\n]\n")
    return at


def write_xml(path: Path, ids: list[int], big: dict[int, int] | None = None) -> dict[int, int]:
    big = big or {}
    at = {}
    ns = "http://schemas.microsoft.com/win/2004/08/events/event"
    with open(path, "wb") as f:
        f.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<Events>\n')
        for i in ids:
            at[i] = f.tell()
            f.write(
                f"<Event xmlns='{ns}'><System><Provider Name='Microsoft RMS connector'/>"
                f"<EventID>1000</EventID><Level>4</Level>"
                f"<TimeCreated SystemTime='2024-03-04T14:{i // 60 % 60:02d}:{i % 60:02d}Z'/>"
                f"<EventRecordID>{i}</EventRecordID><Channel>Application</Channel>"
                f"<Computer>RMSCON01.contoso.com</Computer></System><EventData><Data>".encode()
            )
            _filler(f, big[i]) if i in big else f.write(b"ok")
            f.write(b"</Data></EventData></Event>\n")
        f.write(b"</Events>\n")
    return at


_CSV_COLS = ["Message", "Id", "Level", "RecordId", "ProviderName", "LogName", "MachineName",
             "TimeCreated"]  # fmt: skip


def write_csv(path: Path, ids: list[int], big: dict[int, int] | None = None) -> dict[int, int]:
    big = big or {}
    at = {}
    with open(path, "wb") as f:
        f.write(b"#TYPE System.Diagnostics.Eventing.Reader.EventLogRecord\r\n")
        f.write(",".join(f'"{c}"' for c in _CSV_COLS).encode() + b"\r\n")
        for i in ids:
            at[i] = f.tell()
            f.write(b'"')
            _filler(f, big[i]) if i in big else f.write(b"ok\r\nsecond line")
            when = f"3/4/2024 9:{i // 60 % 60:02d}:{i % 60:02d} AM"
            rest = ["1000", "4", str(i), "Microsoft RMS connector", "Application",
                    "RMSCON01.contoso.com", when]  # fmt: skip
            f.write(b'",' + ",".join(f'"{v}"' for v in rest).encode() + b"\r\n")
    return at


def write_w3c(path: Path, ids: list[int], big: dict[int, int] | None = None) -> dict[int, int]:
    big = big or {}
    at = {}
    with open(path, "wb") as f:
        f.write(rms_text([]).encode())
        for i in ids:
            at[i] = f.tell()
            if i in big:
                row = "\t".join(rms_row(i, file_name="@@")).split("@@")
                f.write(row[0].encode())
                _filler(f, big[i])
                f.write(row[1].encode() + b"\n")
            else:
                f.write("\t".join(rms_row(i)).encode() + b"\n")
    return at


WRITERS: dict[str, tuple[Callable[..., dict[int, int]], str, str]] = {
    # format: (writer, input type, file name)
    "event_json": (write_json, "windows_events", "export.json"),
    "event_xml": (write_xml, "windows_events", "export.xml"),
    "event_csv": (write_csv, "windows_events", "export.csv"),
    "w3c_rms": (write_w3c, "rms_usage", "000000001.log"),
}


def record_id(doc: dict[str, Any]) -> int:
    """The number the writers gave a record, from its shipped event."""
    if "winlog" in doc:
        return int(doc["winlog"]["record_id"])
    return int(doc["event"]["id"][:8], 16)


# --- through the pipeline ---------------------------------------------------------------------


def ship(tmp_path: Path, input_type: str, workers: int = 1, **pipeline: Any) -> Summary:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"type": input_type, "paths": [str(tmp_path / "logs" / "*")]}],
        "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
        "pipeline": {"workers": workers, **pipeline},
    }
    return Pipeline(parse_config(cfg), once=True).run()


def shipped(tmp_path: Path) -> list[int]:
    out = tmp_path / "out.ndjson"
    lines = out.read_text().splitlines() if out.exists() else []
    return [record_id(json.loads(line)) for line in lines]


def quarantined(tmp_path: Path) -> list[dict[str, Any]]:
    path = quarantine_path(tmp_path / "data")
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_16_mib_string_in_a_json_export_is_quarantined_and_the_rest_ships(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    size = DEFAULT + MiB  # over the default bound of 16 MiB, as in the report
    at = write_json(logs / "big.json", [1, 2, 3], big={2: size})
    write_json(logs / "good.json", [10, 11])
    started = time.monotonic()
    summary = ship(tmp_path, "windows_events")
    took = time.monotonic() - started
    assert sorted(shipped(tmp_path)) == [1, 3, 10, 11]
    (q,) = quarantined(tmp_path)
    end = (logs / "big.json").read_bytes().index(b"\n    }", at[2] + size) + len(b"\n    }")
    assert q["offset"] == at[2]
    assert f"record of {end - at[2]:,} bytes exceeds max_record_bytes (16 MiB)" in q["reason"]
    assert q["raw"].startswith('{\n        "Id": 1000') and len(q["raw"]) <= HEAD
    assert summary.quarantined == 1 and summary.files_refused == 0
    assert took < 60  # 37 s and 2 GB before the fix, on the reader alone; a hang guard here


def _chunks_and_decode(path: Path, fmt: str, options: dict[str, object]) -> Iterator[Any]:
    with open(path, "rb") as f:
        for chunk in FORMATS[fmt].chunks(f, str(path), 0, "", True, options):
            yield chunk, FORMATS[fmt].decode(chunk)


def test_a_100_mb_string_is_skipped_in_memory_bounded_by_the_cap_not_the_input(tmp_path):
    path = tmp_path / "huge.json"
    at = write_json(path, [1, 2, 3], big={2: 100_000_000})
    ids, quarantine, prev_end = [], [], None
    tracemalloc.start()
    try:
        for chunk, out in _chunks_and_decode(path, "event_json", {}):
            assert prev_end in (None, chunk.start)  # positions follow each other exactly
            prev_end = chunk.end
            ids += [json.loads(d)["winlog"]["record_id"] for d in out.docs]
            quarantine += out.quarantined
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert prev_end == path.stat().st_size
    assert ids == [1, 3]
    (q,) = quarantine
    assert q.offset == at[2] and "exceeds max_record_bytes (16 MiB)" in q.reason
    # what was held: about the bound (16 MiB) plus a read block, never the 100 MB record
    assert peak < 2 * DEFAULT, f"peak {peak:,} bytes"


# One record between the bound and a read block (found when its chunk is decoded), one far
# over a read block (skipped by the reader while streaming), good records around both.
CAP = 64 * 1024
SIZES = {3: 100 * 1024, 6: 3 * MiB}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_oversized_records_cost_only_themselves_in_every_format(tmp_path, fmt):
    write, input_type, name = WRITERS[fmt]
    logs = tmp_path / "logs"
    logs.mkdir()
    at = write(logs / name, list(range(1, 9)), big=SIZES)
    write(logs / ("beside-" + name), [20, 21])
    summary = ship(tmp_path, input_type, max_record_bytes=CAP)
    assert sorted(shipped(tmp_path)) == [1, 2, 4, 5, 7, 8, 20, 21]
    q = sorted(quarantined(tmp_path), key=lambda e: e["offset"])
    assert [e["offset"] for e in q] == [at[3], at[6]]
    data = (logs / name).read_bytes()
    for entry, i in zip(q, (3, 6), strict=True):
        assert "exceeds max_record_bytes (64 KiB)" in entry["reason"]
        size = int(entry["reason"].split("record of ")[1].split(" bytes")[0].replace(",", ""))
        assert SIZES[i] < size < SIZES[i] + 2000  # the whole record, filler and fields
        assert entry["raw"].encode()[:200] == data[at[i] : at[i] + 200]
        assert len(entry["raw"].encode()) <= HEAD
    assert summary.files_refused == 0


def test_an_oversized_record_through_decoder_processes(tmp_path, monkeypatch):
    import importlib

    try:  # where the pipeline decides which chunks go to decoder processes
        routing = importlib.import_module("shipper.pipeline.routing")
    except ImportError:
        routing = importlib.import_module("shipper.pipeline")
    monkeypatch.setattr(routing, "POOL_THRESHOLD", 0)  # every chunk to a worker
    monkeypatch.setattr(routing, "REREAD_MIN", 0)
    logs = tmp_path / "logs"
    logs.mkdir()
    at = write_json(logs / "big.json", list(range(1, 9)), big=SIZES)
    ship(tmp_path, "windows_events", workers=2, max_record_bytes=CAP)
    assert sorted(shipped(tmp_path)) == [1, 2, 4, 5, 7, 8]
    assert sorted(e["offset"] for e in quarantined(tmp_path)) == [at[3], at[6]]


# --- follow mode: a record still being written ------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_a_record_being_written_is_judged_only_when_over_the_bound_or_complete(tmp_path, fmt):
    write, _, name = WRITERS[fmt]
    whole = tmp_path / ("whole-" + name)
    at = write(whole, [1, 2, 3], big={2: 3 * MiB})
    data = whole.read_bytes()
    path = tmp_path / name
    options = {"max_record_bytes": 1 * MiB}
    reader = FORMATS[fmt]

    def poll(upto: int, start: int, state: str) -> tuple[list[Any], list[Any], int, str]:
        path.write_bytes(data[:upto])
        docs, quarantine = [], []
        with open(path, "rb") as f:
            for chunk in reader.chunks(f, str(path), start, state, False, options):
                assert chunk.start == start  # positions follow each other exactly
                out = reader.decode(chunk)
                docs += out.docs
                quarantine += out.quarantined
                start, state = chunk.end, chunk.state_out
        return docs, quarantine, start, state

    # the big record half written, under the bound: record 1 ships, nothing else happens
    docs, q, start, state = poll(at[2] + 512 * 1024, 0, "")
    assert len(docs) == 1 and q == [] and start <= at[2]
    # over the bound, its end not written yet: quarantined now, once
    docs, q, start, state = poll(at[2] + 2 * MiB, start, state)
    assert docs == [] and len(q) == 1
    assert q[0].offset == at[2] and "at least" in q[0].reason and "being written" in q[0].reason
    assert start == at[2] + 2 * MiB  # read up to where it is written, not again next time
    # the rest arrives, and the record after it: that one ships, nothing is reported again
    docs, q, start, state = poll(len(data), start, state)
    assert len(docs) == 1 and q == []
