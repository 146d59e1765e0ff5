"""The shipper's own log, as an operator or a log collector reads it: one line format with the
time zone, the same through the progress bar, JSON on request, a heartbeat when following."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from shipper.cli import _ProgressDisplay
from shipper.logs import setup_logging
from shipper.pipeline import Progress

REPO = Path(__file__).resolve().parents[1]
#: ISO 8601 local time with milliseconds and the UTC offset, then the level
TEXT_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}([+-]\d\d:\d\d)) (DEBUG|INFO|WARNING|ERROR) \S"
)


def config(tmp_path: Path, **pipeline: object) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [
            {
                "type": "rms_usage",
                "paths": [str(tmp_path / "logs" / "*"), str(tmp_path / "none" / "*.log")],
            }
        ],
        "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
        "pipeline": {"workers": 1, "poll_interval": 0.1, **pipeline},
    }
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_log_lines_parse_as_ecs_json(tmp_path, write_rms, cli):
    write_rms(tmp_path / "logs" / "000000001", range(30))
    result = cli("run", "--once", "--log-format", "json", str(config(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines and all({"@timestamp", "log.level", "message"} <= set(x) for x in lines)
    messages = [x["message"] for x in lines]
    assert any("none" in m and "does not exist" in m for m in messages)  # the empty pattern
    assert any(m.startswith("shipped 30 events") for m in messages)  # the summary too


def test_text_log_lines_carry_the_local_time_zone(tmp_path, write_rms, cli):
    write_rms(tmp_path / "logs" / "000000001", range(5))
    env = {"TZ": "Asia/Kolkata"}  # +05:30 all year: an offset no default would produce
    result = cli("run", "--once", str(config(tmp_path)), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    logged = [line for line in result.stderr.splitlines() if not line.startswith("shipped")]
    assert logged
    for line in logged:
        m = TEXT_LINE.match(line)
        assert m, line
        assert m.group(2) == "+05:30"


def test_a_log_line_reads_the_same_with_and_without_the_progress_bar(capsys):
    from rich.console import Console

    long = "x" * 150  # longer than the console: printed whole, not wrapped
    setup_logging()
    logging.getLogger("shipper").warning("file %s: %s", "a.log", long)
    plain = capsys.readouterr().err.rstrip("\n")
    buffer = io.StringIO()
    setup_logging(console=Console(file=buffer, width=80, force_terminal=True))
    logging.getLogger("shipper").warning("file %s: %s", "a.log", long)
    through_bar = buffer.getvalue().rstrip("\n")
    assert TEXT_LINE.match(plain) and TEXT_LINE.match(through_bar)
    assert plain.split(" ", 1)[1] == through_bar.split(" ", 1)[1]  # all but the time
    assert "\x1b[" not in through_bar  # no colours or markup added


def test_the_progress_bar_fits_80_columns_and_shows_the_total_at_once():
    from rich.console import Console

    progress = Progress(files_total=12345, bytes_total=987_654_321_000)
    display = _ProgressDisplay(progress, Console(file=io.StringIO(), width=80))
    with display:
        display.update()  # the first frame: right after the scan, nothing read yet
        first = Console(width=80, record=True, file=io.StringIO())
        first.print(display._bar.get_renderable())
        progress.files_done, progress.bytes_done, progress.records = 9999, 10**11, 10**8
        display.update()
        later = Console(width=80, record=True, file=io.StringIO())
        later.print(display._bar.get_renderable())
    first_text, later_text = first.export_text(), later.export_text()
    assert "987.7 GB" in first_text  # the total, from the first frame
    for text in (first_text, later_text):
        lines = text.rstrip("\n").splitlines()
        assert len(lines) == 1 and len(lines[0]) <= 80, text
    assert "9999/12345 files" in later_text


@pytest.mark.skipif(sys.platform == "win32", reason="stopped by SIGTERM")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_follow_mode_logs_a_heartbeat(tmp_path, write_rms, log_format):
    write_rms(tmp_path / "logs" / "000000001", range(40))
    cfg = config(tmp_path, heartbeat_interval="200ms")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper.cli", "run", "--log-format", log_format, str(cfg)],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = tmp_path / "out.ndjson"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        out.exists() and len(out.read_text().splitlines()) == 40
    ):
        time.sleep(0.05)
    time.sleep(0.5)  # a heartbeat or two after the shipping
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    beats = [line for line in err.splitlines() if "heartbeat:" in line]
    assert beats, err
    # the lag: from the newest event shipped to now, whatever the output (NDJSON here reads
    # no timestamps itself)
    newest = max(json.loads(line)["@timestamp"] for line in out.read_text().splitlines())
    when = datetime.fromisoformat(newest.replace("Z", "+00:00"))
    lag = (datetime.now(timezone.utc) - when).total_seconds()
    if log_format == "json":
        last = json.loads(beats[-1])
        assert last["shipper"]["events"] == 40
        assert last["shipper"]["backlog_bytes"] == 0
        assert abs(last["shipper"]["lag_seconds"] - lag) < 60, beats[-1]
    else:
        assert TEXT_LINE.match(beats[-1])
        assert "heartbeat: 40 events shipped" in beats[-1]
        assert "backlog 0 B" in beats[-1]
        said = re.search(r"lag ([\d,]+) s$", beats[-1])
        assert said, beats[-1]
        assert abs(int(said.group(1).replace(",", "")) - lag) < 60, beats[-1]
