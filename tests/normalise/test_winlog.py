"""Winlogbeat compatibility: our ECS agrees with Winlogbeat's golden output field by field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from shipper.normalise.winlog import event_id, normalise
from shipper.sources import FORMATS
from shipper.sources.eventxml import parse_event_xml
from shipper.sources.wintime import iso_utc

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
GOLDEN = SHARED / "thirdparty" / "winlogbeat-golden" / "x-pack-security" / "1100.evtx.golden.json"
NS = "http://schemas.microsoft.com/win/2004/08/events/event"


def xml_from_golden(g: dict) -> str:
    """The rendered Event XML that Winlogbeat read to produce ``g`` (written for the test)."""
    w = g["winlog"]
    keywords = "".join(f"<Keyword>{k}</Keyword>" for k in w["keywords"])
    return (
        f"<Event xmlns='{NS}'><System>"
        f"<Provider Name='{w['provider_name']}' Guid='{w['provider_guid']}'/>"
        f"<EventID>{w['event_id']}</EventID><Version>0</Version><Level>4</Level>"
        f"<Task>103</Task><Opcode>0</Opcode><Keywords>0x4020000000000000</Keywords>"
        f"<TimeCreated SystemTime='{g['@timestamp']}'/>"
        f"<EventRecordID>{w['record_id']}</EventRecordID><Correlation/>"
        f"<Execution ProcessID='{w['process']['pid']}' ThreadID='{w['process']['thread']['id']}'/>"
        f"<Channel>{w['channel']}</Channel><Computer>{w['computer_name']}</Computer><Security/>"
        f"</System><UserData><ServiceShutdown xmlns='http://manifests.microsoft.com/win/2004/08/"
        f"windows/eventlog'/></UserData>"
        f"<RenderingInfo Culture='en-US'><Message>The event logging service has shut down."
        f"</Message><Level>{g['log']['level'].title()}</Level><Task>{w['task']}</Task>"
        f"<Opcode>{w['opcode']}</Opcode><Channel>Security</Channel>"
        f"<Provider>Microsoft Windows security auditing.</Provider>"
        f"<Keywords>{keywords}</Keywords></RenderingInfo></Event>"
    )


FIELDS = [
    "@timestamp", "event.code", "event.kind", "event.provider", "log.level",
    "winlog.channel", "winlog.computer_name", "winlog.event_id", "winlog.keywords",
    "winlog.opcode", "winlog.process.pid", "winlog.process.thread.id", "winlog.provider_guid",
    "winlog.provider_name", "winlog.record_id", "winlog.task",
]  # fmt: skip


def get(d: dict, dotted: str):
    if dotted in d:
        return d[dotted]
    for part in dotted.split("."):
        d = d[part]
    return d


@pytest.mark.skipif(not GOLDEN.exists(), reason="../shared/thirdparty not available")
def test_agrees_with_winlogbeat_golden_field_by_field() -> None:
    golden = json.loads(GOLDEN.read_text())[0]
    ours = normalise(parse_event_xml(xml_from_golden(golden)), "Security.xml")
    for field in FIELDS:
        assert get(ours, field) == get(golden, field), field
    # Where we differ on purpose: Winlogbeat copies the Computer into host.name as written;
    # we lower-case it (ECS: "the lowercase FQDN") and add host.hostname, the short name the
    # same server's performance counters carry too (shipper.normalise.hosts). The Computer
    # as written stays in winlog.computer_name, compared above.
    computer = golden["winlog"]["computer_name"]
    assert get(golden, "host.name") == computer
    assert ours["host"] == {"name": computer.lower(), "hostname": computer.split(".")[0].lower()}


def test_time_keeps_full_precision_and_converts_offsets() -> None:
    assert iso_utc("2019-11-07T10:37:04.2260925Z") == "2019-11-07T10:37:04.2260925Z"
    assert iso_utc("2024-03-04T09:14:07.1234567-05:00") == "2024-03-04T14:14:07.1234567Z"


def test_event_id_is_the_record_identity_whatever_the_file() -> None:
    a = {"computer": "RMSCON01.contoso.com", "channel": "Application", "provider": "P",
         "record_id": 7}  # fmt: skip
    b = dict(a, computer="rmscon01.CONTOSO.com", message="rendered differently")
    assert event_id(a, "t1") == event_id(b, "t2")
    assert len(event_id(a, "t")) == 32
    assert event_id(dict(a, record_id=8), "t") != event_id(a, "t")


def test_unknown_providers_still_ship_as_windows_events() -> None:
    rec = {
        "time": "2024-01-01T00:00:00Z",
        "event_id": "7036",
        "level": 4,
        "provider": "Service Control Manager",
        "event_data": {"param1": "Print Spooler"},
    }
    ev = normalise(rec, "x.xml")
    assert ev["event"]["dataset"] == "windows.events" and ev["event"]["module"] == "windows"
    assert ev["ecs"]["version"] == "9.4.0" and ev["log"]["file"]["path"] == "x.xml"


def ship_examples(out: Path) -> int:
    options = {"timezone": "America/New_York", "date_format": "%m/%d/%Y %I:%M:%S %p"}
    lines = []
    for path in sorted((REPO / "examples" / "windows").glob("*")):
        head = path.read_bytes()[:4096]
        fmt = next(FORMATS[n] for n in ("evtx", "event_xml", "event_json", "event_csv")
                   if FORMATS[n].sniff(head, str(path)))  # fmt: skip
        with open(path, "rb") as f:
            for chunk in fmt.chunks(f, str(path), 0, "", True, options):
                decoded = fmt.decode(chunk)
                assert not decoded.quarantined, decoded.quarantined
                lines += decoded.docs
    evtx_dir = SHARED / "thirdparty" / "evtx"
    for path in sorted(evtx_dir.glob("*.evtx")) if evtx_dir.is_dir() else []:
        with open(path, "rb") as f:
            for chunk in FORMATS["evtx"].chunks(f, str(path), 0, "", True, {}):
                lines += FORMATS["evtx"].decode(chunk).docs
    out.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def test_examples_ship_from_every_format(tmp_path: Path) -> None:
    n = ship_examples(tmp_path / "events.ndjson")
    docs = [orjson.loads(x) for x in (tmp_path / "events.ndjson").read_bytes().splitlines()]
    assert n == len(docs) > 50
    datasets = {d["event"]["dataset"] for d in docs}
    assert {"rms_connector.events", "ecma2host.events", "windows.events"} <= datasets


@pytest.mark.skipif(not (SHARED / "tools" / "ecs_check.py").exists(), reason="no ../shared")
def test_ecs_checker_passes_on_all_output(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    ship_examples(events)
    result = subprocess.run(
        [sys.executable, str(SHARED / "tools" / "ecs_check.py"),
         "--ecs", str(SHARED / "ecs" / "ecs_flat.yml"),
         "--custom-prefix", "winlog.", "--custom-prefix", "rms_connector.",
         "--custom-prefix", "ecma2host.", str(events)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
