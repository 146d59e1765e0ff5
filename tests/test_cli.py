"""What a user sees from the command line: progress on a terminal, stdout output, check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def config(tmp_path: Path, outputs: list[dict]) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
        "outputs": outputs,
    }
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="uses a pseudo-terminal")
def test_once_on_a_terminal_shows_progress(tmp_path, write_rms, repo):
    import pty

    for i in range(3):
        write_rms(tmp_path / "logs" / f"{i:09d}", range(i * 20000, (i + 1) * 20000))
    cfg = config(tmp_path, [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}])
    leader, follower = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(repo), COLUMNS="160", TERM="xterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper.cli", "run", "--once", str(cfg)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        seen += data
    proc.wait(timeout=120)
    os.close(leader)
    text = seen.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "shipping" in text and "files" in text and "rec/s" in text
    assert "shipped 60,000 events" in text


def test_stdout_output_pipes_events_and_keeps_the_summary_on_stderr(tmp_path, write_rms, cli):
    write_rms(tmp_path / "logs" / "000000001", range(25))
    cfg = config(tmp_path, [{"type": "stdout"}])
    result = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 25
    assert all(json.loads(line)["event"]["dataset"] == "azure_rms.usage" for line in lines)
    assert "shipped 25 events" in result.stderr


def test_check_accepts_the_quickstart_and_reports_what_it_found(repo, cli):
    result = cli("check", "examples/quickstart.yaml", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "OK (1 input(s), 1 output(s)" in result.stdout


def test_check_outputs_reports_an_unwritable_ndjson_folder(tmp_path, cli):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = config(tmp_path, [{"type": "ndjson", "path": str(blocker / "sub" / "out.ndjson")}])
    result = cli("check", "--outputs", str(cfg), cwd=tmp_path)
    assert result.returncode == 1
    assert "outputs[0] (ndjson)" in result.stderr and "is a file, not a folder" in result.stderr


def test_check_outputs_asks_each_output_module(tmp_path, cli, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(1))
    cfg = config(
        tmp_path,
        [{"type": "csv", "path": str(tmp_path / "o" / "u.csv")}, {"type": "stdout"}],
    )
    result = cli("check", "--outputs", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"outputs[0] (csv): {tmp_path / 'o' / 'u.csv'}: writable" in result.stdout
    assert "outputs[1] (stdout): standard output" in result.stdout


def test_setup_dry_run_names_what_it_would_install_without_connecting(tmp_path, cli):
    nothing = config(tmp_path, [{"type": "ndjson", "path": str(tmp_path / "o.ndjson")}])
    result = cli("setup", str(nothing), cwd=tmp_path)
    assert result.returncode == 1 and "has anything to set up" in result.stderr
    cfg = config(tmp_path, [{"type": "opensearch", "hosts": ["http://127.0.0.1:9"]}])
    result = cli("setup", "--dry-run", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("opensearch: ") for line in lines)
    assert any("index template" in line and ": would install (PUT " in line for line in lines)


def test_an_output_file_that_cannot_be_opened_is_one_clear_line(tmp_path, cli, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(3))
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = config(tmp_path, [{"type": "csv", "path": str(blocker / "out.csv")}])
    result = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{blocker / 'out.csv'}: cannot open" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_names_each_input_pattern_that_finds_nothing(tmp_path, cli, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(3))
    (tmp_path / "empty").mkdir()
    cfg = tmp_path / "shipper.yaml"
    patterns = [str(tmp_path / "logs" / "*"), str(tmp_path / "empty" / "*.log"),
                str(tmp_path / "missing" / "*")]  # fmt: skip
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": patterns}],
                "outputs": [{"type": "stdout"}],
            }
        )
    )
    result = cli("check", str(cfg), cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: inputs[0].paths[1]: {patterns[1]}: matches no file",
        f"error: inputs[0].paths[2]: {patterns[2]}: folder {tmp_path / 'missing'} does not exist",
    ]
    # in a run the same is a warning: files may yet arrive, and the rest ships
    result = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"WARNING inputs[0].paths[1]: {patterns[1]}: matches no file" in result.stderr
    assert "shipped 3 events" in result.stderr


def test_check_passes_a_good_config_and_creates_nothing(tmp_path, cli, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(3))
    cfg = config(tmp_path, [{"type": "stdout"}])
    result = cli("check", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data").exists()  # creatable is enough


def test_check_skip_local_validates_a_configuration_for_another_machine(tmp_path, cli):
    cfg = config(tmp_path, [{"type": "stdout"}])  # its input folder is not here
    assert cli("check", str(cfg), cwd=tmp_path).returncode == 1
    result = cli("check", "--skip-local", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_an_unusable_data_dir_is_one_line_in_check_and_run(tmp_path, cli, write_rms):
    write_rms(tmp_path / "logs" / "000000001", range(3))
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the data dir's parent should be: even root fails
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(blocker / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
                "outputs": [{"type": "stdout"}],
            }
        )
    )
    check = cli("check", str(cfg), cwd=tmp_path)
    assert check.returncode == 1
    assert f"error: data_dir {blocker / 'data'}: cannot create it: {blocker} is a file" in (
        check.stderr
    )
    run = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    [line] = run.stderr.splitlines()
    assert line.endswith(f"ERROR data_dir {blocker / 'data'}: cannot create it: Not a directory")


def without_root() -> list[str]:
    """A command prefix that runs the command bound by file permissions: nothing for a user,
    and for root (CI runs as root) ``setpriv`` dropping the capabilities that let root write
    and read anywhere. It keeps the uid, so the interpreter stays reachable wherever it is
    installed (under /root, say, where another user could not run it)."""
    if sys.platform == "win32" or os.geteuid() != 0:
        return []
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and no setpriv (util-linux) to drop root's privileges")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_read_only_data_dir_is_one_line(tmp_path, write_rms, repo):
    write_rms(tmp_path / "logs" / "000000001", range(3))
    cfg = config(tmp_path, [{"type": "stdout"}])
    (tmp_path / "data").mkdir()
    (tmp_path / "data").chmod(0o500)
    try:
        run = subprocess.run(
            [*without_root(), sys.executable, "-m", "shipper.cli", "run", "--once", str(cfg)],
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(repo)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        (tmp_path / "data").chmod(0o700)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"data_dir {tmp_path / 'data'}: not writable: Permission denied" in run.stderr


def test_retry_rounds_is_accepted_with_a_warning_naming_the_replacement(tmp_path, cli):
    cfg = config(tmp_path, [{"type": "syslog", "hosts": ["127.0.0.1:514"], "retry_rounds": 3}])
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "x").write_text("")
    result = cli("check", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "syslog output: retry_rounds is retired and ignored" in result.stderr
    assert "one retry policy" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and FIFOs")
def test_ctrl_c_in_any_command_exits_130(tmp_path, repo):
    """``check`` interrupted while it reads the configuration (its password file is a FIFO
    that the test holds open): the shell's 130, not click's "Aborted!" and 1."""
    import contextlib
    import signal
    import time

    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    cfg = config(
        tmp_path,
        [{"type": "elasticsearch", "username": "elastic", "password_file": str(fifo)}],
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper.cli", "check", str(cfg)],
        env=dict(os.environ, PYTHONPATH=str(repo)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with contextlib.suppress(BrokenPipeError), open(fifo, "w") as f:
        proc.send_signal(signal.SIGINT)  # the shipper has the FIFO open: it is loading
        time.sleep(0.3)
        f.write("secret-pw\n")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Aborted!" not in err and "Traceback" not in err
