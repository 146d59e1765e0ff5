"""`shipper run --once` over Windows event exports, end to end, as a user runs it.

The examples hold the same records in several formats (the ECMA2Host records 1201-1208 in
wevtutil XML, Event Viewer's saved XML, ConvertTo-Json and Export-Csv; the RMS connector
records 40217-40221 in rendered XML and ConvertTo-Json), so cross-format dedupe is exercised
by the examples themselves. Event Viewer CSV/TXT exports carry no record id and are identified
by content, so they cannot be matched with the other formats (see ``normalise.winlog``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from shipper.sources.evtx_file import EVTX

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EVTX_DIR = SHARED / "thirdparty" / "evtx"
NEW_YORK = {"timezone": "America/New_York", "date_format": "%m/%d/%Y %I:%M:%S %p"}

# ok / quarantined, from the peer's tests (../shared/thirdparty/SOURCES.md) where it gives them
PEER_EXPECTED = {
    "Application_no_crc32.evtx": (17, 0),
    "post-Security.evtx": (126, 0),
    "Microsoft-Windows-HelloForBusiness%4Operational.evtx": (6, 0),
    "Microsoft-Windows-LanguagePackSetup%4Operational.evtx": (17, 0),
    "sample_with_a_bad_chunk_magic.evtx": (270, 2),
    "sample-with-zero-data-size-event.evtx": (335, 1),
}


def write_config(tmp_path: Path, paths: list[str], keep_original: bool = False) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"type": "windows_events", "paths": paths, **NEW_YORK}],
        "outputs": [{"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")}],
        "pipeline": {"workers": 1, "keep_original": keep_original},
    }
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def output(tmp_path: Path) -> Path:
    return tmp_path / "out" / "events.ndjson"


def events(tmp_path: Path) -> list[dict]:
    out = output(tmp_path)
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def quarantine_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "quarantine.jsonl"


def summary(stderr: str) -> dict[str, int]:
    m = re.search(
        r"shipped ([\d,]+) events, ([\d,]+) duplicates skipped, ([\d,]+) lines quarantined,"
        r" ([\d,]+) files refused(?:, [\d,]+ dead-lettered)?; ([\d,]+) files read",
        stderr,
    )
    assert m, stderr
    keys = ("events", "duplicates", "quarantined", "refused", "files")
    return {k: int(v.replace(",", "")) for k, v in zip(keys, m.groups(), strict=True)}


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith(b"\xff\xfe"):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig")


def records_in(path: Path) -> int:
    """Records in an export, counted without the shipper."""
    text = _text(path)
    if path.suffix == ".xml":
        return len(re.findall(r"<Event[\s>]", text))
    if path.suffix == ".json":
        data = json.loads(text)
        return len(data) if isinstance(data, list) else 1
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith("#TYPE")]
    delim = "\t" if path.suffix == ".txt" else ","
    rows = list(csv.reader(io.StringIO("".join(lines), newline=""), delimiter=delim))
    return len([r for r in rows if any(c.strip() for c in r)]) - 1  # minus the header


def run(cli, tmp_path: Path, cfg: Path, cwd: Path | None = None):
    result = cli("run", "--once", "--no-progress", str(cfg), cwd=cwd or tmp_path)
    assert result.returncode == 0, result.stderr
    return summary(result.stderr)


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    folder = tmp_path / "windows"
    shutil.copytree(REPO / "examples" / "windows", folder)
    return folder


def test_every_example_ships_once_with_unique_ids(tmp_path, examples, cli):
    cfg = write_config(tmp_path, [str(examples / "*")])
    files = sorted(examples.iterdir())
    total = sum(records_in(p) for p in files)
    first = run(cli, tmp_path, cfg)
    assert first["files"] == len(files) == 9
    assert first["refused"] == first["quarantined"] == 0
    docs = events(tmp_path)
    ids = [d["event"]["id"] for d in docs]
    assert len(ids) == len(set(ids)) == first["events"]
    # every record is shipped or recognised as the same record from another export
    assert first["events"] + first["duplicates"] == total
    assert first["duplicates"] > 0  # the same records in XML, JSON and Export-Csv
    datasets = Counter(d["event"]["dataset"] for d in docs)
    assert {"rms_connector.events", "ecma2host.events", "windows.events"} <= set(datasets)
    shipped_from = {Path(d["log"]["file"]["path"]).name for d in docs}
    assert {"ecma2host_eventviewer.txt", "rms_connector_eventviewer.csv"} <= shipped_from
    # ECMA2Host records 1201..1208 and RMS connector 40211..40221 (+40230), each exactly once
    rids = Counter(
        (d["winlog"]["computer_name"].lower(), d["winlog"]["record_id"])
        for d in docs
        if "record_id" in d["winlog"]
    )
    assert max(rids.values()) == 1
    assert {r for (c, r) in rids if c.startswith("prov01")} == set(range(1201, 1209))

    again = run(cli, tmp_path, cfg)
    assert again["events"] == 0 and again["files"] == 0  # nothing new: files not even opened
    assert len(events(tmp_path)) == len(docs)


def test_a_re_export_under_another_name_ships_nothing_new(tmp_path, examples, cli):
    cfg = write_config(tmp_path, [str(examples / "*")])
    run(cli, tmp_path, cfg)
    before = len(events(tmp_path))
    copies = {
        "rms_connector_wevtutil_rendered.xml": "rms_connector_wevtutil_rendered (2).xml",
        "ecma2host_eventviewer.txt": "ecma2host_eventviewer-again.txt",
        "rms_connector_convertto-json_ps5.json": "rms_connector_again.json",
        "ecma2host_export-csv_pwsh7.csv": "ecma2host_export-csv_again.csv",
    }
    for src, dst in copies.items():
        shutil.copy(examples / src, examples / dst)
    second = run(cli, tmp_path, cfg)
    assert second["events"] == 0
    assert second["files"] == len(copies)
    assert second["duplicates"] == sum(records_in(examples / s) for s in copies)
    assert len(events(tmp_path)) == before


def test_the_same_records_in_another_format_ship_nothing_new(tmp_path, examples, cli):
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    shutil.move(examples / "ecma2host_wevtutil_ps5.xml", first_dir)  # records 1201..1208
    cfg = write_config(tmp_path, [str(first_dir / "*"), str(tmp_path / "later" / "*")])
    first = run(cli, tmp_path, cfg)
    assert (first["events"], first["duplicates"]) == (8, 0)
    later = tmp_path / "later"
    later.mkdir()
    for name in (
        "ecma2host_convertto-json_pwsh7.json",  # 1201..1205, PowerShell 7 JSON
        "ecma2host_saved_events.xml",  # 1201..1204, Event Viewer "Save as XML"
        "ecma2host_export-csv_pwsh7.csv",  # PowerShell Export-Csv, 1205..1208
    ):
        shutil.copy(examples / name, later)
    second = run(cli, tmp_path, cfg)
    assert second["events"] == 0
    assert second["duplicates"] == sum(records_in(p) for p in later.iterdir()) == 5 + 4 + 4
    assert len(events(tmp_path)) == 8


def test_an_export_read_with_another_time_zone_still_matches_its_records(tmp_path, examples, cli):
    """Export-Csv writes local times; read with a time zone 19 hours off, its records fall on
    the day before, and dedupe (which files ids by event day) must still find them."""
    first_dir, later = tmp_path / "first", tmp_path / "later"
    first_dir.mkdir()
    later.mkdir()
    shutil.move(examples / "ecma2host_wevtutil_ps5.xml", first_dir)  # 1201..1208, UTC times
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [
                    {"type": "windows_events", "paths": [str(first_dir / "*")], **NEW_YORK},
                    {
                        "type": "windows_events",
                        "paths": [str(later / "*")],
                        "timezone": "Pacific/Kiritimati",  # UTC+14, not the exporter's zone
                        "date_format": NEW_YORK["date_format"],
                    },
                ],
                "outputs": [{"type": "ndjson", "path": str(output(tmp_path))}],
                "pipeline": {"workers": 1},
            }
        )
    )
    assert run(cli, tmp_path, cfg)["events"] == 8
    shutil.copy(examples / "ecma2host_export-csv_pwsh7.csv", later)  # 1205..1208, local times
    got = run(cli, tmp_path, cfg)  # looked up in the store, not among events in flight
    assert (got["events"], got["duplicates"]) == (0, 4)
    stamps = {e["event"]["id"]: e["@timestamp"] for e in events(tmp_path)}
    assert all(t.startswith("2024-03-04") for t in stamps.values())  # the XML's copies shipped


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside the repository")
def test_output_passes_the_ecs_checker(tmp_path, examples, cli):
    cfg = write_config(tmp_path, [str(examples / "*")])
    run(cli, tmp_path, cfg)
    check = subprocess.run(
        [
            sys.executable,
            str(SHARED / "tools" / "ecs_check.py"),
            "--ecs",
            str(SHARED / "ecs" / "ecs_flat.yml"),
            "--custom-prefix",
            "winlog.",
            "--custom-prefix",
            "rms_connector.",
            "--custom-prefix",
            "ecma2host.",
            str(output(tmp_path)),
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _evtx_samples() -> list[Path]:
    return sorted(EVTX_DIR.glob("*.evtx")) if EVTX_DIR.is_dir() else []


def _format_level(path: Path) -> tuple[list[str], int]:
    """What the format-level tests see: every doc's id, and the quarantined count."""
    ids, quarantined = [], 0
    with open(path, "rb") as f:
        for chunk in EVTX.chunks(f, str(path), 0, "", True, {}):
            out = EVTX.decode(chunk)
            ids += out.ids
            quarantined += len(out.quarantined)
    return ids, quarantined


