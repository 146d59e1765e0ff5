"""Secrets are masked wherever a configuration is echoed: ``check`` (and ``--outputs``),
``setup --dry-run``, configuration errors that quote a value, and log lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from shipper import logs, redact
from shipper.config import parse_config
from shipper.errors import ConfigError
from tests.conftest import closed_port

SECRET = "Hunter2-s3cret"
FILE_SECRET = "from-a-file-7f3a"


@pytest.fixture(autouse=True)
def _forget_secrets():
    """What one test's configuration made secret is not masked in the next test's output."""
    yield
    redact.remember({})


def write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "shipper.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_check_outputs_never_shows_a_password_given_in_a_url(tmp_path: Path, cli):
    port = closed_port()
    cfg = write(
        tmp_path,
        {
            "data_dir": str(tmp_path / "data"),
            "outputs": [
                {
                    "type": "elasticsearch",
                    "hosts": [f"https://elastic:{SECRET}@127.0.0.1:{port}"],
                    "request_timeout": 2,
                }
            ],
        },
    )
    done = cli("check", "--outputs", str(cfg), cwd=tmp_path)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said  # nothing listens there
    assert f"127.0.0.1:{port}" in said  # the line names the target...
    assert SECRET not in said and "elastic:****@" in said  # ...without its password

    dry = cli("setup", "--dry-run", "--no-kibana", str(cfg), cwd=tmp_path)
    assert SECRET not in dry.stdout + dry.stderr


def test_a_configuration_error_quoting_a_value_does_not_show_a_secret(tmp_path: Path, cli):
    (tmp_path / "pw").write_text(FILE_SECRET + "\n", encoding="utf-8")
    cfg = write(
        tmp_path,
        {
            "outputs": [
                {"type": "elasticsearch", "api_key": SECRET},
                # a secret pasted into the wrong setting: its validator quotes the value
                {"type": "ndjson", "max_bytes": SECRET},
                {"type": "ndjson", "path": "b.ndjson", "max_bytes": FILE_SECRET},
                {
                    "type": "elasticsearch",
                    "username": "elastic",
                    "password_file": str(tmp_path / "pw"),
                },
            ],
        },
    )
    done = cli("check", str(cfg), cwd=tmp_path)
    assert done.returncode == 2
    assert "outputs[1].max_bytes" in done.stderr and "outputs[2].max_bytes" in done.stderr
    assert "not a size: '****'" in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert FILE_SECRET not in done.stderr + done.stdout


def test_secrets_from_the_environment_are_masked_too():
    with pytest.raises(ConfigError) as e:
        parse_config(
            {"outputs": [{"type": "fluentd", "shared_key": "${KEY}", "port": "${KEY}"}]},
            env={"KEY": "env-secret-9d"},
        )
    assert "outputs[0].port" in str(e.value)
    assert "env-secret-9d" not in str(e.value)


def test_log_lines_never_carry_a_remembered_secret(caplog: pytest.LogCaptureFixture):
    redact.remember({"outputs": [{"password": "log-secret-41"}]})
    with caplog.at_level(logging.INFO):
        logging.getLogger("elastic_transport.x").warning("auth with %s refused", "log-secret-41")
        logging.getLogger("shipper").info("GET https://u:pw-in-url@host:9200/ failed")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "log-secret-41" not in text and "auth with **** refused" in text
    assert "pw-in-url" not in text and "https://u:****@host:9200/" in text


def test_what_counts_as_a_secret():
    found = redact.secret_values(
        {
            "password": "p4ssword",
            "api_key": "k3y-value",
            "sub": {"client_key_passphrase": "phrase-1", "username": "not-secret"},
            "hosts": ["https://u:url-pw@h:1"],
            "ssl_assert_fingerprint": "AB:CD:EF:01",
            "ab": "ab",
        }
    )
    assert found == {"p4ssword", "k3y-value", "phrase-1", "url-pw"}


def test_a_secret_inside_a_longer_word_is_left_alone():
    """A password that is also a word ("elastic") must not garble "elasticsearch"."""
    redact.remember({"password": "elastic"})
    assert redact.mask("elasticsearch output: login elastic refused") == (
        "elasticsearch output: login **** refused"
    )
    redact.remember({})  # the next configuration has none: nothing masked any more
    assert redact.mask("login elastic refused") == "login elastic refused"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_run_with_every_output_down_never_shows_a_secret(
    tmp_path: Path, cli, write_rms, log_format: str
):
    """The end of a failed ``run --once``: the summary's error lines name each output, and an
    output's name is its URL, password included, unless masked."""
    write_rms(tmp_path / "logs" / "000000001", range(5))
    (tmp_path / "pw").write_text(FILE_SECRET + "\n", encoding="utf-8")
    cfg = write(
        tmp_path,
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
            "outputs": [
                {
                    "type": "opensearch",
                    "hosts": [f"http://elastic:{SECRET}@127.0.0.1:{closed_port()}"],
                },
                {
                    "type": "elasticsearch",
                    "hosts": [f"http://127.0.0.1:{closed_port()}"],
                    "api_key": "Api-K3y-secret-77",
                },
                {
                    "type": "fluentd",
                    "hosts": [f"127.0.0.1:{closed_port()}"],
                    "shared_key": "Shared-K3y-secret-88",
                    "username": "fluent",
                    "password_file": str(tmp_path / "pw"),
                },
            ],
            "pipeline": {"once_retry_seconds": 1, "workers": 1},
        },
    )
    done = cli("run", "--once", "--no-progress", "--log-format", log_format, str(cfg), cwd=tmp_path)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "still unavailable" in said and "elastic:****@127.0.0.1" in said  # the error lines
    for secret in (SECRET, "Api-K3y-secret-77", "Shared-K3y-secret-88", FILE_SECRET):
        assert secret not in said, said

    status = cli("status", str(cfg), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert SECRET not in status.stdout + status.stderr
    assert "opensearch:http://elastic:****@127.0.0.1" in status.stdout  # listed, masked
    # nor is it written down: the checkpoint names the outputs as shown
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_logged_traceback_does_not_show_a_secret(caplog: pytest.LogCaptureFixture):
    redact.remember({"outputs": [{"password": "trace-secret-52"}]})
    try:
        raise ConnectionError("login with trace-secret-52 to http://u:url-pw-53@h:1 failed")
    except ConnectionError:
        logging.getLogger("shipper").exception("service failed")
    text = logging.Formatter().format(caplog.records[-1])
    assert "Traceback" in text and "ConnectionError: login with **** to" in text
    assert "trace-secret-52" not in text and "url-pw-53" not in text
    # --log-format json: ecs-logging writes the exception from the exception itself
    line = json.loads(logs.json_formatter().format(caplog.records[-1]))
    assert line["error"]["type"] == "ConnectionError"
    assert line["error"]["message"].startswith("login with **** to")
    assert "trace-secret-52" not in str(line) and "url-pw-53" not in str(line)
