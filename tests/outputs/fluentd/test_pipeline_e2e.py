"""The whole pipeline into the spec receiver: `shipper run` as a user runs it, kill -9 included."""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from .receiver import EventTime, Faults, Receiver

REPO = Path(__file__).resolve().parents[3]


def config(tmp_path: Path, receiver: Receiver, ndjson: bool = False, **fluentd: object) -> Path:
    fd = {"type": "fluentd", "hosts": [receiver.address], "backoff_initial": 0.05,
          "backoff_max": 0.5, **fluentd}  # fmt: skip
    outputs: list[dict[str, object]] = [fd]
    if ndjson:
        outputs.append({"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")})
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
        "outputs": outputs,
        "pipeline": {"workers": 1, "batch_events": 500},
    }
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(cfg))
    return path


def start(cfg: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "shipper.cli", "run", "--once", "--no-progress", str(cfg)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def test_records_tag_and_time_round_trip_to_what_the_ndjson_output_writes(tmp_path, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(1200))
    with Receiver() as r:
        proc = start(config(tmp_path, r, ndjson=True))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        written = (tmp_path / "out" / "events.ndjson").read_bytes().splitlines()
        assert len(written) == 1200
        assert sorted(orjson.dumps(e.record) for e in r.events) == sorted(written)
        assert {e.tag for e in r.events} == {"shipper.azure_rms.usage"}
        assert {e.mode for e in r.events} == {"packed_forward"}
        for e in r.events:
            ts = e.record["@timestamp"]  # e.g. 2024-03-04T09:00:07.000Z
            seconds = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
            assert e.time == EventTime(seconds, int(ts[20:23]) * 1_000_000)
        assert not r.errors


def test_kill_9_during_a_send_then_a_restart_loses_nothing(tmp_path, write_rms):
    for n in range(4):
        write_rms(tmp_path / "logs" / f"{n + 1:09d}", range(n * 1000, (n + 1) * 1000))
    everything = {f"{i:08x}-0000-4000-8000-000000000000" for i in range(4000)}
    with Receiver(faults=Faults(delay_ack=0.5, delayed=10**6)) as r:
        cfg = config(tmp_path, r, chunk_events=200, ack_timeout=5)
        proc = start(cfg)
        deadline = time.monotonic() + 30
        # a few batches acked and committed, then one chunk received with its ack pending
        while len(r.chunks) < 7 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed mid-send"
        proc.kill()
        proc.wait(timeout=10)
        before = Counter(r.ids())
        unacked_at_kill = {c for c, _ in r.chunks} - {c for k, c in r.log if k == "ack"}
        assert unacked_at_kill, "the kill did not land while a chunk waited for its ack"
        assert set(before) < everything

        r.faults.delayed = 0
        again = start(cfg)
        _, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        after = Counter(r.ids())
        assert set(after) == everything  # nothing lost
        # what the killed run had not got acked came again; the rest only if not committed
        resent = {e.record["event"]["id"] for e in r.events if e.chunk in unacked_at_kill}
        assert all(after[i] >= 2 for i in resent)


def test_the_run_waits_while_every_receiver_is_down_then_ships_everything(tmp_path, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(700))
    with Receiver() as gone:
        port = gone.port  # nothing listens here now
    proc = start(config(tmp_path, gone))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while sum("every receiver is down" in x for x in lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run gave up instead of waiting"
    assert sum("every receiver is down" in x for x in lines) >= 2, lines
    with Receiver(port=port) as r:
        proc.wait(timeout=60)
        reader.join(timeout=10)
        assert proc.returncode == 0, lines
        assert len(set(r.ids())) == 700


@pytest.mark.parametrize("mode", ["forward", "compressed_packed_forward"])
def test_other_modes_through_the_pipeline(tmp_path, write_rms, mode):
    write_rms(tmp_path / "logs" / "000000001", range(300))
    with Receiver() as r:
        proc = start(config(tmp_path, r, mode=mode))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert len(set(r.ids())) == 300 and {e.mode for e in r.events} == {mode}


def test_shipper_check_outputs_reaches_the_receiver_or_names_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with Receiver(shared_key="k") as r:
        cfg = config(tmp_path, r, shared_key="k")
        cmd = [sys.executable, "-m", "shipper.cli", "check", "--outputs", "--skip-local", str(cfg)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"reached {r.address}" in done.stdout + done.stderr
        bad = config(tmp_path, r, shared_key="wrong")
        cmd[-1] = str(bad)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert f"fluentd receiver {r.address}" in done.stderr
        assert "shared_key mismatch" in done.stderr
        assert not r.events
