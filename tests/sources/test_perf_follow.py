"""A typeperf log growing while ``shipper run`` follows it: complete lines only, each once."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import start_shipper

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

REPO = Path(__file__).resolve().parents[2]
HEADER = (
    '"(PDH-CSV 4.0) (W. Europe Standard Time)(-60)",'
    '"\\\\RMSCON01\\Microsoft Rights Management connector\\'
    'Time since last authorization policy update",'
    '"\\\\RMSCON01\\Microsoft Rights Management connector\\'
    'Licensing Successful Batched Request Average Connector Response Time"\r\n'
)


def row(second: int, since: float, response: str) -> bytes:
    return f'"01/15/2024 10:00:{second:02d}.000","{since}","{response}"\r\n'.encode()


def docs(tmp_path: Path) -> list[dict]:
    out = tmp_path / "out" / "events.ndjson"
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_typeperf_appending_rows_ships_each_complete_row_once(tmp_path: Path) -> None:
    log = tmp_path / "perf" / "rmscon01.csv"
    log.parent.mkdir()
    log.write_bytes(HEADER.encode() + row(0, 100, "12.5"))
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "windows_perf", "paths": [str(log.parent / "*.csv")]}],
                "outputs": [{"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")}],
                "pipeline": {"poll_interval": 0.1},
            }
        )
    )
    proc = start_shipper(cfg, Path.cwd())
    try:
        wait_for(lambda: len(docs(tmp_path)) == 1)
        second = row(15, 115, " ")  # a missing sample: only that value is left out
        third = row(30, 130, "14.25")
        with open(log, "ab") as f:  # a whole row, and the first half of the next
            f.write(second + third[:20])
        wait_for(lambda: len(docs(tmp_path)) == 2)
        time.sleep(0.5)
        assert len(docs(tmp_path)) == 2  # the half row waits for its end
        with open(log, "ab") as f:
            f.write(third[20:])
        wait_for(lambda: len(docs(tmp_path)) == 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    got = [(d["@timestamp"], d["rms_connector"]["perf"]) for d in docs(tmp_path)]
    since = "time_since_last_authorization_policy_update_seconds"
    assert got == [
        (
            "2024-01-15T09:00:00.000Z",
            {since: 100.0, "licensing_successful_batched": {"connector_response_time_ms": 12.5}},
        ),
        ("2024-01-15T09:00:15.000Z", {since: 115.0}),
        (
            "2024-01-15T09:00:30.000Z",
            {since: 130.0, "licensing_successful_batched": {"connector_response_time_ms": 14.25}},
        ),
    ]
    assert len({d["event"]["id"] for d in docs(tmp_path)}) == 3
    assert (
        not (tmp_path / "data" / "quarantine.jsonl").exists()
        or not (tmp_path / "data" / "quarantine.jsonl").read_text().strip()
    )
