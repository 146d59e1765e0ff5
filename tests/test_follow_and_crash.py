"""Follow mode and crash safety: appended lines, partial lines, SIGTERM, and kill -9."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def config(tmp_path: Path, **pipeline: object) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
        "outputs": [{"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")}],
        "pipeline": {"poll_interval": 0.1, **pipeline},
    }
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(cfg))
    return path


def start(cfg: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.Popen(
        [sys.executable, "-m", "shipper.cli", "run", *args, str(cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def output_ids(tmp_path: Path) -> list[str]:
    """Event ids in the output, rotated files (``events.ndjson.N``) included."""
    ids = []
    for out in sorted((tmp_path / "out").glob("events.ndjson*")):
        ids += [json.loads(line)["event"]["id"] for line in out.read_text().splitlines()]
    return ids


def children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    found = set()
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(entry.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_follow_picks_up_new_files_and_appended_lines_and_waits_for_partial_ones(
    tmp_path, write_rms
):
    log = write_rms(tmp_path / "logs" / "000000001", range(5))
    proc = start(config(tmp_path))
    try:
        wait_for(lambda: len(output_ids(tmp_path)) == 5)
        full = write_rms(tmp_path / "spare", range(5, 7)).read_bytes().split(b"\n")[3:5]
        with open(log, "ab") as f:  # one complete line, and half of the next
            f.write(full[0] + b"\n" + full[1][:20])
        wait_for(lambda: len(output_ids(tmp_path)) == 6)
        time.sleep(0.5)
        assert len(output_ids(tmp_path)) == 6  # the half line waits
        with open(log, "ab") as f:
            f.write(full[1][20:] + b"\n")
        write_rms(tmp_path / "logs" / "000000002", range(100, 103))
        wait_for(lambda: len(output_ids(tmp_path)) == 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "shipped 10 events" in err
    ids = output_ids(tmp_path)
    assert len(set(ids)) == len(ids) == 10


def test_kill_9_at_any_moment_still_ships_every_record_exactly_once(tmp_path, write_rms):
    files, per_file = 96, 3000
    for i in range(files):
        write_rms(tmp_path / "logs" / f"{i + 1:09d}", range(i * per_file, (i + 1) * per_file))
    # a re-download overlapping two blobs, so dedupe is exercised across crashes too
    write_rms(tmp_path / "logs" / "rmslog-2024-03-04.log", range(per_file - 500, per_file + 500))
    # alternate in-process decoding (commits start at once) with worker processes
    single = config(tmp_path, batch_events=700, workers=1)
    pooled = tmp_path / "pooled.yaml"
    pooled.write_text(single.read_text().replace('"workers": 1', '"workers": 2'))
    rng = random.Random(7)
    kills = 0
    orphans: set[int] = set()
    for attempt in range(40):
        if kills == 10:
            break
        proc = start(pooled if attempt % 2 else single, "--once", "--no-progress")
        time.sleep(rng.uniform(0.2, 1.5))
        if proc.poll() is not None:  # finished before the kill: new downloads arrive
            for i in range(files, files + 10):
                write_rms(
                    tmp_path / "logs" / f"{i + 1:09d}", range(i * per_file, (i + 1) * per_file)
                )
            files += 10
            continue
        left = children(proc.pid)  # decoder processes, in the runs that started them
        proc.kill()
        proc.wait()
        kills += 1
        orphans.update(left)
    cfg = single
    final = start(cfg, "--once", "--no-progress")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    assert kills == 10, "the runs finished too fast to be killed mid-way"
    wait_for(lambda: not any(alive(p) for p in orphans), timeout=10)  # none outlives its run
    shipped_last = int(err.split("shipped ")[1].split(" events")[0].replace(",", ""))
    assert shipped_last < files * per_file, "no killed run got to commit anything"
    ids = output_ids(tmp_path)
    assert len(ids) == len(set(ids)), "an event was written twice"
    assert len(ids) == files * per_file, "an event was lost"


def test_a_second_shipper_on_the_same_data_dir_is_refused(tmp_path, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(5))
    cfg = config(tmp_path)
    first = start(cfg)
    try:
        wait_for(lambda: len(output_ids(tmp_path)) == 5)
        second = start(cfg, "--once")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "in use by another shipper" in err
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    assert len(output_ids(tmp_path)) == 5


def test_a_killed_decoder_process_stops_the_run_cleanly_and_loses_nothing(tmp_path, write_rms):
    files, per_file = 80, 3000  # a few seconds' work
    for i in range(files):
        write_rms(tmp_path / "logs" / f"{i + 1:09d}", range(i * per_file, (i + 1) * per_file))
    cfg = config(tmp_path, workers=2, batch_events=2000)
    proc = start(cfg, "--once", "--no-progress")
    wait_for(lambda: children(proc.pid), timeout=20)  # the decoder processes
    os.kill(min(children(proc.pid)), signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "ended unexpectedly" in err and "Traceback" not in err
    again = start(cfg, "--once", "--no-progress")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    ids = output_ids(tmp_path)
    assert len(ids) == len(set(ids)) == files * per_file
