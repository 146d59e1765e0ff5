"""PDH CSV counter logs (typeperf, relog, Export-Counter): values, times and bad lines.

Every file is written by the test in the shape the tool writes: the ``(PDH-CSV 4.0)
(<zone>)(<bias>)`` header cell, ``\\\\HOST\\Object(Instance)\\Counter`` columns, quoted local
times and values, CRLF line ends, blank or ``" "`` for a missing sample.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shipper.sources import FORMATS
from shipper.sources.perfcsv import PERF_CSV
from shipper.sources.windows_perf import Settings

RMS = "Microsoft Rights Management connector"
SINCE = "Time since last authorization policy update"
CONN = "Licensing Successful Batched Request Average Connector Response Time"
SERV = "Licensing Successful Batched Request Average Service Response Time"
PROC = "Licensing Successful Batched Request Average Connector Processing Time"


def pdh_file(
    path: Path,
    zone: str | None,
    bias: int | None,
    columns: list[str],
    rows: list[list[str]],
    encoding: str = "utf-8",
    kind: str = "CSV",
) -> Path:
    """A counter log as typeperf writes it: every cell quoted, CRLF."""
    first = f"(PDH-{kind} 4.0)" + (f" ({zone})({bias})" if zone is not None else "")
    sep = "\t" if kind == "TSV" else ","
    lines = [sep.join(f'"{c}"' for c in [first, *columns])]
    lines += [sep.join(f'"{c}"' for c in row) for row in rows]
    data = "".join(line + "\r\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        data.encode(encoding) if encoding != "utf-16" else b"\xff\xfe" + data.encode("utf-16-le")
    )
    return path


def ship(path: Path, options: dict[str, object] | None = None):
    docs, quarantined = [], []
    with open(path, "rb") as f:
        for chunk in PERF_CSV.chunks(f, str(path), 0, "", True, options or {"timezone": "UTC"}):
            out = PERF_CSV.decode(chunk)
            assert out.refused is None, out.refused
            docs += [orjson.loads(d) for d in out.docs]
            quarantined += out.quarantined
    return docs, quarantined


def rms(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["event"]["dataset"] == "rms_connector.perf"]


def col(host: str, counter: str, obj: str = RMS, instance: str | None = None) -> str:
    inst = f"({instance})" if instance is not None else ""
    return f"\\\\{host}\\{obj}{inst}\\{counter}"


def test_typeperf_csv_values_and_times_from_the_header_bias(tmp_path: Path) -> None:
    cols = [
        col("RMSCON01", SINCE),
        col("RMSCON01", CONN),
        col("RMSCON01", SERV),
        col("RMSCON01", PROC),
        col("RMSCON01", "% Processor Time", "Processor", "_Total"),
    ]
    path = pdh_file(
        tmp_path / "typeperf.csv",
        "W. Europe Standard Time",
        -60,
        cols,
        [
            ["03/04/2024 09:00:00.123", "412", "35.5", "30.25", "5.25", "3.2"],
            ["03/04/2024 09:00:15.125", "427", "", " ", "4", "12.5"],
        ],
    )
    docs, quarantined = ship(path)
    assert not quarantined
    connector = rms(docs)
    assert [d["@timestamp"] for d in connector] == [
        "2024-03-04T08:00:00.123Z",  # 09:00 CET = UTC+1
        "2024-03-04T08:00:15.125Z",
    ]
    first, second = (d["rms_connector"]["perf"] for d in connector)
    assert first == {
        "time_since_last_authorization_policy_update_seconds": 412.0,
        "licensing_successful_batched": {
            "connector_response_time_ms": 35.5,
            "service_response_time_ms": 30.25,
            "connector_processing_time_ms": 5.25,
        },
    }
    # blank and " " are missing samples: those values are left out, not the row
    assert second == {
        "time_since_last_authorization_policy_update_seconds": 427.0,
        "licensing_successful_batched": {"connector_processing_time_ms": 4.0},
    }
    d = connector[0]
    assert d["event"]["kind"] == "metric" and d["event"]["module"] == "rms_connector"
    assert d["host"]["name"] == "rmscon01"
    assert d["log"]["file"]["path"] == str(path)
    cpu = [x for x in docs if x["event"]["dataset"] == "windows.perf"]
    assert [x["windows"]["perf"] for x in cpu] == [
        {"object": "Processor", "instance": "_Total", "processor": {"pct_processor_time": 3.2}},
        {"object": "Processor", "instance": "_Total", "processor": {"pct_processor_time": 12.5}},
    ]
    assert len({x["event"]["id"] for x in docs}) == len(docs) == 4


def test_detected_by_content_and_not_taken_for_an_event_export(tmp_path: Path) -> None:
    path = pdh_file(
        tmp_path / "a.csv",
        "GMT Standard Time",
        0,
        [col("H", SINCE)],
        [["01/02/2024 10:00:00.000", "1"]],
    )
    head = path.read_bytes()[:4096]
    assert [n for n in Settings.default_formats if FORMATS[n].sniff(head, str(path))] == [
        "perf_csv"
    ]
    assert not FORMATS["event_csv"].sniff(head, str(path))
    assert not PERF_CSV.sniff(
        b'"Level","Date and Time","Source","Event ID","Task Category"\r\n', "x.csv"
    )


def test_relog_csv_in_summer_time_from_a_us_zone(tmp_path: Path) -> None:
    # relog writes the same layout; a log started in July carries the daylight bias (420)
    cols = [col("RMSCON02", SINCE), col("RMSCON02", CONN)]
    path = pdh_file(
        tmp_path / "relog.csv",
        "Pacific Standard Time",
        420,
        cols,
        [
            ["07/15/2024 23:30:00.000", " ", " "],  # relog's first line of a log: all blank
            ["07/15/2024 23:45:00.000", "900.5", "120"],
        ],
    )
    docs, quarantined = ship(path)
    assert not quarantined
    assert [d["@timestamp"] for d in docs] == ["2024-07-16T06:45:00.000Z"]  # PDT = UTC-7
    assert docs[0]["rms_connector"]["perf"] == {
        "time_since_last_authorization_policy_update_seconds": 900.5,
        "licensing_successful_batched": {"connector_response_time_ms": 120.0},
    }


def test_export_counter_csv_with_lower_case_paths_and_instances(tmp_path: Path) -> None:
    # Export-Counter writes Get-Counter's paths: lower case
    cols = [
        col("rmscon03", SINCE.lower(), RMS.lower()),
        col("rmscon03", "avg. disk sec/read", "logicaldisk", "c:"),
        col("rmscon03", "avg. disk sec/read", "logicaldisk", "d:"),
        col("rmscon03", "bytes total/sec", "network interface", "intel[r] ethernet (2)"),
    ]
    path = pdh_file(
        tmp_path / "export.csv",
        "Tokyo Standard Time",
        -540,
        cols,
        [
            ["12/31/2024 08:59:59.999", "60", "0.004", "0.0125", "1048576"],
        ],
    )
    docs, quarantined = ship(path)
    assert not quarantined
    assert {d["@timestamp"] for d in docs} == {"2024-12-30T23:59:59.999Z"}  # JST = UTC+9
    by_instance = {d.get("windows", {}).get("perf", {}).get("instance"): d for d in docs}
    assert by_instance[None]["rms_connector"]["perf"] == {
        "time_since_last_authorization_policy_update_seconds": 60.0
    }
    assert by_instance["c:"]["windows"]["perf"]["logicaldisk"] == {"avg_disk_sec_per_read": 0.004}
    assert by_instance["d:"]["windows"]["perf"]["logicaldisk"] == {"avg_disk_sec_per_read": 0.0125}
    nic = by_instance["intel[r] ethernet (2)"]["windows"]["perf"]
    assert nic["object"] == "network interface"
    assert nic["network_interface"] == {"bytes_total_per_sec": 1048576.0}


def test_utf16_file_written_by_windows_powershell(tmp_path: Path) -> None:
    cols = [col("RMSCON01", SINCE), col("RMSCON01", CONN)]
    path = pdh_file(
        tmp_path / "utf16.csv",
        "W. Europe Standard Time",
        -60,
        cols,
        [
            ["01/10/2024 12:00:00.500", "1", "2"],
            ["01/10/2024 12:00:01.500", "3", "4.75"],
        ],
        encoding="utf-16",
    )
    assert path.read_bytes()[:2] == b"\xff\xfe"
    docs, quarantined = ship(path)
    assert not quarantined
    assert [(d["@timestamp"], d["rms_connector"]["perf"]) for d in docs] == [
        (
            "2024-01-10T11:00:00.500Z",
            {
                "time_since_last_authorization_policy_update_seconds": 1.0,
                "licensing_successful_batched": {"connector_response_time_ms": 2.0},
            },
        ),
        (
            "2024-01-10T11:00:01.500Z",
            {
                "time_since_last_authorization_policy_update_seconds": 3.0,
                "licensing_successful_batched": {"connector_response_time_ms": 4.75},
            },
        ),
    ]


def test_tsv_twin(tmp_path: Path) -> None:
    path = pdh_file(
        tmp_path / "a.tsv",
        "UTC",
        0,
        [col("H", SINCE)],
        [["02/29/2024 23:59:59.000", "7"]],
        kind="TSV",
    )
    docs, quarantined = ship(path)
    assert not quarantined
    assert [d["@timestamp"] for d in docs] == ["2024-02-29T23:59:59.000Z"]


def _utc(docs: list[dict]) -> list[str]:
    return [d["@timestamp"] for d in docs]


AUTUMN = [  # Europe/London, 27 Oct 2024: 02:00 BST -> 01:00 GMT; the hour 01:xx happens twice
    ("10/27/2024 00:59:30.000", "2024-10-26T23:59:30.000Z"),
    ("10/27/2024 01:00:00.000", "2024-10-27T00:00:00.000Z"),  # first pass, BST
    ("10/27/2024 01:30:00.000", "2024-10-27T00:30:00.000Z"),
    ("10/27/2024 01:59:30.000", "2024-10-27T00:59:30.000Z"),
    ("10/27/2024 01:00:00.000", "2024-10-27T01:00:00.000Z"),  # second pass, GMT
    ("10/27/2024 01:30:00.000", "2024-10-27T01:30:00.000Z"),
    ("10/27/2024 01:59:30.000", "2024-10-27T01:59:30.000Z"),
    ("10/27/2024 02:00:00.000", "2024-10-27T02:00:00.000Z"),
]


def test_autumn_hour_twice_gets_two_utc_hours_not_one(tmp_path: Path) -> None:
    # a log started in British summer time: the header says GMT Standard Time, bias -60
    rows = [[local, str(i)] for i, (local, _) in enumerate(AUTUMN)]
    path = pdh_file(tmp_path / "autumn.csv", "GMT Standard Time", -60, [col("H", SINCE)], rows)
    docs, quarantined = ship(path)
    assert not quarantined
    assert _utc(docs) == [utc for _, utc in AUTUMN]
    assert [
        d["rms_connector"]["perf"]["time_since_last_authorization_policy_update_seconds"]
        for d in docs
    ] == [float(i) for i in range(len(AUTUMN))]
    assert len({d["event"]["id"] for d in docs}) == len(AUTUMN)  # none lost as a duplicate


@pytest.mark.parametrize("cut", [2, 4, 5, 6])
def test_autumn_hour_followed_as_typeperf_writes_it(tmp_path: Path, cut: int) -> None:
    """The file grows line by line; a read stopping inside the repeated hour hands the
    previous time to the next read through the position state."""
    rows = [[local, str(i)] for i, (local, _) in enumerate(AUTUMN)]
    path = pdh_file(
        tmp_path / "autumn.csv", "GMT Standard Time", -60, [col("H", SINCE)], rows[:cut]
    )
    assert _utc(_read_then_append(path, rows[cut:])) == [utc for _, utc in AUTUMN]


def _read_then_append(path: Path, more: list[list[str]]) -> list[dict]:
    """The documents of ``path`` read to its end, then of the rows ``more`` appended to it as
    typeperf appends them, read on from where the first read stopped (position and state)."""
    docs, pos, state = [], 0, ""
    opts: dict[str, object] = {"timezone": "UTC"}
    with open(path, "rb") as f:
        for chunk in PERF_CSV.chunks(f, str(path), pos, state, False, opts):
            docs += [orjson.loads(d) for d in PERF_CSV.decode(chunk).docs]
            pos, state = chunk.end, chunk.state_out
    with open(path, "ab") as f:
        for row in more:
            f.write(("".join(f'"{c}",' for c in row)[:-1] + "\r\n").encode())
    with open(path, "rb") as f:
        for chunk in PERF_CSV.chunks(f, str(path), pos, state, False, opts):
            docs += [orjson.loads(d) for d in PERF_CSV.decode(chunk).docs]
    return docs


SECOND_PASS = [  # a London log started in the second pass of the autumn hour: bias 0 (GMT)
    ("10/27/2024 01:30:00.000", "2024-10-27T01:30:00.000Z"),
    ("10/27/2024 01:59:30.000", "2024-10-27T01:59:30.000Z"),
    ("10/27/2024 02:00:00.000", "2024-10-27T02:00:00.000Z"),
    ("03/30/2025 00:30:00.000", "2025-03-30T00:30:00.000Z"),
    ("03/30/2025 03:30:00.000", "2025-03-30T02:30:00.000Z"),  # BST again: not 03:30Z
    ("07/01/2025 12:00:00.000", "2025-07-01T11:00:00.000Z"),
]


@pytest.mark.parametrize("cut", [None, 1, 2])
def test_log_started_in_the_second_pass_of_the_autumn_hour_follows_the_zone(
    tmp_path: Path, cut: int | None
) -> None:
    """The header's bias (0) is GMT's, the first time one London has twice: the zone still
    applies (matched in the second pass), so the next spring change is followed; read whole
    or followed with the file cut after ``cut`` rows."""
    rows = [[local, str(i)] for i, (local, _) in enumerate(SECOND_PASS)]
    first = rows if cut is None else rows[:cut]
    path = pdh_file(tmp_path / "gmt.csv", "GMT Standard Time", 0, [col("H", SINCE)], first)
    if cut is None:
        docs, quarantined = ship(path)
        assert not quarantined
    else:
        docs = _read_then_append(path, rows[cut:])
    assert _utc(docs) == [utc for _, utc in SECOND_PASS]


def test_spring_gap_follows_the_zone_after_the_change(tmp_path: Path) -> None:
    # Europe/Berlin, 31 Mar 2024: 02:00 CET -> 03:00 CEST; typeperf's clock jumps with it
    rows = [
        ["03/31/2024 01:59:45.000", "1"],
        ["03/31/2024 03:00:00.000", "2"],
        ["03/31/2024 03:00:15.000", "3"],
    ]
    path = pdh_file(
        tmp_path / "spring.csv", "W. Europe Standard Time", -60, [col("H", SINCE)], rows
    )
    docs, _ = ship(path)
    assert _utc(docs) == [
        "2024-03-31T00:59:45.000Z",
        "2024-03-31T01:00:00.000Z",  # not 02:00Z, as the header's bias alone would say
        "2024-03-31T01:00:15.000Z",
    ]


def test_bias_that_disagrees_with_the_zone_is_a_fixed_offset(tmp_path: Path) -> None:
    # "adjust for daylight saving time" off: standard bias in July, clock never changes
    path = pdh_file(
        tmp_path / "nodst.csv",
        "W. Europe Standard Time",
        -60,
        [col("H", SINCE)],
        [["07/01/2024 12:00:00.000", "1"]],
    )
    docs, _ = ship(path)
    assert _utc(docs) == ["2024-07-01T11:00:00.000Z"]  # +1 h, not CEST's +2 h


def test_unknown_zone_name_uses_the_bias(tmp_path: Path) -> None:
    path = pdh_file(
        tmp_path / "loc.csv",
        "Mitteleuropäische Zeit",
        -120,
        [col("H", SINCE)],
        [["07/01/2024 12:00:00.000", "1"]],
    )
    docs, _ = ship(path)
    assert _utc(docs) == ["2024-07-01T10:00:00.000Z"]


def test_translated_zone_name_takes_the_input_timezone_when_it_agrees_with_the_bias(
    tmp_path: Path,
) -> None:
    # a German Windows writes its zone's translated standard name
    rows = [["03/31/2024 01:59:45.000", "1"], ["03/31/2024 03:00:00.000", "2"]]
    path = pdh_file(tmp_path / "de.csv", "Mitteleuropäische Zeit", -60, [col("H", SINCE)], rows)
    docs, _ = ship(path, {"timezone": "Europe/Berlin"})
    assert _utc(docs) == ["2024-03-31T00:59:45.000Z", "2024-03-31T01:00:00.000Z"]
    docs, _ = ship(path, {"timezone": "Asia/Tokyo"})  # disagrees with the bias: not taken
    assert _utc(docs) == ["2024-03-31T00:59:45.000Z", "2024-03-31T02:00:00.000Z"]


def test_header_without_zone_uses_the_input_timezone(tmp_path: Path) -> None:
    path = pdh_file(
        tmp_path / "nozone.csv",
        None,
        None,
        [col("H", SINCE)],
        [["01/15/2024 08:00:00.000", "1"], ["07/15/2024 08:00:00.000", "2"]],
    )
    docs, _ = ship(path, {"timezone": "America/New_York"})
    assert _utc(docs) == ["2024-01-15T13:00:00.000Z", "2024-07-15T12:00:00.000Z"]


def test_bad_lines_are_quarantined_with_file_line_and_reason(tmp_path: Path) -> None:
    cols = [col("H", SINCE), col("H", CONN)]
    path = pdh_file(
        tmp_path / "bad.csv",
        "UTC",
        0,
        cols,
        [
            ["01/02/2024 10:00:00.000", "1", "2"],
            ["2024-01-02 10:00:15", "3", "4"],  # not a PDH time
            ["01/02/2024 10:00:30.000", "5"],  # a cell short
            ["01/02/2024 10:00:45.000", "n/a", "6"],  # a value that is not a number
            ["01/02/2024 10:01:00.000", "7", "8"],
        ],
    )
    docs, quarantined = ship(path)
    assert [(q.path, q.line) for q in quarantined] == [(str(path), n) for n in (3, 4, 5)]
    assert "not a PDH time" in quarantined[0].reason
    assert "expected 3 cells" in quarantined[1].reason and "found 2" in quarantined[1].reason
    assert "n/a" in quarantined[2].reason and SINCE in quarantined[2].reason
    assert quarantined[2].raw.startswith('"01/02/2024 10:00:45.000"')
    data = path.read_bytes()
    assert data[quarantined[0].offset :].startswith(b'"2024-01-02 10:00:15"')
    perf = [d["rms_connector"]["perf"] for d in docs]
    assert perf == [
        {
            "time_since_last_authorization_policy_update_seconds": 1.0,
            "licensing_successful_batched": {"connector_response_time_ms": 2.0},
        },
        {"licensing_successful_batched": {"connector_response_time_ms": 6.0}},  # the rest ships
        {
            "time_since_last_authorization_policy_update_seconds": 7.0,
            "licensing_successful_batched": {"connector_response_time_ms": 8.0},
        },
    ]


def test_a_file_that_is_not_a_counter_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\r\n1,2\r\n")
    with open(path, "rb") as f:
        outs = [PERF_CSV.decode(c) for c in PERF_CSV.chunks(f, str(path), 0, "", True, {})]
    assert outs and outs[0].refused and "PDH" in outs[0].refused


def test_a_header_again_further_down_starts_a_new_layout(tmp_path: Path) -> None:
    first = pdh_file(
        tmp_path / "one.csv", "UTC", 0, [col("H", SINCE)], [["01/02/2024 10:00:00.000", "1"]]
    )
    second = pdh_file(
        tmp_path / "two.csv",
        "W. Europe Standard Time",
        -60,
        [col("H", CONN), col("H", SINCE)],
        [["01/02/2024 12:00:00.000", "2", "3"]],
    )
    joined = tmp_path / "joined.csv"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    docs, quarantined = ship(joined)
    assert not quarantined
    assert [(d["@timestamp"], d["rms_connector"]["perf"]) for d in docs] == [
        ("2024-01-02T10:00:00.000Z", {"time_since_last_authorization_policy_update_seconds": 1.0}),
        (
            "2024-01-02T11:00:00.000Z",
            {
                "time_since_last_authorization_policy_update_seconds": 3.0,
                "licensing_successful_batched": {"connector_response_time_ms": 2.0},
            },
        ),
    ]


def test_the_example_ships_from_the_repository_root(tmp_path: Path) -> None:
    """``shipper run --once examples/windows_perf.yaml`` as the README says, on a copy."""
    import os
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "examples" / "perf", tmp_path / "examples" / "perf")
    shutil.copy(repo / "examples" / "windows_perf.yaml", tmp_path / "examples")
    env = dict(os.environ, PYTHONPATH=str(repo))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shipper.cli",
            "run",
            "--once",
            "--no-progress",
            "examples/windows_perf.yaml",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    docs = [orjson.loads(x) for x in (tmp_path / "out" / "perf.ndjson").read_bytes().splitlines()]
    connector = rms(docs)
    assert len(connector) == 12 and len(docs) == 23  # the first CPU sample is blank
    assert connector[0]["@timestamp"] == "2024-03-04T08:00:00.117Z"
    assert connector[1]["rms_connector"]["perf"]["licensing_successful_batched"] == {
        "connector_processing_time_ms": 4.503,
        "service_response_time_ms": 43.276,
        "connector_response_time_ms": 52.977,
    }


def test_the_inputs_tags_labels_and_keep_original_reach_the_documents(tmp_path: Path) -> None:
    path = pdh_file(
        tmp_path / "t.csv", "UTC", 0, [col("H", SINCE)], [["01/02/2024 10:00:00.000", "1"]]
    )
    options = Settings(
        type="windows_perf", paths=["x"], tags=["site-a"], fields={"tenant": "contoso"}
    ).options()
    docs, _ = ship(path, {**options, "keep_original": True})
    (d,) = docs
    assert d["tags"] == ["site-a"] and d["labels"] == {"tenant": "contoso"}
    assert d["event"]["original"] == '"01/02/2024 10:00:00.000","1"'


# --- properties ----------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FIXTURE = HealthCheck.function_scoped_fixture
_ROWS = [[local, str(i), f"{i}.5" if i % 3 else " "] for i, (local, _) in enumerate(AUTUMN)]
_COLS = [col("RMSCON01", SINCE), col("RMSCON01", CONN)]


def _file_bytes(encoding: str) -> bytes:
    first = "(PDH-CSV 4.0) (GMT Standard Time)(-60)"
    lines = [",".join(f'"{c}"' for c in [first, *_COLS])]
    lines += [",".join(f'"{c}"' for c in row) for row in _ROWS]
    text = "".join(line + "\r\n" for line in lines)
    return b"\xff\xfe" + text.encode("utf-16-le") if encoding == "utf-16" else text.encode()


def _follow(tmp: Path, data: bytes, cuts: list[int]) -> tuple[list[dict], int]:
    """Write ``data`` in pieces ending at ``cuts``, reading after each as follow mode does."""
    path = tmp / "grow.csv"
    path.write_bytes(b"")
    docs: list[dict] = []
    pos, state = 0, ""
    opts: dict[str, object] = {"timezone": "UTC"}
    written = 0
    for i, end in enumerate([*cuts, len(data)]):
        with open(path, "ab") as f:
            f.write(data[written:end])
        written = end
        final = i == len(cuts)
        with open(path, "rb") as f:
            for chunk in PERF_CSV.chunks(f, str(path), pos, state, final, opts):
                assert chunk.start == pos or pos == 0  # positions follow (past a BOM at 0)
                out = PERF_CSV.decode(chunk)
                docs += [orjson.loads(d) for d in out.docs]
                pos, state = chunk.end, chunk.state_out
    return docs, pos


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    encoding=st.sampled_from(["utf-8", "utf-16"]),
    cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=6),
)
def test_a_log_read_while_it_grows_gives_what_reading_it_whole_gives(
    tmp_path: Path, encoding: str, cuts: list[int]
) -> None:
    data = _file_bytes(encoding)
    whole, _ = _follow(tmp_path, data, [])
    grown, end = _follow(tmp_path, data, sorted({c % len(data) for c in cuts} - {0}))
    assert end == len(data)
    assert [(d["@timestamp"], d["event"]["id"]) for d in grown] == [
        (d["@timestamp"], d["event"]["id"]) for d in whole
    ]
    assert [d["@timestamp"] for d in whole] == [utc for _, utc in AUTUMN]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    at=st.integers(min_value=0, max_value=10_000),
    removed=st.integers(min_value=0, max_value=40),
    inserted=st.binary(max_size=40),
)
def test_damage_anywhere_never_crashes_and_costs_only_its_lines(
    tmp_path: Path, at: int, removed: int, inserted: bytes
) -> None:
    data = _file_bytes("utf-8")
    at %= len(data)
    damaged = data[:at] + inserted + data[at + removed :]
    path = tmp_path / "damaged.csv"
    path.write_bytes(damaged)
    docs, quarantined, refused, end = [], [], [], 0
    with open(path, "rb") as f:
        for chunk in PERF_CSV.chunks(f, str(path), 0, "", True, {"timezone": "UTC"}):
            out = PERF_CSV.decode(chunk)
            refused += [out.refused] if out.refused else []
            docs += [orjson.loads(d) for d in out.docs]
            quarantined += out.quarantined
            end = chunk.end
    assert len(damaged) - end < 2  # to the end (an odd byte of a file taken for UTF-16 waits)
    if not refused:  # the header survived: every intact line's values ship
        assert len(docs) >= len(AUTUMN) - 3 - removed // 20 - len(quarantined)
    assert all(q.path == str(path) and q.reason for q in quarantined)
