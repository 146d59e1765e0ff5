"""Configuration: defaults that work, errors that name the setting, environment values."""

from __future__ import annotations

import pytest

from shipper.config import load_config, parse_config, parse_size
from shipper.errors import ConfigError


def test_empty_config_writes_ndjson_by_default():
    cfg = parse_config({})
    assert [o.type for o in cfg.outputs] == ["ndjson"]
    assert cfg.pipeline.poll_interval <= 1.0
    assert cfg.dedupe.retention_days == 90


def test_errors_name_the_setting_by_its_path_in_the_file():
    with pytest.raises(ConfigError) as e:
        parse_config(
            {
                "inputs": [{"type": "rms_usage"}],
                "outputs": [{"type": "ndjson", "path": "x", "max_bytes": "lots"}],
            }
        )
    text = str(e.value)
    assert "inputs[0].paths: Field required" in text
    assert "outputs[0].max_bytes:" in text and "not a size" in text


def test_an_unknown_time_zone_is_an_error_naming_the_input():
    inputs = [
        {"type": kind, "paths": ["x/*"], "timezone": zone}
        for kind, zone in (("windows_events", "Europe/Berlin"), ("windows_perf", "Mars/Olympus"))
    ]
    with pytest.raises(ConfigError) as e:
        parse_config({"inputs": inputs})
    assert "inputs[1].timezone: " in str(e.value) and "'Mars/Olympus'" in str(e.value)
    assert "inputs[0]" not in str(e.value)
    inputs[1]["timezone"] = "Asia/Kolkata"
    assert [i.timezone for i in parse_config({"inputs": inputs}).inputs] == [
        "Europe/Berlin",
        "Asia/Kolkata",
    ]


def test_unknown_output_type_and_unknown_key_are_errors():
    with pytest.raises(ConfigError, match=r"outputs\[0\]"):
        parse_config({"outputs": [{"type": "kafka"}]})
    with pytest.raises(ConfigError, match=r"pipeline.worker"):
        parse_config({"pipeline": {"worker": 2}})


def test_environment_variables_are_interpolated_with_defaults():
    cfg = parse_config(
        {"data_dir": "${STATE:-/var/lib/x}", "outputs": [{"type": "ndjson", "path": "${OUT}"}]},
        env={"OUT": "o.ndjson"},
    )
    assert cfg.data_dir == "/var/lib/x" and cfg.outputs[0].path == "o.ndjson"


def test_missing_environment_variable_names_where_it_was_used():
    with pytest.raises(ConfigError, match=r"outputs\[0\].path: environment variable OUT"):
        parse_config({"outputs": [{"type": "ndjson", "path": "${OUT}"}]}, env={})


def test_sizes():
    assert parse_size("100MB") == 100 * 10**6
    assert parse_size("1GiB") == 2**30
    assert parse_size(512) == 512


def test_yaml_syntax_error_is_a_config_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inputs: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_quickstart_example_is_valid(repo):
    cfg = load_config(repo / "examples" / "quickstart.yaml")
    assert cfg.inputs and cfg.inputs[0].type == "rms_usage"


def test_the_settings_base_spells_sizes_and_durations_one_way():
    from pydantic import ValidationError

    from shipper.settings import Duration, Settings, Size

    class Example(Settings):
        limit: Size = 0
        wait: Duration = 0

    s = Example(limit="10MB", wait="1.5m")
    assert (s.limit, s.wait) == (10 * 10**6, 90.0)
    assert Example(wait="500ms").wait == 0.5 and Example(wait=3).wait == 3.0
    with pytest.raises(ValidationError, match="not a duration"):
        Example(wait="soon")
    with pytest.raises(ValidationError, match="Extra inputs"):
        Example(limt=1)


SECRETS = [
    ({"type": "elasticsearch", "hosts": ["https://127.0.0.1:9200"]}, "api_key"),
    ({"type": "fluentd", "hosts": ["127.0.0.1:24224"]}, "shared_key"),
    ({"type": "syslog", "hosts": ["127.0.0.1:6514"], "transport": "tls",
      "cert_file": "c.pem", "key_file": "k.pem"}, "key_password"),
]  # fmt: skip


@pytest.mark.parametrize("base, name", SECRETS, ids=[b["type"] for b, _ in SECRETS])
def test_a_secret_comes_inline_or_from_a_file_never_both(tmp_path, base, name):
    (tmp_path / "s").write_text("s3cret\n")
    with pytest.raises(ConfigError, match=rf"outputs\[0\].*set {name} or {name}_file, not both"):
        parse_config({"outputs": [{**base, name: "x", f"{name}_file": str(tmp_path / "s")}]})
    (out,) = parse_config({"outputs": [{**base, f"{name}_file": str(tmp_path / "s")}]}).outputs
    resolve = getattr(out, f"resolved_{name}")
    assert resolve() == "s3cret"
    (tmp_path / "s").write_text("\n")
    with pytest.raises(ConfigError, match=rf"{name}_file: .* is empty"):
        resolve()
    (tmp_path / "s").unlink()
    with pytest.raises(ConfigError, match=rf"{name}_file: cannot read .*s: "):
        resolve()
    (inline,) = parse_config({"outputs": [{**base, name: "inline"}]}).outputs
    assert getattr(inline, f"resolved_{name}")() == "inline"