@pytest.mark.skipif(not EVTX_DIR.is_dir(), reason="../shared/thirdparty not available")
@pytest.mark.parametrize("sample", _evtx_samples(), ids=lambda p: p.name)
def test_evtx_samples_through_the_cli(tmp_path, sample, cli):
    folder = tmp_path / "evtx"
    folder.mkdir()
    shutil.copy(sample, folder)
    cfg = write_config(tmp_path, [str(folder / "*.evtx")])
    got = run(cli, tmp_path, cfg)
    ids, quarantined = _format_level(sample)
    assert got["files"] == 1
    assert got["events"] == len(set(ids)) > 0
    assert got["events"] + got["duplicates"] == len(ids)
    assert got["quarantined"] == quarantined
    if sample.name in PEER_EXPECTED:
        ok, bad = PEER_EXPECTED[sample.name]
        assert (got["events"] + got["duplicates"], got["quarantined"]) == (ok, bad)
    lines = quarantine_file(tmp_path).read_text().splitlines()
    assert len(lines) == quarantined
    assert len(events(tmp_path)) == got["events"]


SECRET = "Hunter2"
ECMA_XML = """<Events>
<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>
<Provider Name='ConnectorsLog'/><EventID Qualifiers='0'>0</EventID><Level>2</Level>
<TimeCreated SystemTime='2024-03-04T14:20:07.1234567Z'/><EventRecordID>9001</EventRecordID>
<Channel>ECMA2Host</Channel><Computer>PROV01.contoso.com</Computer></System>
<EventData><Data>Export failed for connector 'CORPDB1': cannot open
Server=sql01;Database=hr;User Id=svc-ecma;Password={s};
    ProcessId=4412</Data></EventData></Event>
<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>
<Provider Name='ConnectorsLog'/><EventID>0</EventID><Level>2</Level>
<TimeCreated SystemTime='2024-03-04T14:21:07Z'/><EventRecordID>9002</EventRecordID>
<Channel>ECMA2Host</Channel><Computer>PROV01.contoso.com</Computer></System>
<EventData><Data>Retry with Password={s}; failed<Data></EventData></Event>
</Events>
""".replace("{s}", SECRET)
ECMA_CSV = (
    "Level,Date and Time,Source,Event ID,Task Category\r\n"
    'Error,3/4/2024 9:30:07 AM,ConnectorsLog,0,None,"Login failed: Password={s};"\r\n'
    'Error,2024-03-04 09:31:07,ConnectorsLog,0,None,"Login failed: Password={s};"\r\n'
).replace("{s}", SECRET)
ECMA_JSON = json.dumps(
    [
        {
            "Id": 0,
            "ProviderName": "ConnectorsLog",
            "LogName": "ECMA2Host",
            "MachineName": "PROV01.contoso.com",
            "RecordId": 9003,
            "TimeCreated": "2024-03-04T09:32:07.1234567-05:00",
            "Message": f"Connection string: Server=sql01;Password={SECRET};",
            "Properties": [{"Value": f"Connection string: Server=sql01;Password={SECRET};"}],
        },
        {"Id": 0, "ProviderName": "ConnectorsLog", "Message": f"Password={SECRET};"},
    ]
)


