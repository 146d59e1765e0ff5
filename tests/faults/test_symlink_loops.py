"""Two symlink loops under ``**`` (defect: the scan recursed forever, memory growing, and
ignored SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.test_follow_and_crash import output_ids, start, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX symlinks and signals")


def test_follow_mode_over_symlink_loops_ships_each_file_once_and_stops_on_sigterm(
    tmp_path, write_rms
):
    logs = tmp_path / "logs"
    write_rms(logs / "a" / "000000001", range(0, 10))
    write_rms(logs / "b" / "c" / "000000002", range(10, 20))
    os.symlink("..", logs / "a" / "up")  # a/up -> logs
    os.symlink("../..", logs / "b" / "c" / "back")  # b/c/back -> logs: paths multiply
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(logs / "**" / "*")]}],
                "outputs": [{"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")}],
                "pipeline": {"poll_interval": 0.1},
            }
        )
    )
    proc = start(cfg)
    try:
        wait_for(lambda: len(output_ids(tmp_path)) >= 20, timeout=30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    except (AssertionError, subprocess.TimeoutExpired):
        proc.kill()
        raise
    assert proc.returncode == 0, err
    ids = output_ids(tmp_path)
    assert len(ids) == len(set(ids)) == 20
