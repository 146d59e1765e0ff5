"""Which normaliser turns records into events is the input's choice, and each input's
``tags`` and ``fields`` reach every event it ships."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from shipper import registry
from shipper.config import parse_config
from shipper.errors import ConfigError
from tests.conftest import REPO, run_cli
from tests.test_registry import distribution

SHARED = REPO.parent / "shared"

# A third party's input that reads Azure RMS usage logs with the built-in W3C format but turns
# the records into its own events: only its normaliser differs.
UPPER = """
from typing import ClassVar, Literal

import orjson

from shipper.settings import SourceSettings


class Settings(SourceSettings):
    formats: ClassVar[tuple[str, ...]] = ("w3c_rms",)
    normaliser: ClassVar[str] = "upper"
    type: Literal["rms_upper"] = "rms_upper"


class _Upper:
    dataset = "upper.usage"

    def __init__(self, tags):
        self.tags = tags

    def bind_json(self, fields):
        def normalise(values, path, offset, line):
            rec = dict(zip(fields, values))
            ts = rec["date"] + "T" + rec["time"] + "Z"
            doc = {"@timestamp": ts, "event": {"id": rec["row-id"], "dataset": self.dataset},
                   "request": rec["request-type"].upper(), "tags": self.tags}
            return rec["row-id"], ts, orjson.dumps(doc)
        return normalise


def make(options):
    return _Upper(options.get("tags") or [])
"""


def ship(tmp_path: Path, inputs: list[str], env: dict[str, str] | None = None) -> list[dict]:
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / "events.ndjson"
    config = tmp_path / "shipper.yaml"
    config.write_text(
        "inputs:\n"
        + "".join(inputs)
        + f"outputs:\n  - type: ndjson\n    path: {out.as_posix()}\n"
        + f"data_dir: {(tmp_path / 'data').as_posix()}\n"
    )
    done = run_cli("run", "--once", "--no-progress", str(config), cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def test_an_input_chooses_the_normaliser_of_a_built_in_format(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    distribution(
        site,
        "shipper-upper",
        {"shipper.sources": {"rms_upper": "upper_input"},
         "shipper.normalisers": {"upper": "upper_input"}},
        {"upper_input": UPPER},
    )  # fmt: skip
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")])}
    rms = (REPO / "examples" / "rms" / "rmslog-2024-03-04.log").as_posix()
    theirs = ship(
        tmp_path / "theirs",
        [f"  - type: rms_upper\n    paths: [{rms}]\n    tags: [night-shift]\n"],
        env,
    )
    ours = ship(tmp_path / "ours", [f"  - type: rms_usage\n    paths: [{rms}]\n"])
    assert len(theirs) == len(ours) > 10
    # the same records, the plugin's events: its dataset, its fields, the input's tags
    assert {e["event"]["dataset"] for e in theirs} == {"upper.usage"}
    assert {e["event"]["dataset"] for e in ours} == {"azure_rms.usage"}
    assert sorted(e["event"]["id"] for e in theirs) == sorted(e["event"]["id"] for e in ours)
    by_id = {e["event"]["id"]: e for e in ours}
    for e in theirs:
        assert e["request"] == by_id[e["event"]["id"]]["event"]["action"].upper()
        assert e["tags"] == ["night-shift"]
    registry.refresh()


def test_tags_and_fields_reach_every_event_of_their_input_only(tmp_path: Path) -> None:
    rms = (REPO / "examples" / "rms" / "*").as_posix()
    windows = (REPO / "examples" / "windows" / "*").as_posix()
    events = ship(
        tmp_path,
        [
            f"  - type: rms_usage\n    paths: [{rms}]\n    tags: [contoso, prod]\n"
            "    fields: {tenant: contoso, region: eu}\n",
            f"  - type: windows_events\n    paths: [{windows}]\n    tags: [connector]\n"
            "    fields: {tenant: fabrikam}\n",
        ],
    )
    rms_events = [e for e in events if e["event"]["module"] == "azure_rms"]
    win_events = [e for e in events if e["event"]["module"] != "azure_rms"]
    assert len(rms_events) > 100 and len(win_events) > 20
    for e in rms_events:
        assert e["tags"] == ["contoso", "prod"]
        assert e["labels"] == {"tenant": "contoso", "region": "eu"}
    for e in win_events:
        assert "connector" in e["tags"]
        assert e["labels"]["tenant"] == "fabrikam"
    if (SHARED / "tools" / "ecs_check.py").exists():
        out = tmp_path / "events.ndjson"
        check = subprocess.run(
            [sys.executable, str(SHARED / "tools" / "ecs_check.py"),
             "--ecs", str(SHARED / "ecs" / "ecs_flat.yml"),
             "--custom-prefix", "azure_rms.", "--custom-prefix", "winlog.",
             "--custom-prefix", "rms_connector.", "--custom-prefix", "ecma2host.", str(out)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr


def test_without_tags_or_fields_events_carry_neither(tmp_path: Path) -> None:
    rms = (REPO / "examples" / "rms" / "rmslog-2024-03-05.log").as_posix()
    events = ship(tmp_path, [f"  - type: rms_usage\n    paths: [{rms}]\n"])
    assert events and not any("tags" in e or "labels" in e for e in events)


@pytest.mark.parametrize("name", ["site.name", "", "with space"])
def test_a_field_name_that_cannot_be_a_label_is_refused_naming_the_setting(name: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"inputs": [{"type": "rms_usage", "paths": ["x"], "fields": {name: "v"}}]})
    assert str(e.value).startswith("inputs[0].fields: ")
    assert "labels" in str(e.value)