@pytest.mark.parametrize("keep_original", [False, True])
def test_a_secret_never_reaches_the_output_or_the_quarantine(tmp_path, cli, keep_original):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "ecma.xml").write_text(ECMA_XML)
    (folder / "ecma.csv").write_text(ECMA_CSV)
    (folder / "ecma.json").write_text(ECMA_JSON)
    cfg = write_config(tmp_path, [str(folder / "*")], keep_original=keep_original)
    got = run(cli, tmp_path, cfg)
    assert got["events"] == 3 and got["quarantined"] == 3  # one bad record in each file
    out = output(tmp_path).read_text()
    bad = quarantine_file(tmp_path).read_text()
    assert "Password=***" in out and "***" in bad
    assert SECRET not in out and SECRET not in bad
    assert SECRET.lower() not in (out + bad).lower()


def test_examples_windows_yaml_runs_from_the_repository_root(tmp_path, cli):
    """``shipper run --once examples/windows.yaml`` from the repository root, on a copy."""
    root = tmp_path / "checkout"
    (root / "examples").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "windows.yaml", root / "examples")
    shutil.copytree(REPO / "examples" / "windows", root / "examples" / "windows")
    result = cli("run", "--once", "--no-progress", "examples/windows.yaml", cwd=root)
    assert result.returncode == 0, result.stderr
    got = summary(result.stderr)
    assert got["files"] == 9 and got["events"] > 0 and got["quarantined"] == 0
    out = root / "out" / "windows-events.ndjson"
    assert len(out.read_text().splitlines()) == got["events"]
    assert (root / ".shipper-data" / "windows-example" / "checkpoint.sqlite").exists()
