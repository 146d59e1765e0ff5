"""Event XML exports: wevtutil streams, Event Viewer's <Events> files, rendered XML."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shipper.sources import FORMATS
from shipper.sources.eventxml import EVENT_XML
from shipper.sources.windows_events import Settings as WindowsEventsInput

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "windows"
THIRDPARTY = Path(__file__).resolve().parents[2] / ".." / "shared" / "thirdparty"


def ship(path: Path, final: bool = True, start: int = 0, state: str = ""):
    docs, quarantined, chunks = [], [], []
    with open(path, "rb") as f:
        for chunk in EVENT_XML.chunks(f, str(path), start, state, final, {}):
            chunks.append(chunk)
            out = EVENT_XML.decode(chunk)
            docs += [orjson.loads(d) for d in out.docs]
            quarantined += out.quarantined
    return docs, quarantined, chunks


@pytest.mark.parametrize(
    "name", ["wevtutil_stream_rendered.xml", "saved_events_root.xml", "wevtutil_utf16le_bom.xml"]
)
def test_every_xml_export_shape_is_recognised_and_ships(name: str) -> None:
    path = FIX / name
    head = path.read_bytes()[:4096]
    assert [n for n in WindowsEventsInput.default_formats if FORMATS[n].sniff(head, str(path))] == [
        "event_xml"
    ]
    docs, quarantined, _ = ship(path)
    assert docs and not quarantined
    assert all(d["@timestamp"].endswith("Z") for d in docs)


def test_rendered_xml_gives_message_and_names() -> None:
    docs, _, _ = ship(FIX / "wevtutil_stream_rendered.xml")
    first = docs[0]
    assert first["message"] == "The Microsoft RMS connector web service has started."
    assert first["log"]["level"] == "information"
    assert first["winlog"]["keywords"] == ["Classic"]
    assert first["winlog"]["opcode"] == "Info"
    other = [d for d in docs if d["event"]["provider"] == "MSSQLSERVER"]
    assert other and other[0]["event"]["dataset"] == "windows.events"
    assert other[0]["winlog"]["event_data"] == {"param1": "RmsConnectorCache"}


def test_a_malformed_event_costs_only_itself() -> None:
    docs, quarantined, _ = ship(FIX / "malformed_middle_event.xml")
    assert len(docs) == 2
    assert len(quarantined) == 1 and "malformed event XML" in quarantined[0].reason
    assert quarantined[0].raw.startswith("<Event")


def test_an_unfinished_last_event_waits_until_the_file_is_complete() -> None:
    path = FIX / "truncated_last_event.xml"
    docs, quarantined, chunks = ship(path, final=False)
    assert len(docs) == 1 and not quarantined
    end = chunks[-1].end
    assert path.read_bytes()[:end].endswith(b"</Event>")
    # resuming at the committed end repeats nothing
    again, _, _ = ship(path, final=False, start=end, state=chunks[-1].state_out)
    assert again == []


def test_resume_mid_file_neither_skips_nor_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    import shipper.sources.text as text

    path = FIX / "wevtutil_utf16le_bom.xml"
    whole, _, _ = ship(path)
    monkeypatch.setattr(text, "BLOCK", 1000)
    docs, _, chunks = ship(path)
    assert len(chunks) > 2
    assert [d["event"]["id"] for d in docs] == [d["event"]["id"] for d in whole]
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:], strict=False))


def test_beats_rendering_agrees_field_by_field() -> None:
    src = THIRDPARTY / "eventexports" / "beats-wineventlog-testdata"
    path = src / "application-windows-error-reporting.xml"
    if not path.exists():
        pytest.skip("../shared/thirdparty not available")
    docs, quarantined, _ = ship(path)
    assert not quarantined and len(docs) == 1
    d = docs[0]
    assert d["@timestamp"] == "2020-02-18T02:52:37.1211986Z"
    assert d["event"]["code"] == d["winlog"]["event_id"] == "1001"
    assert d["event"]["provider"] == d["winlog"]["provider_name"] == "Windows Error Reporting"
    assert d["winlog"]["channel"] == "Application"
    assert d["winlog"]["record_id"] == 420107
    assert d["winlog"]["computer_name"] == d["host"]["name"] == "vagrant"
    assert d["winlog"]["keywords"] == ["Classic"]
    assert d["log"]["level"] == "information"
    data = d["winlog"]["event_data"]
    assert data["param3"] == "WindowsWcpOtherFailure3"
    assert data["param16"].count("\n") == 17  # the multi-line value survives whole
    assert "param1" not in data  # empty values are left out, numbering kept


def test_bytes_invalid_in_the_encoding_cost_nothing(tmp_path: Path) -> None:
    raw = (FIX / "wevtutil_stream_rendered.xml").read_bytes()
    i = raw.index(b"web service has started")
    path = tmp_path / "bad_bytes.xml"
    path.write_bytes(raw[:i] + b"\xff\xfe" + raw[i:])
    docs, quarantined, _ = ship(path)
    whole, _, _ = ship(FIX / "wevtutil_stream_rendered.xml")
    assert len(docs) == len(whole) and not quarantined
    assert "\ufffd\ufffdweb service has started" in docs[0]["winlog"]["event_data"]["param1"]


def test_a_time_that_is_not_a_time_costs_only_its_event(tmp_path: Path) -> None:
    raw = (FIX / "wevtutil_stream_rendered.xml").read_bytes()
    first = raw.index(b"SystemTime='") + len(b"SystemTime='")
    end = raw.index(b"'", first)
    path = tmp_path / "bad_time.xml"
    path.write_bytes(raw[:first] + b"yesterday" + raw[end:])
    docs, quarantined, _ = ship(path)
    whole, _, _ = ship(FIX / "wevtutil_stream_rendered.xml")
    assert len(docs) == len(whole) - 1
    assert len(quarantined) == 1 and "'yesterday' is not ISO 8601" in quarantined[0].reason
