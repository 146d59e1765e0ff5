"""PowerShell ConvertTo-Json exports (Windows PowerShell 5 and PowerShell 7)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.sources import FORMATS
from shipper.sources.eventjson import EVENT_JSON, JsonScanner, records
from shipper.sources.windows_events import Settings as WindowsEventsInput

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "windows"


def ship(path: Path, start: int = 0, state: str = "", final: bool = True):
    docs, quarantined, chunks = [], [], []
    with open(path, "rb") as f:
        for chunk in EVENT_JSON.chunks(f, str(path), start, state, final, {}):
            chunks.append(chunk)
            out = EVENT_JSON.decode(chunk)
            docs += [orjson.loads(d) for d in out.docs]
            quarantined += out.quarantined
    return docs, quarantined, chunks


@pytest.mark.parametrize(
    "name", ["convertto_json_ps5_msdate_utf16.json", "convertto_json_pwsh7_iso.json"]
)
def test_detected_by_content_and_shipped(name: str) -> None:
    path = FIX / name
    head = path.read_bytes()[:4096]
    assert [n for n in WindowsEventsInput.default_formats if FORMATS[n].sniff(head, str(path))] == [
        "event_json"
    ]
    docs, quarantined, _ = ship(path)
    assert docs and not quarantined


def test_windows_powershell_date_is_utc_milliseconds() -> None:
    docs, _, _ = ship(FIX / "convertto_json_ps5_msdate_utf16.json")
    assert docs[0]["@timestamp"].endswith("Z")
    assert len(docs[0]["@timestamp"].split(".")[1]) == 7  # .123000Z: ms precision, ISO form


def test_powershell7_offset_date_becomes_utc() -> None:
    docs, _, _ = ship(FIX / "convertto_json_pwsh7_iso.json")
    assert docs[0]["@timestamp"] == "2024-03-04T14:14:07.1270591Z"
    assert docs[0]["winlog"]["event_data"]["param1"].startswith("ECMA2Host service started")


def test_unfinished_array_waits_for_the_writer(tmp_path: Path) -> None:
    whole = (FIX / "convertto_json_pwsh7_iso.json").read_bytes()
    cut = whole.index(b'"Id"', 400)  # inside the second record
    part = tmp_path / "partial.json"
    part.write_bytes(whole[:cut])
    docs, _, chunks = ship(part, final=False)
    assert len(docs) == 1
    part.write_bytes(whole)
    rest, _, _ = ship(part, start=chunks[-1].end, state=chunks[-1].state_out)
    full, _, _ = ship(part)
    assert [d["event"]["id"] for d in docs + rest] == [d["event"]["id"] for d in full]


def test_scanner_ignores_braces_inside_strings() -> None:
    text = '[{"a": "}{\\"]"}, {"b": [1, {"c": 2}]}]'
    assert [text[s:e] for s, e in records(text, 0)] == ['{"a": "}{\\"]"}', '{"b": [1, {"c": 2}]}']


def test_a_raw_line_break_ends_a_string_so_a_lost_quote_costs_one_record() -> None:
    text = '[\n  {"a": "x},\n   "b": 1},\n  {"c": "}{"}\n]'
    assert [text[s:e] for s, e in records(text, 0)][-1] == '{"c": "}{"}'


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.integers(0, 4000), max_size=6), st.text(max_size=40))
def test_scanning_in_pieces_finds_what_scanning_whole_finds(cuts: list[int], value: str) -> None:
    """Records and strings may straddle read blocks anywhere (an escape, a quote, a brace)."""
    whole = (FIX / "convertto_json_pwsh7_iso.json").read_text()
    whole = whole.replace('"Message": "', '"Message": ' + json.dumps(value)[:-1], 1)
    one = JsonScanner(0)
    expect = one.feed(whole)
    pieces = JsonScanner(0)
    found, prev = [], 0
    for cut in [*sorted(c % (len(whole) + 1) for c in cuts), len(whole)]:
        found += [prev + e for e in pieces.feed(whole[prev:cut])]
        prev = cut
    assert found == expect and expect
