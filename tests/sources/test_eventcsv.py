"""Event Viewer CSV/TXT and PowerShell Export-Csv exports."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shipper.sources import FORMATS
from shipper.sources.eventcsv import EVENT_CSV
from shipper.sources.windows_events import Settings as WindowsEventsInput

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "windows"
NEW_YORK = {"timezone": "America/New_York", "date_format": "%m/%d/%Y %I:%M:%S %p"}


def ship(path: Path, options: dict[str, object] = NEW_YORK):
    docs, quarantined = [], []
    with open(path, "rb") as f:
        for chunk in EVENT_CSV.chunks(f, str(path), 0, "", True, options):
            out = EVENT_CSV.decode(chunk)
            assert out.refused is None
            docs += [orjson.loads(d) for d in out.docs]
            quarantined += out.quarantined
    return docs, quarantined


@pytest.mark.parametrize(
    "name", ["eventviewer_multiline.csv", "eventviewer_tab_utf16.txt", "exportcsv_type_line.csv"]
)
def test_detected_by_content(name: str) -> None:
    path = FIX / name
    head = path.read_bytes()[:4096]
    assert [n for n in WindowsEventsInput.default_formats if FORMATS[n].sniff(head, str(path))] == [
        "event_csv"
    ]


def test_event_viewer_csv_local_dates_become_utc_and_messages_stay_whole() -> None:
    docs, quarantined = ship(FIX / "eventviewer_multiline.csv")
    assert not quarantined and len(docs) == 12
    first = docs[0]
    assert first["@timestamp"] == "2024-03-04T14:14:07Z"  # 9:14:07 AM EST
    assert first["event"]["code"] == "1000" and first["log"]["level"] == "information"
    sid = [d for d in docs if d["event"]["code"] == "1002"][0]
    assert "Computer Name: EXCH01.contoso.com" in sid["message"]
    assert sid["user"]["id"].startswith("S-1-5-21-")


def test_tab_delimited_utf16_text_export() -> None:
    docs, quarantined = ship(FIX / "eventviewer_tab_utf16.txt")
    assert not quarantined and len(docs) == 8
    assert {d["event"]["dataset"] for d in docs} == {"ecma2host.events"}


def test_a_date_in_another_format_is_a_clear_error_not_a_guess() -> None:
    docs, quarantined = ship(FIX / "eventviewer_bad_date.csv")
    assert len(quarantined) == 1
    assert "does not match date_format" in quarantined[0].reason
    assert quarantined[0].line == 2
    assert len(docs) == 1


def test_content_ids_are_stable_across_overlapping_exports() -> None:
    a, _ = ship(FIX / "eventviewer_multiline.csv")
    b, _ = ship(FIX / "eventviewer_multiline.csv")
    assert [d["event"]["id"] for d in a] == [d["event"]["id"] for d in b]
    assert len({d["event"]["id"] for d in a}) == len(a)


def test_powershell_export_csv_has_record_ids() -> None:
    docs, quarantined = ship(FIX / "exportcsv_type_line.csv")
    assert not quarantined and len(docs) == 5
    d = docs[0]
    assert d["winlog"]["record_id"] == 40211
    assert d["winlog"]["computer_name"] == "RMSCON01.contoso.com"
    assert d["winlog"]["channel"] == "Application"
    assert d["winlog"]["keywords"] == ["Classic"]


def test_a_message_that_reads_like_the_type_line_is_an_event(tmp_path: Path) -> None:
    """``#TYPE`` is skipped where Export-Csv writes it, at the start of a line; a record whose
    first field (the message) says ``#TYPE ...`` is quoted there and ships like any other."""
    head = '"Message","Id","Level","RecordId","ProviderName","LogName","MachineName","TimeCreated"'
    row = '"{}","1000","4","{}","Microsoft RMS connector","Application","RMSCON01",'
    row += '"3/4/2024 9:00:0{} AM"'
    lines = ["#TYPE System.Diagnostics.Eventing.Reader.EventLogRecord", head]
    lines += [row.format(msg, n, n) for n, msg in enumerate(["ok", "#TYPE", "#TYPE x"], 1)]
    path = tmp_path / "export.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    docs, quarantined = ship(path, {"date_format": "%m/%d/%Y %I:%M:%S %p"})
    assert not quarantined
    assert [d["winlog"]["record_id"] for d in docs] == [1, 2, 3]
    assert [d["message"] for d in docs] == ["ok", "#TYPE", "#TYPE x"]
