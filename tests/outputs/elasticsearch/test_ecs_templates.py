"""The ECS part of the templates is ECS: every mapped ECS field as Elastic's field list says.

The comparison reads ECS's own ``ecs_flat.yml`` from ``../shared/ecs`` (skipped when absent),
not the extract shipped in ``mappings/ecs``, so a hand edit of either side shows up.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from shipper.mappings import load_yaml
from shipper.outputs.elasticsearch import ecs, setup
from shipper.outputs.elasticsearch.config import ElasticsearchOutput
from shipper.outputs.elasticsearch.output import BulkOutput

from .events import rms_events, to_batch, windows_events

REPO = Path(__file__).resolve().parents[3]
ECS_FLAT = REPO.parent / "shared" / "ecs" / "ecs_flat.yml"
#: what OpenSearch is given instead of an ECS type it lacks (see shipper.outputs.elasticsearch.ecs)
OPENSEARCH = {"constant_keyword": "keyword", "flattened": "flat_object"}


@pytest.fixture(scope="module")
def ecs_flat() -> dict[str, Any]:
    if not ECS_FLAT.is_file():
        pytest.skip(f"ECS field list not found ({ECS_FLAT.name} in ../shared/ecs)")
    with open(ECS_FLAT, encoding="utf-8") as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def mapped_fields(flavour: str) -> dict[str, list[dict[str, Any]]]:
    """Every field of every component template, by dotted name (a list: who maps it how)."""
    out: dict[str, list[dict[str, Any]]] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = prefix + name
            if "properties" in spec:
                walk(spec["properties"], path + ".")
            else:
                out.setdefault(path, []).append(spec)

    s = ElasticsearchOutput(type=flavour)  # type: ignore[arg-type]
    bodies = [*setup.component_templates(s).values(), *setup.index_templates(s).values()]
    for body in bodies:
        walk(body.get("template", {}).get("mappings", {}).get("properties", {}), "")
    return out


def expected(definition: dict[str, Any], flavour: str) -> dict[str, Any]:
    kind = definition["type"]
    if flavour == "opensearch":
        kind = OPENSEARCH.get(kind, kind)
    out: dict[str, Any] = {"type": kind}
    for key in ("ignore_above", "index", "doc_values", "scaling_factor"):
        if key in definition:
            out[key] = definition[key]
    multi = {m["name"]: {"type": m["type"]} for m in definition.get("multi_fields", [])}
    if multi:
        out["fields"] = multi
    return out


@pytest.mark.parametrize("flavour", ["elasticsearch", "opensearch"])
def test_every_mapped_ecs_field_is_mapped_as_ecs_defines_it(
    ecs_flat: dict[str, Any], flavour: str
) -> None:
    fields = mapped_fields(flavour)
    checked = 0
    wrong = {}
    for name, specs in fields.items():
        if name not in ecs_flat:
            continue
        checked += 1
        want = expected(ecs_flat[name], flavour)
        for spec in specs:
            if spec != want:
                wrong[name] = (spec, want)
    assert not wrong
    assert checked >= 100  # the ECS component was walked, not skipped


def test_user_agent_original_is_keyword_with_a_text_multi_field() -> None:
    spec = mapped_fields("elasticsearch")["user_agent.original"]
    assert spec == [
        {"type": "keyword", "ignore_above": 1024, "fields": {"text": {"type": "match_only_text"}}}
    ]
    for name in ("user.name", "file.path", "process.executable", "host.os.name"):
        [mapped] = mapped_fields("elasticsearch")[name]
        assert mapped["fields"]["text"]["type"] == "match_only_text", name


def test_shipped_extract_is_ecs_and_names_the_version_events_claim(
    ecs_flat: dict[str, Any],
) -> None:
    version, fields = ecs.load()
    assert fields == ecs.extract(ecs_flat, fields)
    from shipper.normalise.winlog import ECS_VERSION

    assert version == ECS_VERSION == load_yaml("rms/fields.yaml")["constants"]["ecs.version"]
    header = (REPO / "mappings" / "ecs" / "ecs_fields.yml").read_text(encoding="utf-8")
    assert f"Elastic Common Schema {version}" in header and "Apache License 2.0" in header
    assert (REPO / "mappings" / "ecs" / "LICENSE.txt").is_file()


def test_every_emitted_ecs_field_is_in_the_extract(ecs_flat: dict[str, Any]) -> None:
    """A field a normaliser starts to emit is mapped from ECS, not left to dynamic mapping."""

    def leaves(doc: dict[str, Any], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for k, v in doc.items():
            if isinstance(v, dict) and f"{prefix}{k}" not in ecs_flat:
                out |= leaves(v, f"{prefix}{k}.")
            else:
                out.add(prefix + k)
        return out

    emitted = set().union(*(leaves(e) for e in rms_events()[0] + windows_events()))
    assert {f for f in emitted if f in ecs_flat} - set(ecs.load()[1]) == set()


# --- refreshing the extract from a newer ECS ------------------------------------------------


def test_refresh_rewrites_the_extract_from_a_new_ecs_list(tmp_path: Path) -> None:
    newer = {
        "user_agent.original": {
            "type": "keyword",
            "ignore_above": 2048,
            "multi_fields": [{"flat_name": "user_agent.original.text", "name": "text",
                              "type": "match_only_text"}],
            "description": "prose that is not kept",
        },
        "process.command_line": {"type": "wildcard"},
    }  # fmt: skip
    flat = tmp_path / "ecs_flat.yml"
    flat.write_text(yaml.safe_dump(newer), encoding="utf-8")
    out = tmp_path / "ecs_fields.yml"
    out.write_text(
        yaml.safe_dump({"ecs_version": "9.4.0", "fields": {"user_agent.original": {}}}),
        encoding="utf-8",
    )
    argv = [str(flat), "--ecs-version", "9.9.0", "--output", str(out)]
    assert ecs.main([*argv, "--add", "process.command_line"]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# ECS field definitions") and "Elastic Common Schema 9.9.0" in text
    data = yaml.safe_load(text)
    assert data["ecs_version"] == "9.9.0"
    assert data["fields"] == {
        "process.command_line": {"type": "wildcard"},
        "user_agent.original": {
            "type": "keyword",
            "ignore_above": 2048,
            "multi_fields": [{"name": "text", "type": "match_only_text"}],
        },
    }


def test_refresh_names_fields_the_new_ecs_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flat = tmp_path / "ecs_flat.yml"
    flat.write_text(yaml.safe_dump({"message": {"type": "match_only_text"}}), encoding="utf-8")
    out = tmp_path / "ecs_fields.yml"
    out.write_text("ecs_version: 1\nfields: {message: {}, log.offset: {}}\n", encoding="utf-8")
    before = out.read_text(encoding="utf-8")
    assert ecs.main([str(flat), "--ecs-version", "9.9.0", "--output", str(out)]) == 1
    assert "log.offset" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == before


def test_refresh_runs_as_a_module_against_the_real_list(
    ecs_flat: dict[str, Any], tmp_path: Path
) -> None:
    import subprocess

    out = tmp_path / "ecs_fields.yml"
    out.write_text((REPO / "mappings" / "ecs" / "ecs_fields.yml").read_text(encoding="utf-8"))
    run = subprocess.run(
        [sys.executable, "-m", "shipper.outputs.elasticsearch.ecs", str(ECS_FLAT),
         "--ecs-version", ecs.version(), "--output", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert out.read_text(encoding="utf-8") == (REPO / "mappings/ecs/ecs_fields.yml").read_text(
        encoding="utf-8"
    )


# --- in the engine ------------------------------------------------------------------------------


@pytest.mark.integration
def test_terms_aggregation_on_user_agent_original(engine_url: str, tmp_path: Path) -> None:
    """What failed with the old ``text`` mapping: the top clients by their raw agent string."""
    s = ElasticsearchOutput(
        type="opensearch", hosts=[engine_url], index="shipper-{dataset}-%{+yyyy.MM.dd}"
    )
    assert setup.install(s, kibana=False).ok
    events = rms_events()[0]
    ack = BulkOutput(s, tmp_path).send(to_batch(events))
    assert ack.delivered == len(events)
    requests.post(f"{engine_url}/shipper-*/_refresh", timeout=10)
    query = {
        "size": 0,
        "aggs": {"ua": {"terms": {"field": "user_agent.original", "size": 100}}},
    }
    reply = requests.post(f"{engine_url}/shipper-*/_search", json=query, timeout=10)
    assert reply.status_code == 200, reply.text
    got = {b["key"]: b["doc_count"] for b in reply.json()["aggregations"]["ua"]["buckets"]}
    want = Counter(e["user_agent"]["original"] for e in events if "user_agent" in e)
    assert got == want and len(want) > 1
    text = {"query": {"match": {"user_agent.original.text": "EXCEL.EXE"}}}
    hits = requests.post(f"{engine_url}/shipper-*/_search", json=text, timeout=10).json()
    assert hits["hits"]["total"]["value"] == sum(
        n for agent, n in want.items() if "EXCEL.EXE" in agent
    )
