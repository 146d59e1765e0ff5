"""``Get-Counter | ConvertTo-Json`` exports: sample sets and bare samples, both PowerShells."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from shipper.sources import FORMATS
from shipper.sources.perfjson import PERF_JSON
from shipper.sources.windows_perf import Settings

OBJ = "\\\\rmscon01\\microsoft rights management connector\\"
SINCE = OBJ + "time since last authorization policy update"
CONN = OBJ + "licensing successful batched request average connector response time"
CPU = "\\\\rmscon01\\processor(_total)\\% processor time"
FIELD = "time_since_last_authorization_policy_update_seconds"


def sample(path: str, value: Any, stamp: Any, status: int = 0, **more: Any) -> dict[str, Any]:
    """A PerformanceCounterSample as ConvertTo-Json writes it."""
    inst = path.split("(")[1].split(")")[0] if "(" in path else ""
    return {
        "Path": path,
        "InstanceName": inst,
        "CookedValue": value,
        "RawValue": 0,
        "SecondValue": 0,
        "MultipleCount": 1,
        "CounterType": 65536,
        "Timestamp": stamp,
        "Timestamp100NSec": 133540164001230000,
        "Status": status,
        "DefaultScale": 0,
        "TimeBase": 10000000,
        **more,
    }


def sample_set(stamp: Any, samples: list[Any]) -> dict[str, Any]:
    return {
        "Timestamp": stamp,
        "Timestamp100NSec": 133540164001230000,
        "CounterSamples": samples,
        "Readings": "...",
    }


def write_ps5(path: Path, data: Any) -> Path:
    """Windows PowerShell 5: ``\\/Date(ms)\\/``, UTF-16LE with BOM when redirected."""
    text = json.dumps(data, indent=4).replace("/Date(", "\\/Date(").replace(")/", ")\\/")
    path.write_bytes(b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le"))
    return path


def ship(path: Path, options: dict[str, object] | None = None):
    docs, quarantined = [], []
    with open(path, "rb") as f:
        for chunk in PERF_JSON.chunks(f, str(path), 0, "", True, options or {"timezone": "UTC"}):
            out = PERF_JSON.decode(chunk)
            assert out.refused is None
            docs += [orjson.loads(d) for d in out.docs]
            quarantined += out.quarantined
    return docs, quarantined


def test_windows_powershell_sample_sets_in_utf16(tmp_path: Path) -> None:
    # Get-Counter -MaxSamples 2 | ConvertTo-Json -Depth 3 > perf.json
    ms1, ms2 = 1709542800123, 1709542815125  # 2024-03-04T09:00:00.123Z, 09:00:15.125Z
    data = [
        sample_set(
            f"/Date({ms1})/",
            [
                sample(SINCE, 412, f"/Date({ms1})/"),
                sample(CONN, 35.5, f"/Date({ms1})/"),
                sample(CPU, 3.25, f"/Date({ms1})/"),
            ],
        ),
        sample_set(
            f"/Date({ms2})/",
            [
                sample(SINCE, 427, f"/Date({ms2})/"),
                sample(CONN, 0, f"/Date({ms2})/", status=0xC0000BC6),
                sample(CPU, 12.5, f"/Date({ms2})/"),
            ],
        ),
    ]
    path = write_ps5(tmp_path / "perf.json", data)
    assert [
        n for n in Settings.default_formats if FORMATS[n].sniff(path.read_bytes()[:4096], "x")
    ] == ["perf_json"]
    docs, quarantined = ship(path)
    assert not quarantined
    got = [
        (d["@timestamp"], d["event"]["dataset"], d.get("rms_connector"), d.get("windows"))
        for d in docs
    ]
    assert got == [
        (
            "2024-03-04T09:00:00.123Z",
            "rms_connector.perf",
            {
                "perf": {
                    FIELD: 412.0,
                    "licensing_successful_batched": {"connector_response_time_ms": 35.5},
                }
            },
            None,
        ),
        (
            "2024-03-04T09:00:00.123Z",
            "windows.perf",
            None,
            {
                "perf": {
                    "object": "processor",
                    "instance": "_total",
                    "processor": {"pct_processor_time": 3.25},
                }
            },
        ),
        # a sample whose Status is an error (PDH_INVALID_DATA) is a missing value
        ("2024-03-04T09:00:15.125Z", "rms_connector.perf", {"perf": {FIELD: 427.0}}, None),
        (
            "2024-03-04T09:00:15.125Z",
            "windows.perf",
            None,
            {
                "perf": {
                    "object": "processor",
                    "instance": "_total",
                    "processor": {"pct_processor_time": 12.5},
                }
            },
        ),
    ]
    assert all(d["host"]["name"] == "rmscon01" for d in docs)
    assert all(
        type(v) is float
        for v in docs[0]["rms_connector"]["perf"].values()
        if not isinstance(v, dict)
    )


def test_powershell_7_one_sample_set_with_local_offset(tmp_path: Path) -> None:
    stamp = "2024-03-04T10:00:00.1234567+01:00"
    data = sample_set(stamp, [sample(SINCE, 901, stamp), sample(CONN, 210.125, stamp)])
    path = tmp_path / "pwsh.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    docs, quarantined = ship(path)
    assert not quarantined
    assert [(d["@timestamp"], d["rms_connector"]["perf"]) for d in docs] == [
        (
            "2024-03-04T09:00:00.123456Z",
            {FIELD: 901.0, "licensing_successful_batched": {"connector_response_time_ms": 210.125}},
        ),
    ]


def test_bare_samples_and_times_without_offset_use_the_input_zone(tmp_path: Path) -> None:
    # (Get-Counter ...).CounterSamples | ConvertTo-Json, times written without an offset
    data = [sample(SINCE, 5, "2024-07-01T12:00:00"), sample(CONN, 6, "2024-07-01T12:00:00")]
    path = tmp_path / "samples.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    docs, _ = ship(path, {"timezone": "Europe/Berlin"})
    assert [(d["@timestamp"], d["rms_connector"]["perf"]) for d in docs] == [
        (
            "2024-07-01T10:00:00.000Z",
            {FIELD: 5.0, "licensing_successful_batched": {"connector_response_time_ms": 6.0}},
        ),
    ]


def test_the_same_sample_as_csv_and_as_json_is_one_event(tmp_path: Path) -> None:
    from shipper.sources.perfcsv import PERF_CSV

    csv = tmp_path / "a.csv"
    csv.write_text(
        '"(PDH-CSV 4.0) (W. Europe Standard Time)(-60)",'
        '"\\\\RMSCON01\\Microsoft Rights Management connector\\'
        'Time since last authorization policy update"\r\n'
        '"03/04/2024 10:00:00.123","412"\r\n'
    )
    with open(csv, "rb") as f:
        (chunk,) = PERF_CSV.chunks(f, str(csv), 0, "", True, {})
        from_csv = orjson.loads(PERF_CSV.decode(chunk).docs[0])
    path = write_ps5(
        tmp_path / "b.json",
        sample_set("/Date(1709542800123)/", [sample(SINCE, 412, "/Date(1709542800123)/")]),
    )
    (from_json,), _ = ship(path)
    assert from_csv["@timestamp"] == "2024-03-04T09:00:00.123Z"
    assert from_json["@timestamp"] == "2024-03-04T09:00:00.123Z"
    assert from_csv["event"]["id"] == from_json["event"]["id"]


def test_default_depth_and_bad_records_are_quarantined_with_the_reason(tmp_path: Path) -> None:
    # ConvertTo-Json's default -Depth 2 on an array of sample sets writes the samples' type name
    typename = "Microsoft.PowerShell.Commands.GetCounter.PerformanceCounterSample"
    good = sample_set(
        "/Date(1709542800000)/",
        [sample(SINCE, 1, "/Date(1709542800000)/"), sample(CONN, "n/a", "/Date(1709542800000)/")],
    )
    data = [sample_set("/Date(1709542800000)/", typename), good, {"Id": 1000}]
    path = write_ps5(tmp_path / "depth2.json", data)
    docs, quarantined = ship(path)
    reasons = [q.reason for q in quarantined]
    assert len(reasons) == 3
    assert "-Depth 3" in reasons[0]
    assert "'n/a' is not a number" in reasons[1]
    assert "not a Get-Counter sample" in reasons[2]
    assert all(q.path == str(path) and q.offset > 0 for q in quarantined)
    assert [d["rms_connector"]["perf"] for d in docs] == [{FIELD: 1.0}]
