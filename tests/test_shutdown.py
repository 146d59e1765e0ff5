"""Stopping with an output down: a signal ends every wait, the exit is bounded and its code
says what happened, and the next run ships what the stopped one had not committed, once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import closed_port

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

REPO = Path(__file__).resolve().parents[1]
EVENTS = 120


@pytest.fixture
def osmem() -> Iterator[str]:
    """A real OpenSearch-compatible engine on loopback (skips when not installed)."""
    server_mod = pytest.importorskip("osmem_server", reason="pip install osmem-server")
    try:
        server = server_mod.OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    except server_mod.OsmemError as e:
        pytest.skip(f"osmem-server cannot start here: {e}")
    try:
        yield server.url
    finally:
        server.close()


class BlackHole:
    """A port that accepts connections and never answers: a request to it hangs."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.connected = threading.Event()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._held.append(conn)
            self.connected.set()

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


class Shipper:
    """``shipper run`` in a subprocess, its standard error collected line by line."""

    def __init__(self, cfg: Path, *args: str, new_session: bool = False) -> None:
        """``new_session``: the shipper leads a process group of its own, as in a terminal,
        so that a signal can be sent to the whole group."""
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipper.cli", "run", "--no-progress", *args, str(cfg)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{needle!r} not logged:\n{self.text}")
            time.sleep(0.05)

    def stop(self, sig: int, timeout: float = 30) -> tuple[int, float]:
        """Send ``sig``; the exit code and how long the exit took."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(5)
        return code, time.monotonic() - started


def write_config(tmp_path: Path, output: dict[str, Any], **pipeline: Any) -> Path:
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
                "outputs": [output],
                "pipeline": {"workers": 1, "poll_interval": 0.2, **pipeline},
            }
        )
    )
    return cfg


def elasticsearch(url: str, **more: Any) -> dict[str, Any]:
    return {"type": "opensearch", "hosts": [url], "index": "shut-{dataset}", **more}


def syslog(port: int) -> dict[str, Any]:
    return {"type": "syslog", "hosts": [f"127.0.0.1:{port}"], "transport": "tcp", "timeout": 2}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("once", [False, True], ids=["follow", "once"])
def test_a_stop_with_elasticsearch_down_exits_at_once(tmp_path, write_rms, sig, once):
    write_rms(tmp_path / "logs" / "000000001", range(EVENTS))
    cfg = write_config(tmp_path, elasticsearch(f"http://127.0.0.1:{closed_port()}"))
    shipper = Shipper(cfg, *(["--once"] if once else []))
    shipper.wait_for("retrying")
    code, took = shipper.stop(sig)
    assert took < 10, shipper.text  # the default shutdown_timeout, and far less in fact
    text = shipper.text
    assert "Traceback" not in text
    assert "not committed (it is read again at the next run)" in text
    if once:  # cut short: the conventional 128 + signal, and how far it got
        assert code == 128 + sig, text
        assert f"interrupted by {signal.Signals(sig).name}: 0 events shipped" in text
        assert "1 of 1 files read" in text
    else:  # following ends by a stop: a clean, expected exit
        assert code == 0, text


def test_a_stop_with_syslog_down_exits_at_once(tmp_path, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(EVENTS))
    cfg = write_config(tmp_path, syslog(closed_port()))
    for args, expected in (((), 0), (("--once",), 128 + signal.SIGTERM)):
        shipper = Shipper(cfg, *args)
        shipper.wait_for("retrying")
        code, took = shipper.stop(signal.SIGTERM)
        assert code == expected, shipper.text
        assert took < 10, shipper.text
        assert "not committed" in shipper.text


def test_after_a_stop_the_next_run_ships_everything_exactly_once(tmp_path, write_rms, osmem):
    import requests

    write_rms(tmp_path / "logs" / "000000001", range(EVENTS))
    write_rms(tmp_path / "logs" / "000000002", range(EVENTS, 2 * EVENTS))
    dead = write_config(tmp_path, elasticsearch(f"http://127.0.0.1:{closed_port()}"))
    shipper = Shipper(dead, "--once")
    shipper.wait_for("retrying")
    assert shipper.stop(signal.SIGINT)[0] == 130
    live = write_config(tmp_path, elasticsearch(osmem))
    rerun = subprocess.run(
        [sys.executable, "-m", "shipper.cli", "run", "--once", "--no-progress", str(live)],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    requests.post(f"{osmem}/shut-*/_refresh", timeout=10)
    hits = requests.post(
        f"{osmem}/shut-*/_search",
        json={"size": 10000, "query": {"match_all": {}}, "_source": False},
        timeout=10,
    ).json()["hits"]["hits"]
    ids = [h["_id"] for h in hits]
    assert len(ids) == 2 * EVENTS and len(set(ids)) == 2 * EVENTS
    assert f"shipped {2 * EVENTS:,} events" in rerun.stderr


def test_a_hung_output_is_left_after_shutdown_timeout(tmp_path, write_rms, black_hole):
    write_rms(tmp_path / "logs" / "000000001", range(EVENTS))
    out = elasticsearch(f"http://127.0.0.1:{black_hole.port}", request_timeout=120)
    cfg = write_config(tmp_path, out, shutdown_timeout="1s")
    shipper = Shipper(cfg)
    assert black_hole.connected.wait(30)  # a request on the wire, for an answer never to come
    time.sleep(0.2)
    code, took = shipper.stop(signal.SIGTERM)
    assert code == 143, shipper.text
    assert 1 <= took < 8, shipper.text
    assert "pipeline.shutdown_timeout" in shipper.text and "Traceback" not in shipper.text


def test_a_second_ctrl_c_exits_at_once(tmp_path, write_rms, black_hole):
    write_rms(tmp_path / "logs" / "000000001", range(EVENTS))
    out = elasticsearch(f"http://127.0.0.1:{black_hole.port}", request_timeout=120)
    cfg = write_config(tmp_path, out, shutdown_timeout="60s")
    shipper = Shipper(cfg)
    assert black_hole.connected.wait(30)
    time.sleep(0.2)
    shipper.proc.send_signal(signal.SIGINT)
    shipper.wait_for("Ctrl-C again to exit at once")
    assert shipper.proc.poll() is None  # still waiting for the hung request
    code, took = shipper.stop(signal.SIGINT)
    assert code == 130, shipper.text
    assert took < 5, shipper.text
    assert "SIGINT again: exiting now" in shipper.text


def test_sighup_is_logged_and_does_not_stop_the_shipper(tmp_path, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(10))
    cfg = write_config(tmp_path, {"type": "ndjson", "path": str(tmp_path / "out.ndjson")})
    shipper = Shipper(cfg)
    shipper.wait_for("following 1 input(s)")
    shipper.proc.send_signal(signal.SIGHUP)
    shipper.wait_for("SIGHUP: ignored")
    write_rms(tmp_path / "logs" / "000000002", range(10, 20))  # still shipping after it
    deadline = time.monotonic() + 30
    out = tmp_path / "out.ndjson"
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) == 20:
            break
        time.sleep(0.1)
    code, _ = shipper.stop(signal.SIGTERM)
    assert code == 0, shipper.text
    assert len(out.read_text().splitlines()) == 20


def big_rms(path: Path, first: int, size: int = 9 * 1024 * 1024) -> int:
    """An RMS file of about ``size`` bytes (enough for the pipeline to start its decoder
    processes); how many records it holds."""
    from tests.conftest import rms_row, rms_text

    rows = [rms_row(first)]
    line = len("\t".join(rows[0])) + 1
    rows += [rms_row(n) for n in range(first + 1, first + size // line + 1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rms_text(rows), encoding="utf-8")
    return len(rows)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def wait_for_workers(shipper: Shipper, n: int = 2) -> list[int]:
    deadline = time.monotonic() + 30
    while len(found := children(shipper.proc.pid)) < n:
        if time.monotonic() > deadline or shipper.proc.poll() is not None:
            raise AssertionError(f"no decoder processes started:\n{shipper.text}")
        time.sleep(0.02)
    return found


def wait_for_lines(path: Path, n: int, shipper: Shipper, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_bytes().count(b"\n") >= n):
        if time.monotonic() > deadline or shipper.proc.poll() is not None:
            got = path.read_bytes().count(b"\n") if path.exists() else 0
            raise AssertionError(f"{got} of {n} events shipped:\n{shipper.text}")
        time.sleep(0.1)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")
def test_a_hangup_of_the_whole_process_group_does_not_kill_the_decoders(tmp_path):
    """A closing terminal sends SIGHUP to every process of its group, the decoder processes
    included: they must leave stopping to the shipper, which ignores it."""
    out = tmp_path / "out.ndjson"
    first = big_rms(tmp_path / "logs" / "000000001", 0)
    cfg = write_config(tmp_path, {"type": "ndjson", "path": str(out)}, workers=2)
    shipper = Shipper(cfg, new_session=True)
    try:
        workers = wait_for_workers(shipper)
        wait_for_lines(out, first, shipper)
        os.killpg(shipper.proc.pid, signal.SIGHUP)
        shipper.wait_for("SIGHUP: ignored")
        time.sleep(0.2)  # for a decoder that did not ignore it to be gone
        assert sorted(children(shipper.proc.pid)) == sorted(workers), shipper.text
        second = big_rms(tmp_path / "logs" / "000000002", first)  # the decoders' work again
        wait_for_lines(out, first + second, shipper)
    finally:
        code, _ = shipper.stop(signal.SIGTERM)
    assert code == 0, shipper.text
    assert "ended unexpectedly" not in shipper.text
    assert out.read_bytes().count(b"\n") == first + second


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_sent_to_the_whole_process_group_is_the_shippers_to_handle(tmp_path, sig):
    """Ctrl-C in a terminal reaches every process of the group (and ``kill -TERM -PGID`` too):
    the decoders ignore it, the shipper stops and says how far it got."""
    big_rms(tmp_path / "logs" / "000000001", 0)
    cfg = write_config(tmp_path, {"type": "ndjson", "path": str(tmp_path / "o")}, workers=2)
    shipper = Shipper(cfg, "--once", new_session=True)
    wait_for_workers(shipper)
    started = time.monotonic()
    os.killpg(shipper.proc.pid, sig)
    code = shipper.proc.wait(30)
    shipper._reader.join(5)
    assert code == 128 + sig, shipper.text
    assert time.monotonic() - started < 10
    assert f"interrupted by {signal.Signals(sig).name}" in shipper.text
    assert "ended unexpectedly" not in shipper.text and "Traceback" not in shipper.text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_the_shipper_starts_is_an_interruption(tmp_path, write_rms, sig):
    """Ctrl-C in the first moments of ``--once`` (loading the configuration, say) is the same
    interruption as later: 128 + the signal and a line saying so, not click's "Aborted!".

    The configuration's password file is a FIFO: loading it waits for the test to write the
    password, so the signal surely arrives while the configuration is being loaded."""
    write_rms(tmp_path / "logs" / "000000001", range(10))
    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    out = {
        "type": "elasticsearch",
        "hosts": [f"http://127.0.0.1:{closed_port()}"],
        "username": "elastic",
        "password_file": str(fifo),
    }
    shipper = Shipper(write_config(tmp_path, out), "--once")
    # open() returns once the shipper opened the FIFO: it is loading its configuration
    with contextlib.suppress(BrokenPipeError), open(fifo, "w") as f:
        shipper.proc.send_signal(sig)
        time.sleep(0.3)  # for the signal to be handled while the shipper waits for the password
        f.write("Start-up-secret-1\n")  # (a broken pipe when the signal killed it)
    code = shipper.proc.wait(30)
    shipper._reader.join(5)
    assert code == 128 + sig, shipper.text
    assert f"interrupted by {signal.Signals(sig).name} while starting: nothing shipped" in (
        shipper.text
    )
    assert "Aborted!" not in shipper.text and "Traceback" not in shipper.text


def test_an_interrupted_once_counts_files_read_the_same_way_in_both_lines(tmp_path, write_rms):
    """The summary and the "interrupted" line count the same thing: files read to their end.
    Here the first file's batch is being delivered (to an output that is down) and the second
    file's is waiting for it, the reading of that file not finished."""
    for n in range(4):
        write_rms(tmp_path / "logs" / f"00000000{n}", range(n * EVENTS, (n + 1) * EVENTS))
    out = elasticsearch(f"http://127.0.0.1:{closed_port()}")
    shipper = Shipper(write_config(tmp_path, out, batch_events=EVENTS // 2), "--once")
    shipper.wait_for("retrying")
    code, _ = shipper.stop(signal.SIGINT)
    assert code == 130, shipper.text
    assert "0 files refused; 1 files read in" in shipper.text, shipper.text
    assert "interrupted by SIGINT: 0 events shipped; 1 of 4 files read, 3 left;" in shipper.text
