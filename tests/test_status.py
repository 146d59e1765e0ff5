"""``shipper status``: per-file progress and per-output state from the checkpoint, read while
another shipper follows the folder (no lock, nothing written) and after it stopped."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import closed_port, start_shipper

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def write_config(tmp_path: Path, rms: Path, out: Path) -> Path:
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(rms / "*")]}],
                "outputs": [{"type": "ndjson", "path": str(out)}],
                "pipeline": {"poll_interval": 0.2, "workers": 1},
            }
        ),
        encoding="utf-8",
    )
    return cfg


def status_json(cli, cfg: Path, cwd: Path) -> dict:
    done = cli("status", "--json", str(cfg), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_status(cli, cfg: Path, cwd: Path, ready: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + 60
    while True:
        st = status_json(cli, cfg, cwd)
        if ready(st):
            return st
        if time.monotonic() > deadline:
            pytest.fail(f"status never showed it: {json.dumps(st, indent=1)}")
        time.sleep(0.3)


def by_name(st: dict) -> dict[str, dict]:
    return {Path(f["path"]).name: f for f in st["files"]}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to a child")
def test_status_during_and_after_a_following_run(tmp_path: Path, cli):
    rms = tmp_path / "rms"
    rms.mkdir()
    names = ["000000001", "000000002", "rmslog-2024-03-04.log"]
    for name in names:
        shutil.copy(EXAMPLES / "rms" / name, rms / name)
    # a download still being written: its last record has no line end yet
    text = (EXAMPLES / "rms" / "rmslog-2024-03-04-1.log").read_bytes().splitlines(keepends=True)
    head, tail = b"".join(text[:10]), text[10].rstrip(b"\r\n")
    (rms / "growing.log").write_bytes(head + tail)
    out = tmp_path / "out" / "events.ndjson"
    cfg = write_config(tmp_path, rms, out)

    proc = start_shipper(cfg, tmp_path)
    try:
        # while it runs (and holds the data dir's lock): three files done, one behind
        st = wait_status(cli, cfg, tmp_path, lambda st: st["totals"]["done"] == 3)
        assert proc.poll() is None
        files = by_name(st)
        for name in names:
            size = (rms / name).stat().st_size
            assert files[name] == {
                "path": str(rms / name),
                "state": "done",
                "offset": size,
                "size": size,
                "behind": 0,
            }
        growing = files["growing.log"]
        assert growing["state"] == "behind"
        assert growing["offset"] == len(head) and growing["behind"] == len(tail)
        assert st["totals"]["bytes_behind"] == len(tail)
        assert st["exists"] and st["last_commit"] and st["event_ids"] > 0

        shown = cli("status", str(cfg), cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[1] == f"files: 3 done, 1 behind; {len(tail):,} bytes to read"
        size = (rms / "000000001").stat().st_size
        assert any(
            line.split() == ["done", f"{size:,}/{size:,}", str(rms / "000000001")] for line in lines
        ), shown.stdout
        assert f"({len(tail):,} bytes to read)" in shown.stdout

        with open(rms / "growing.log", "ab") as f:  # the download finishes
            f.write(b"\n")
        st = wait_status(cli, cfg, tmp_path, lambda st: st["totals"]["done"] == 4)
        assert st["totals"]["bytes_behind"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

    # after the run: the outputs' committed state, and files that came and went since
    shutil.copy(EXAMPLES / "rms" / "000000003", rms / "000000003")  # (first: no inode reuse)
    (rms / "000000002").unlink()
    data = sorted((tmp_path / "data").iterdir())
    st = status_json(cli, cfg, tmp_path)
    assert sorted((tmp_path / "data").iterdir()) == data  # status wrote nothing
    files = by_name(st)
    assert files["000000002"]["state"] == "gone"
    assert files["000000003"]["state"] == "new"
    assert files["000000003"]["behind"] == (rms / "000000003").stat().st_size
    assert files["growing.log"]["state"] == "done"
    ndjson = st["outputs"][f"ndjson:{out}"]
    assert ndjson["state"]["length"] == out.stat().st_size
    assert ndjson["last_success"] and ndjson["last_failure"] is None
    assert st["totals"] == {
        "done": 3,
        "behind": 0,
        "new": 1,
        "empty": 0,
        "truncated": 0,
        "gone": 1,
        "bytes_behind": (rms / "000000003").stat().st_size,
    }
    text_out = cli("status", str(cfg), cwd=tmp_path).stdout
    assert f"ndjson:{out}  last success 20" in text_out
    assert f"; last failure never; {out.stat().st_size:,} bytes committed" in text_out


def test_status_before_any_run_creates_nothing(tmp_path: Path, cli):
    rms = tmp_path / "rms"
    rms.mkdir()
    shutil.copy(EXAMPLES / "rms" / "000000001", rms / "000000001")
    cfg = write_config(tmp_path, rms, tmp_path / "out.ndjson")
    shown = cli("status", str(cfg), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "none yet (nothing shipped)" in shown.stdout
    assert "files: 1 new;" in shown.stdout
    assert not (tmp_path / "data").exists()


def test_a_damaged_checkpoint_is_one_line_not_a_traceback(tmp_path: Path, cli):
    rms = tmp_path / "rms"
    rms.mkdir()
    cfg = write_config(tmp_path, rms, tmp_path / "out.ndjson")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "checkpoint.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    shown = cli("status", str(cfg), cwd=tmp_path)
    assert shown.returncode == 1
    assert "checkpoint.sqlite" in shown.stderr and "Traceback" not in shown.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to a child")
def test_status_lists_every_output_with_its_last_success_and_failure(tmp_path: Path, cli):
    """A network output keeps no state, but the operator still asks "is it delivering?"."""
    import calendar

    dead = closed_port()
    rms = tmp_path / "rms"
    rms.mkdir()
    shutil.copy(EXAMPLES / "rms" / "000000001", rms / "000000001")
    out = tmp_path / "out.ndjson"
    cfg = tmp_path / "shipper.yaml"
    syslog = {"type": "syslog", "hosts": [f"127.0.0.1:{dead}"], "transport": "tcp"}
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(rms / "*")]}],
                "outputs": [{"type": "ndjson", "path": str(out)}, syslog],
                "pipeline": {"poll_interval": 0.2, "workers": 1},
            }
        ),
        encoding="utf-8",
    )
    before = cli("status", "--json", str(cfg), cwd=tmp_path)  # before any run: configured ones
    name = f"syslog:tcp://127.0.0.1:{dead}"
    assert set(json.loads(before.stdout)["outputs"]) == {f"ndjson:{out}", name}

    started = time.time()
    proc = start_shipper(cfg, tmp_path)
    try:
        st = wait_status(
            cli, cfg, tmp_path, lambda st: (st["outputs"].get(name) or {}).get("last_failure")
        )
        shown = cli("status", str(cfg), cwd=tmp_path).stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    syslog_out = st["outputs"][name]
    assert syslog_out["last_success"] is None and syslog_out["state"] is None
    failed = calendar.timegm(time.strptime(syslog_out["last_failure"], "%Y-%m-%dT%H:%M:%SZ"))
    assert started - 2 <= failed <= time.time() + 1
    # the file output has the events, but nothing is delivered until every output has them
    assert st["outputs"][f"ndjson:{out}"]["last_success"] is None
    assert re.search(rf"{re.escape(name)} +last success never; last failure 20", shown), shown
