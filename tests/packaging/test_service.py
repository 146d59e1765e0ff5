"""The Windows service, as far as it runs without Windows: the module imports without pywin32,
its body (``ServiceRunner``) follows the inputs until stopped and commits what it delivered,
the command line it registers, and a clear refusal on other platforms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shipper.errors import ConfigError
from shipper.service import (
    ServiceError,
    ServiceRunner,
    acl_command,
    default_home,
    install,
    launch,
    remove,
)
from tests.conftest import REPO


def test_imports_and_explains_itself_without_pywin32():
    probe = (
        "import sys\n"
        "for m in ('win32service', 'win32serviceutil', 'servicemanager'): sys.modules[m] = None\n"
        "import shipper.service as s\n"
        "try:\n"
        "    s.ShipperService\n"
        "except s.ServiceError as e:\n"
        "    print(e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert 'pip install "rms-shipper[windows]"' in r.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="the refusal is for other platforms")
@pytest.mark.parametrize("action", [lambda: install(Path("x.yaml")), lambda: remove()])
def test_install_and_remove_refuse_clearly_off_windows(action):
    with pytest.raises(ServiceError, match="Windows only.*systemd.*Dockerfile"):
        action()


def test_data_home_is_under_programdata():
    assert default_home({"ProgramData": r"D:\PD"}) == Path(r"D:\PD") / "shipper"
    assert default_home({}) == Path(r"C:\ProgramData") / "shipper"


def test_service_command_line_runs_the_module_with_quoted_paths():
    how = launch(
        Path("C:/Program Data/shipper/shipper.yaml"),
        Path("C:/Program Data/shipper"),
        executable="C:/Python312/python.exe",
        base_executable="C:/Python312/python.exe",
    )
    assert how.exe == "C:/Python312/python.exe"
    assert how.args == (
        '-m shipper.service --config "C:/Program Data/shipper/shipper.yaml"'
        ' --home "C:/Program Data/shipper"'
    )
    assert how.environment == {}
    other = launch(
        Path("c.yaml"), Path("h"), name="shipper-eu", executable="p", base_executable="p"
    )
    assert other.args.endswith("--name shipper-eu")


def test_in_a_venv_the_base_interpreter_runs_with_the_venvs_packages():
    # A venv's python.exe is a launcher whose child would be the real process: the SCM must
    # start the real interpreter.
    how = launch(
        Path("c.yaml"),
        Path("h"),
        executable="/srv/venv/bin/python",
        base_executable="/usr/bin/python3.12",
        site_packages=["/srv/venv/lib/site-packages", "/srv/venv/lib/site-packages"],
    )
    assert how.exe == "/usr/bin/python3.12"
    assert how.environment == {"PYTHONPATH": "/srv/venv/lib/site-packages"}


# --- the service body, for real --------------------------------------------------------------


def write_config(home: Path, logs: Path) -> Path:
    cfg = {
        # relative on purpose: the service resolves it in its home (%ProgramData%\shipper)
        "inputs": [{"type": "rms_usage", "paths": [str(logs / "*.log")]}],
        "outputs": [{"type": "ndjson", "path": "out/events.ndjson"}],
        "pipeline": {"workers": 1, "poll_interval": 0.1, "batch_events": 50},
    }
    path = home.parent / "shipper.yaml"
    path.write_text(json.dumps(cfg))
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the runner changes directory; put it back afterwards
    home, logs = tmp_path / "ProgramData" / "shipper", tmp_path / "RMSLogs"
    logs.mkdir()
    home.parent.mkdir()
    runner = ServiceRunner(write_config(home, logs), home, log_to_file=True)
    yield runner, home, logs
    runner.stop()


def test_runs_in_its_home_until_stopped_and_commits_what_it_delivered(
    service, write_rms, cli, tmp_path
):
    runner, home, logs = service
    errors: list[BaseException] = []

    def body() -> None:
        try:
            runner.run()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = threading.Thread(target=body)
    thread.start()
    out = home / "out" / "events.ndjson"
    write_rms(logs / "day1.log", range(1, 201))
    wait_for(lambda: len(lines(out)) == 200)
    for n in range(2, 12):  # more arrives; the stop comes in the middle of it
        write_rms(logs / f"day{n}.log", range(n * 1000, n * 1000 + 300))
    runner.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []
    assert (home / ".shipper-data" / "checkpoint.sqlite").exists()
    assert "service stopped" in (home / "logs" / "shipper.log").read_text()

    at_stop = lines(out)
    # The next run resumes from the checkpoint: everything written before the stop was
    # committed (nothing cut back and sent again), the rest ships now, all exactly once.
    cfg = home.parent / "shipper.yaml"
    r = cli("run", "--once", str(cfg), cwd=home)
    assert r.returncode == 0, r.stderr
    final = lines(out)
    assert final[: len(at_stop)] == at_stop
    assert f"shipped {len(final) - len(at_stop):,} events, 0 duplicates" in r.stderr
    ids = [json.loads(x)["event"]["id"] for x in final]
    assert len(ids) == len(set(ids)) == 200 + 10 * 300


def test_a_stop_before_the_pipeline_starts_is_not_lost(service, write_rms):
    runner, home, logs = service
    write_rms(logs / "day1.log", range(1, 11))
    runner.stop()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (runner.run(), done.set()))
    thread.start()
    thread.join(timeout=60)
    assert done.is_set()


def test_a_bad_config_fails_the_service_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text("inputs: [{type: rms_usage}]\n")
    runner = ServiceRunner(cfg, tmp_path / "home", log_to_file=False)
    with pytest.raises(ConfigError, match=r"inputs\[0\]\.paths"):
        runner.run()


def test_module_entry_point_refuses_off_windows():
    if sys.platform == "win32":
        pytest.skip("would try to reach the SCM")
    r = subprocess.run(
        [sys.executable, "-m", "shipper.service", "--config", "x.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert r.returncode != 0
    assert "Windows only" in r.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="the refusal is for other platforms")
@pytest.mark.parametrize("args", [["install", "--config", "x.yaml"], ["remove"]])
def test_service_commands_refuse_clearly_off_windows(args):
    from click.testing import CliRunner

    from shipper.service import service_command

    result = CliRunner().invoke(service_command, args)
    assert result.exit_code == 1
    assert f"shipper service {args[0]}: " in result.output
    assert "Windows only" in result.output


def test_install_restricts_the_home_to_the_service_and_administrators():
    argv = acl_command(Path(r"C:\ProgramData\shipper"), r"CONTOSO\svc-shipper")
    assert argv[:4] == ["icacls", r"C:\ProgramData\shipper", "/inheritance:r", "/grant:r"]
    # well-known SIDs, not names (which are translated on non-English Windows)
    assert argv[4:] == [
        "*S-1-5-18:(OI)(CI)F",
        "*S-1-5-32-544:(OI)(CI)F",
        r"CONTOSO\svc-shipper:(OI)(CI)M",
    ]
    assert len(acl_command(Path("h"), None)) == 6


@pytest.mark.skipif(sys.platform == "win32", reason="the refusal is for other platforms")
def test_shipper_service_is_a_command_that_explains_itself_off_windows(cli, tmp_path):
    r = cli("--help", cwd=tmp_path)
    assert "service" in r.stdout
    r = cli("service", "install", "--config", str(tmp_path / "shipper.yaml"), cwd=tmp_path)
    assert r.returncode == 1
    assert "Windows only" in r.stderr and "packaging/systemd/shipper.service" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_install_error_quoting_the_account_password_shows_it_masked(tmp_path, monkeypatch):
    """Whatever Windows answers (an error may quote the command line it ran), the service
    account's password never reaches the console."""
    from click.testing import CliRunner

    from shipper import redact, service

    def refuse(config, name, home, start, user, password):
        raise service.ServiceError(f"CreateService failed for {user} / {password}: access denied")

    monkeypatch.setattr(service, "_require_windows", lambda: None)
    monkeypatch.setattr(service, "install", refuse)
    (tmp_path / "pw").write_text("S3rvice-pw-88\n", encoding="utf-8")
    try:
        args = ["install", "--home", str(tmp_path), "--user", r"CONTOSO\svc"]
        result = CliRunner().invoke(
            service.service_command, [*args, "--password-file", str(tmp_path / "pw")]
        )
    finally:
        redact.remember({})
    assert result.exit_code == 1
    assert r"CreateService failed for CONTOSO\svc / ****: access denied" in result.output
    assert "S3rvice-pw-88" not in result.output
