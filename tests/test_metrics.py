"""The Prometheus endpoint, scraped while ``shipper run`` follows the examples: its counters say
what was shipped, skipped and quarantined, per input and per output."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from shipper.config import parse_config
from shipper.errors import ConfigError
from shipper.pipeline import Pipeline
from tests.conftest import closed_port, start_shipper

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
_SAMPLE = re.compile(r"^([a-z_]+)(?:\{([^}]*)\})? (\S+)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def one(samples: dict, name: str, **labels: str) -> float:
    (value,) = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    return value


def start(tmp_path: Path, config: dict) -> subprocess.Popen[str]:
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return start_shipper(path, tmp_path)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def wait_for(
    port: int, proc: subprocess.Popen[str], ready: Callable[[dict], bool], timeout: float = 60
) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"shipper exited {proc.returncode}: {proc.stderr and proc.stderr.read()}")
        try:
            last = scrape(port)
        except OSError:
            last = {}
        if last and ready(last):
            return last
        time.sleep(0.2)
    stop(proc)
    pytest.fail(f"metrics never got there: {last}")


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to a child")
def test_counters_say_what_a_following_shipper_shipped(tmp_path: Path):
    rms, windows = tmp_path / "rms", tmp_path / "windows"
    shutil.copytree(EXAMPLES / "rms", rms)
    shutil.copytree(EXAMPLES / "windows", windows)
    held_back = rms / "rmslog-2024-03-05.log"  # arrives while the shipper follows
    later = held_back.read_bytes()
    held_back.unlink()
    out = tmp_path / "out" / "events.ndjson"
    data = tmp_path / "data"
    port = free_port()
    began = time.time()
    proc = start(
        tmp_path,
        {
            "data_dir": str(data),
            "inputs": [
                {"type": "rms_usage", "paths": [str(rms / "*")]},
                {"type": "windows_events", "paths": [str(windows / "*")]},
            ],
            "outputs": [{"type": "ndjson", "path": str(out)}],
            "pipeline": {"poll_interval": 0.2, "workers": 1},
            "metrics": {"listen": f":{port}"},  # the loopback, by default
        },
    )
    try:

        def caught_up(s: dict, more_than: int = 0) -> bool:
            # an output counts an event when it acknowledges it, an input once the batch is
            # committed (a moment later): caught up means both
            shipped = total(s, "shipper_output_events_shipped_total")
            committed = total(s, "shipper_input_events_shipped_total")
            return shipped > more_than and shipped == committed == len(lines(out))

        s = wait_for(port, proc, caught_up)
        first = len(lines(out))
        ndjson = f"ndjson:{out}"
        assert one(s, "shipper_output_events_shipped_total", output=ndjson) == first
        by_input = {
            t: one(s, "shipper_input_events_shipped_total", type=t)
            for t in ("rms_usage", "windows_events")
        }
        datasets = [json.loads(line)["event"]["dataset"] for line in lines(out)]
        assert by_input["rms_usage"] == datasets.count("azure_rms.usage") > 0
        assert by_input["windows_events"] == first - by_input["rms_usage"] > 0
        quarantined = lines(data / "quarantine.jsonl")
        assert total(s, "shipper_input_records_quarantined_total") == len(quarantined) > 0
        read = total(s, "shipper_input_records_read_total")
        dups = total(s, "shipper_input_duplicates_total")
        assert read == first + dups + len(quarantined)  # every record read is accounted for
        assert one(s, "shipper_output_send_seconds_count", output=ndjson) >= 1
        assert began <= one(s, "shipper_output_last_success_timestamp_seconds") <= time.time()
        assert math.isnan(one(s, "shipper_output_last_failure_timestamp_seconds"))
        assert one(s, "shipper_output_retries_total", output=ndjson) == 0
        newest = max(json.loads(line)["@timestamp"] for line in lines(out))
        when = datetime.fromisoformat(newest.replace("Z", "+00:00"))
        lag = (datetime.now(timezone.utc) - when).total_seconds()
        assert abs(one(s, "shipper_lag_seconds") - lag) < 60

        held_back.write_bytes(later)  # a new download: the counters follow
        s = wait_for(port, proc, lambda s: caught_up(s, more_than=first))
        assert one(s, "shipper_input_events_shipped_total", type="rms_usage") == (
            by_input["rms_usage"] + len(lines(out)) - first
        )
        assert one(s, "shipper_backlog_bytes") >= 0
    finally:
        err = stop(proc)
    summary = re.search(
        r"shipped ([\d,]+) events, ([\d,]+) duplicates skipped, ([\d,]+) lines quarantined", err
    )
    assert summary, err
    shipped, duplicates, quarantined_lines = (int(g.replace(",", "")) for g in summary.groups())
    assert shipped == total(s, "shipper_input_events_shipped_total") == len(lines(out))
    assert duplicates == total(s, "shipper_input_duplicates_total")
    assert quarantined_lines == total(s, "shipper_input_records_quarantined_total")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to a child")
def test_an_unavailable_output_shows_as_retries_and_a_last_failure(tmp_path: Path):
    dead = closed_port()
    port = free_port()
    es = f"elasticsearch:http://elastic:****@127.0.0.1:{dead}"  # its password masked
    proc = start(
        tmp_path,
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(EXAMPLES / "rms" / "000000001")]}],
            "outputs": [
                {"type": "ndjson", "path": str(tmp_path / "e.ndjson")},
                {
                    "type": "elasticsearch",
                    "hosts": [f"http://elastic:Metr1cs-secret@127.0.0.1:{dead}"],
                    "backoff_initial": 0.05,
                    "backoff_max": 0.1,
                },
            ],
            "pipeline": {"workers": 1},
            "metrics": {"listen": f"127.0.0.1:{port}"},
        },
    )
    try:
        s = wait_for(port, proc, lambda s: total(s, "shipper_output_retries_total") >= 3)
    finally:
        stop(proc)
    assert one(s, "shipper_output_retries_total", output=es) >= 3
    assert not [labels for _, labels in s if "Metr1cs-secret" in str(labels)]
    assert one(s, "shipper_output_last_failure_timestamp_seconds", output=es) > time.time() - 60
    assert math.isnan(one(s, "shipper_output_last_success_timestamp_seconds", output=es))
    # the file output has it, but nothing counts as shipped until every output has
    assert (
        one(s, "shipper_output_events_shipped_total", output=f"ndjson:{tmp_path / 'e.ndjson'}") > 0
    )
    assert total(s, "shipper_input_events_shipped_total") == 0


def test_metrics_are_off_unless_asked_and_on_the_loopback_by_default():
    assert parse_config({}).metrics.address is None
    assert parse_config({"metrics": {"listen": ":9108"}}).metrics.address == ("127.0.0.1", 9108)
    assert parse_config({"metrics": {"listen": "9108"}}).metrics.address == ("127.0.0.1", 9108)
    assert parse_config({"metrics": {"listen": "[::1]:9"}}).metrics.address == ("::1", 9)
    with pytest.raises(ConfigError, match=r"metrics\.listen: .*host:port"):
        parse_config({"metrics": {"listen": "localhost:http"}})


def test_a_port_in_use_is_a_clear_error(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = parse_config(
            {"data_dir": str(tmp_path / "data"), "metrics": {"listen": f"127.0.0.1:{port}"}}
        )
        with pytest.raises(ConfigError, match=rf"metrics.listen 127.0.0.1:{port}: cannot listen"):
            Pipeline(cfg, once=True).run()


def status_json(cfg: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-m", "shipper.cli", "status", "--json", str(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to a child")
def test_with_the_output_down_the_backlog_is_what_is_not_committed(tmp_path: Path):
    """Everything is read at once, nothing can be delivered: the backlog an operator watches
    is every byte still to ship, the same figure ``shipper status`` gives."""
    dead = closed_port()
    port = free_port()
    proc = start(
        tmp_path,
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(EXAMPLES / "rms" / "*")]}],
            "outputs": [
                {
                    "type": "elasticsearch",
                    "hosts": [f"http://127.0.0.1:{dead}"],
                    "backoff_initial": 0.05,
                    "backoff_max": 0.1,
                },
            ],
            "pipeline": {"workers": 1},
            "metrics": {"listen": f"127.0.0.1:{port}"},
        },
    )
    try:
        s = wait_for(port, proc, lambda s: total(s, "shipper_output_retries_total") >= 2)
        status = status_json(tmp_path / "shipper.yaml")
    finally:
        stop(proc)
    behind = status["totals"]["bytes_behind"]
    assert behind == sum(p.stat().st_size for p in (EXAMPLES / "rms").iterdir()) > 0
    assert one(s, "shipper_backlog_bytes") == behind


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to a child")
def test_dead_lettered_events_are_counted(tmp_path: Path):
    """Syslog over UDP with a size limit every event exceeds: each goes to the dead-letter
    file, and the counter says how many."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = free_port()
    data = tmp_path / "data"
    proc = start(
        tmp_path,
        {
            "data_dir": str(data),
            "inputs": [{"type": "rms_usage", "paths": [str(EXAMPLES / "rms" / "000000001")]}],
            "outputs": [
                {
                    "type": "syslog",
                    "hosts": [f"127.0.0.1:{receiver.getsockname()[1]}"],
                    "transport": "udp",
                    "max_message_size": 480,
                }
            ],
            "pipeline": {"workers": 1},
            "metrics": {"listen": f"127.0.0.1:{port}"},
        },
    )
    try:
        s = wait_for(port, proc, lambda s: total(s, "shipper_input_events_shipped_total") > 0)
    finally:
        stop(proc)
        receiver.close()
    dead = lines(data / "dead_letter" / "syslog.jsonl")
    assert len(dead) == total(s, "shipper_input_events_shipped_total") > 0
    assert total(s, "shipper_output_dead_lettered_total") == len(dead)
