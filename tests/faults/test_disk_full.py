"""Disk full under the output, the spool and the checkpoint: one line naming the file and what
to do, never a traceback; nothing lost, nothing torn, and once there is room everything ships
exactly once.

Each test mounts a small tmpfs (CI runs as root); where that is not allowed it skips, saying so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import shipped_ids

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="tmpfs mounts are Linux's")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``tmpfs(name, size)``: a tmpfs of ``size`` (e.g. "512k") mounted at tmp_path/name;
    calling it again with the same name resizes it."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        where = tmp_path / name
        if where in mounted:
            cmd = ["mount", "-o", f"remount,size={size}", str(where)]
        else:
            where.mkdir(parents=True)
            cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        if where not in mounted:
            mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def write_config(tmp_path: Path, data: Path, out: Path, **pipeline: object) -> Path:
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(data),
                "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
                "outputs": [{"type": "ndjson", "path": str(out)}],
                "pipeline": {"once_retry_seconds": 2, "batch_events": 2000, **pipeline},
            }
        )
    )
    return cfg


def expected(n: int) -> set[str]:
    return {f"{i:08x}-0000-4000-8000-000000000000" for i in range(n)}


def no_torn_line(out: Path) -> None:
    data = out.read_bytes()
    assert not data or data.endswith(b"\n")
    for line in data.splitlines():
        json.loads(line)


def test_output_disk_full_waits_says_so_cuts_back_and_ships_once_there_is_room(
    tmp_path, tmpfs, write_rms, cli
):
    write_rms(tmp_path / "logs" / "000000001", range(6000))  # about 7 MB of events
    room = tmpfs("out", "2m")
    out = room / "events.ndjson"
    cfg = write_config(tmp_path, tmp_path / "data", out, workers=1)
    full = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path)
    assert full.returncode == 1 and "Traceback" not in full.stderr
    assert f"{out}: disk full; waiting for free space" in full.stderr
    assert "still unavailable after" in full.stderr
    no_torn_line(out)  # the failed batch was cut back off
    tmpfs("out", "64m")
    again = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    ids = shipped_ids(out)
    assert len(ids) == len(set(ids)) and set(ids) == expected(6000)


def test_checkpoint_disk_full_is_one_line_and_the_next_run_ships_exactly_once(
    tmp_path, tmpfs, write_rms, cli
):
    for i in range(4):
        write_rms(tmp_path / "logs" / f"{i + 1:09d}", range(i * 5000, i * 5000 + 5000))
    data = tmpfs("data", "160k")
    out = tmp_path / "out" / "events.ndjson"
    cfg = write_config(tmp_path, data, out, workers=1)
    full = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path)
    assert full.returncode == 1 and "Traceback" not in full.stderr
    [line] = [x for x in full.stderr.splitlines() if "disk full" in x]
    assert str(data / "checkpoint.sqlite") in line and "free space and run again" in line
    tmpfs("data", "64m")
    again = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    ids = shipped_ids(out)
    assert len(ids) == len(set(ids)) and set(ids) == expected(20000)


def test_spool_disk_full_hands_documents_over_the_pipe(tmp_path, tmpfs, write_rms, cli):
    for i in range(4):  # about 10 MB: decoder processes start
        write_rms(tmp_path / "logs" / f"{i + 1:09d}", range(i * 7000, i * 7000 + 7000))
    tmpfs("data/spool", "64k")  # no room for any decoder's spool file
    out = tmp_path / "out" / "events.ndjson"
    cfg = write_config(tmp_path, tmp_path / "data", out, workers=2)
    run = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    ids = shipped_ids(out)
    assert len(ids) == len(set(ids)) and set(ids) == expected(28000)
