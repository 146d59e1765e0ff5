"""As a user runs it: ``shipper check --outputs`` and ``shipper run --once`` with a syslog output
beside an NDJSON one, into a real rsyslog; a second run ships nothing again."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from .receivers import REPO

pytestmark = pytest.mark.integration


def shipper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def config(tmp_path: Path, port: int, transport: str = "tcp") -> Path:
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        f"inputs: [{{type: rms_usage, paths: ['{REPO / 'examples/rms'}/*']}}]\n"
        "outputs:\n"
        f"  - {{type: ndjson, path: '{tmp_path / 'events.ndjson'}'}}\n"
        f"  - {{type: syslog, hosts: ['127.0.0.1:{port}'], transport: {transport},"
        " hostname: shipper-test, retry_rounds: 0, backoff_initial: 0.05, timeout: 2}\n"
    )
    return cfg


@pytest.mark.parametrize("kind,transport", [("imptcp", "tcp"), ("imrelp", "relp")])
def test_run_once_ships_every_event_once_and_a_rerun_nothing(
    rsyslog: Any, tmp_path: Path, kind: str, transport: str
) -> None:
    r = rsyslog(kind, parse="none")
    cfg = config(tmp_path, r.port, transport)
    checked = shipper("check", "--outputs", str(cfg))
    assert checked.returncode == 0, checked.stderr
    assert f"127.0.0.1:{r.port}" in checked.stdout + checked.stderr

    first = shipper("run", "--once", "--no-progress", str(cfg))
    assert first.returncode == 0, first.stderr
    written = [orjson.loads(x) for x in (tmp_path / "events.ndjson").read_bytes().splitlines()]
    assert len(written) > 300
    got = [orjson.loads(line["msg"]) for line in r.wait_for(len(written))]
    assert sorted(got, key=lambda e: e["event"]["id"]) == sorted(
        written, key=lambda e: e["event"]["id"]
    )

    again = shipper("run", "--once", "--no-progress", str(cfg))
    assert again.returncode == 0 and "shipped 0 events" in again.stderr, again.stderr
    assert len(r.wait_for(len(written) + 1, timeout=1)) == len(written)


def test_check_names_the_receiver_it_cannot_reach(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    checked = shipper("check", "--outputs", str(config(tmp_path, port)))
    assert checked.returncode == 1
    assert f"127.0.0.1:{port}: cannot connect" in checked.stdout + checked.stderr
