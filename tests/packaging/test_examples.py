"""The deployment examples (examples/deployments/): each is what its name says, keeps its
secrets out of the file, and passes `shipper check` (outputs not reached)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "deployments"
ENV = {"ES_API_KEY": "ZXhhbXBsZTprZXk="}


def outputs(name: str) -> list[dict]:
    return yaml.safe_load((EXAMPLES / name).read_text())["outputs"]


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_passes_shipper_check(name, cli, tmp_path):
    r = cli("check", "--skip-local", str(EXAMPLES / name), cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr
    assert ": OK (" in r.stdout
    assert ENV["ES_API_KEY"] not in r.stdout + r.stderr


def test_a_broken_example_fails_the_same_check(cli, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text((EXAMPLES / "syslog-tls-cef.yaml").read_text().replace("cef", "ceff"))
    r = cli("check", str(broken), cwd=tmp_path, env=ENV)
    assert r.returncode == 2
    assert "outputs[0].format" in r.stderr


def test_each_deployment_is_covered():
    (es,) = outputs("elasticsearch-api-key.yaml")
    assert es["type"] == "elasticsearch" and es["api_key"] == "${ES_API_KEY}"
    (os_,) = outputs("opensearch.yaml")
    assert os_["type"] == "opensearch" and "password_file" in os_
    (sl,) = outputs("syslog-tls-cef.yaml")
    assert (sl["type"], sl["transport"], sl["format"]) == ("syslog", "tls", "cef")
    (fd,) = outputs("fluentd-acks.yaml")
    assert fd["type"] == "fluentd" and fd["require_ack"] is True
    assert {o["type"] for o in outputs("two-outputs.yaml")} == {"elasticsearch", "ndjson"}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_no_secret_is_written_in_an_example(name):
    for out in outputs(name):
        for key in ("api_key", "password", "shared_key", "key_password"):
            assert key not in out or str(out[key]).startswith("${"), (name, key)
