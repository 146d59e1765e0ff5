"""The Elastic stack's conventions: ``data_stream.*`` in documents, template names an Elastic
user recognises, ``@custom`` component templates that ``setup`` never touches, and a clear
word when ``type`` names the other engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pytest
import requests
import responses

from shipper.errors import OutputFailed
from shipper.outputs.base import EventBatch
from shipper.outputs.elasticsearch import setup, templates
from shipper.outputs.elasticsearch.config import ElasticsearchOutput
from shipper.outputs.elasticsearch.encode import BulkEncoder
from shipper.outputs.elasticsearch.output import BulkOutput
from shipper.outputs.elasticsearch.transport import OpenSearchTransport

from .events import rms_events, to_batch, windows_events

INDEX = "shipper-{dataset}-%{+yyyy.MM.dd}"
ES_ROOT = {
    "name": "es01",
    "cluster_name": "docker-cluster",
    "version": {"number": "9.1.0", "build_flavor": "default", "lucene_version": "10.2.2"},
    "tagline": "You Know, for Search",
}


def bulk_docs(encoder: BulkEncoder, batch: EventBatch) -> list[tuple[str, bytes]]:
    """(target index, document bytes) of every document the encoder writes."""
    out = []
    for chunk in encoder.chunks(batch):
        lines = chunk.body.splitlines()
        for action, doc in zip(lines[::2], lines[1::2], strict=True):
            out.append((orjson.loads(action)["create"]["_index"], doc))
    return out


# --- data_stream.* ------------------------------------------------------------------------------


def test_documents_into_data_streams_say_which_stream() -> None:
    docs = [
        {"message": "plain", "event": {"dataset": "azure_rms.usage"}},
        {},
        {"data_stream": {"type": "metrics", "dataset": "other"}, "message": "claims another"},
        {"tags": ["data_stream"], "message": 'a value "data_stream", not a key'},
    ]
    batch = EventBatch(
        ids=[f"id-{i}" for i in range(len(docs))],
        datasets=["azure_rms.usage", "rms-connector.events", "azure_rms.usage", "windows.events"],
        docs=[orjson.dumps(d) for d in docs],
        timestamps=["2024-05-01T10:00:00.000Z"] * len(docs),
    )
    written = bulk_docs(BulkEncoder(None, "prod", 100, 10**6), batch)
    for (index, raw), original in zip(written, docs, strict=True):
        assert raw.count(b'"data_stream":') == 1, raw  # never a duplicate key
        doc = orjson.loads(raw)
        kind, dataset, namespace = index.split("-")
        assert doc["data_stream"] == {"type": kind, "dataset": dataset, "namespace": namespace}
        assert {k: v for k, v in doc.items() if k != "data_stream"} == {
            k: v for k, v in original.items() if k != "data_stream"
        }
    assert [index for index, _ in written] == [
        "logs-azure_rms.usage-prod",
        "logs-rms_connector.events-prod",
        "logs-azure_rms.usage-prod",
        "logs-windows.events-prod",
    ]


def test_classic_indices_get_no_data_stream_fields() -> None:
    batch = to_batch(windows_events()[:2])
    for _, raw in bulk_docs(BulkEncoder(INDEX, "default", 100, 10**6), batch):
        assert b"data_stream" not in raw


@pytest.mark.integration
def test_data_stream_fields_are_ecs(tmp_path: Path) -> None:
    """The documents as they go into the stream, through the shared ECS checker."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    checker = repo.parent / "shared" / "tools" / "ecs_check.py"
    ecs_flat = repo.parent / "shared" / "ecs" / "ecs_flat.yml"
    if not (checker.is_file() and ecs_flat.is_file()):
        pytest.skip("../shared/tools/ecs_check.py or ../shared/ecs not present")
    batch = to_batch(rms_events()[0][:20] + windows_events())
    docs = [raw for _, raw in bulk_docs(BulkEncoder(None, "default", 100, 10**6), batch)]
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(docs) + b"\n")
    prefixes = ["azure_rms.", "rms_connector.", "winlog.", "ecma2host."]
    run = subprocess.run(
        [sys.executable, str(checker), "--ecs", str(ecs_flat), str(events),
         *[arg for p in prefixes for arg in ("--custom-prefix", p)]],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


# --- template names -----------------------------------------------------------------------------


def test_template_names_are_the_data_streams_and_never_double_a_prefix() -> None:
    streams = setup.index_templates(ElasticsearchOutput())
    assert sorted(streams) == [
        "logs-azure_rms.usage",
        "logs-ecma2host.events",
        "logs-rms_connector.events",
        "logs-windows.events",
        "metrics-rms_connector.perf",
        "metrics-windows.perf",
    ]
    for name, body in streams.items():
        assert body["index_patterns"] == [f"{name}-*"]
        kind = name.split("-")[0]
        assert body["composed_of"][-2:] == [f"{kind}@custom", f"{name}@custom"]
    indices = setup.index_templates(ElasticsearchOutput(index=INDEX))
    assert "shipper-azure_rms.usage" in indices
    mine = ElasticsearchOutput(index="siem-%{+yyyy.MM}")
    assert list(setup.index_templates(mine)) == ["siem"]
    everything = [*indices, *setup.component_templates(ElasticsearchOutput()),
                  *setup.custom_templates(ElasticsearchOutput(index=INDEX))]  # fmt: skip
    assert not [n for n in everything if n.startswith("shipper-shipper")]
    assert setup.custom_templates(ElasticsearchOutput(index=INDEX))[0] == (
        "shipper-azure_rms.usage@custom"
    )


def test_a_new_dataset_is_a_file_in_mappings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What adding a metrics dataset takes: a group file and its component template."""
    folder = tmp_path / "elasticsearch"
    shutil.copytree(templates.es_dir(), folder)
    (folder / "index_templates_perf.json").write_text(
        json.dumps(
            {
                "type": "metrics",
                "datasets": ["rms_connector.perf"],
                "composed_of": [
                    "shipper@settings",
                    "shipper-ecs@mappings",
                    "shipper-perf@mappings",
                ],
                "priority": 260,
            }
        )
    )
    perf = {"template": {"mappings": {"properties": {"rms_connector": {"type": "object"}}}}}
    (folder / "component_template_shipper-perf@mappings.json").write_text(json.dumps(perf))
    monkeypatch.setattr(templates, "es_dir", lambda: folder)
    templates.groups.cache_clear()
    templates.stream_types.cache_clear()
    try:
        s = ElasticsearchOutput()
        body = setup.index_templates(s)["metrics-rms_connector.perf"]
        assert body["index_patterns"] == ["metrics-rms_connector.perf-*"]
        assert body["composed_of"][-3:] == [
            "shipper-perf@mappings",
            "metrics@custom",
            "metrics-rms_connector.perf@custom",
        ]
        assert "shipper-perf@mappings" in setup.component_templates(s)
        batch = EventBatch(["p1"], ["rms_connector.perf"], [b'{"a":1}'], ["2024-01-01T00:00:00Z"])
        [(index, raw)] = bulk_docs(BulkEncoder(None, "default", 10, 10**6), batch)
        assert index == "metrics-rms_connector.perf-default"
        assert orjson.loads(raw)["data_stream"]["type"] == "metrics"
    finally:
        templates.groups.cache_clear()
        templates.stream_types.cache_clear()


# --- @custom: the user's, never overwritten -------------------------------------------------------


@pytest.mark.integration
def test_custom_component_template_survives_setup_and_applies(engine_url: str) -> None:
    s = ElasticsearchOutput(type="opensearch", hosts=[engine_url], index=INDEX)
    first = setup.install(s, kibana=False)
    assert first.ok, first.steps
    custom = "shipper-azure_rms.usage@custom"
    created = {x.what: x for x in first.steps}[f"component template {custom}"]
    assert created.result == "installed"
    theirs = {
        "template": {
            "settings": {"index": {"default_pipeline": "geoip-enrich", "refresh_interval": "30s"}},
            "mappings": {
                "properties": {"contoso": {"properties": {"cost_centre": {"type": "integer"}}}}
            },
        }
    }  # fmt: skip
    r = requests.put(f"{engine_url}/_component_template/{custom}", json=theirs, timeout=10)
    assert r.status_code == 200, r.text
    for _ in range(2):
        again = setup.install(s, kibana=False)
        assert again.ok, again.steps
        step = {x.what: x for x in again.steps}[f"component template {custom}"]
        assert step.result == "unchanged", step
    got = requests.get(f"{engine_url}/_component_template/{custom}", timeout=10).json()
    assert got["component_templates"][0]["component_template"] == theirs

    [event] = rms_events()[0][:1]
    event["contoso"] = {"cost_centre": 4711}
    assert BulkOutput(s, Path("unused")).send(to_batch([event])).delivered == 1
    index = f"shipper-azure_rms.usage-{event['@timestamp'][:10].replace('-', '.')}"
    settings = requests.get(f"{engine_url}/{index}/_settings", timeout=10).json()[index]
    assert settings["settings"]["index"]["default_pipeline"] == "geoip-enrich"
    assert settings["settings"]["index"]["refresh_interval"] == "30s"  # theirs wins over ours
    mapping = requests.get(f"{engine_url}/{index}/_mapping", timeout=10).json()[index]
    props = mapping["mappings"]["properties"]
    assert props["contoso"]["properties"]["cost_centre"]["type"] == "integer"
    assert props["user_agent"]["properties"]["original"]["type"] == "keyword"  # ours still


@pytest.mark.integration
def test_setup_retires_templates_under_their_old_doubled_names(engine_url: str) -> None:
    s = ElasticsearchOutput(type="opensearch", hosts=[engine_url], index=INDEX)
    assert setup.install(s, kibana=False).ok
    new = setup.index_templates(s)
    for name, body in new.items():  # as an older shipper left them
        requests.delete(f"{engine_url}/_index_template/{name}", timeout=10)
        old = {k: v for k, v in body.items() if k != "_meta"}
        old["priority"] = 250
        old["composed_of"] = [c for c in body["composed_of"] if not c.endswith("@custom")]
        url = f"{engine_url}/_index_template/{templates.legacy_template_name(name + '-*')}"
        assert requests.put(url, json=old, timeout=10).status_code == 200
    foreign = {"index_patterns": ["shipper-azure_rms.usage-*"], "priority": 5}
    url = f"{engine_url}/_index_template/shipper-shipper-azure_rms.usage-x"
    assert requests.put(url, json=foreign, timeout=10).status_code == 200

    report = setup.install(s, kibana=False)
    assert report.ok, report.steps
    removed = {x.what: x.detail for x in report.steps if x.result == "removed"}
    assert removed == {
        "index template shipper-shipper-azure_rms.usage": "replaced by shipper-azure_rms.usage",
        "index template shipper-shipper-rms_connector.events": (
            "replaced by shipper-rms_connector.events"
        ),
        "index template shipper-shipper-ecma2host.events": "replaced by shipper-ecma2host.events",
        "index template shipper-shipper-windows.events": "replaced by shipper-windows.events",
        "index template shipper-shipper-rms_connector.perf": (
            "replaced by shipper-rms_connector.perf"
        ),
        "index template shipper-shipper-windows.perf": "replaced by shipper-windows.perf",
    }
    listed = requests.get(f"{engine_url}/_index_template", timeout=10).json()
    names = {t["name"] for t in listed["index_templates"]}
    assert set(new) <= names
    assert "shipper-shipper-azure_rms.usage-x" in names  # not ours: left alone
    assert not {n for n in names if n.startswith("shipper-shipper")} - {
        "shipper-shipper-azure_rms.usage-x"
    }


# --- the other engine, named ----------------------------------------------------------------------


@pytest.mark.integration
def test_elasticsearch_type_at_opensearch_says_so_everywhere(
    engine_url: str, tmp_path: Path
) -> None:
    version = requests.get(engine_url, timeout=10).json()["version"]["number"]
    expected = f"this is OpenSearch {version}, not Elasticsearch; use type: opensearch"
    s = ElasticsearchOutput(type="elasticsearch", hosts=[engine_url], index=INDEX)
    st = setup.status(s)
    assert not st.ok and expected in st.message
    with pytest.raises(OutputFailed, match=expected):
        setup.install(s, kibana=False)
    with pytest.raises(OutputFailed, match=expected):
        BulkOutput(s, tmp_path).send(to_batch(windows_events()[:1]))


@pytest.mark.integration
def test_check_setup_and_run_name_the_engine(engine_url: str, tmp_path: Path) -> None:
    """As a user sees it: three commands, one message, exit 1."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(sorted((repo / "examples" / "rms").glob("rmslog-*.log"))[0], logs)
    out = {"type": "elasticsearch", "hosts": [engine_url], "index": INDEX, "request_timeout": 10}
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(json.dumps({
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"type": "rms_usage", "paths": [str(logs / "*.log")]}],
        "outputs": [out],
        "pipeline": {"once_retry_seconds": 1},
    }))  # fmt: skip
    env = {**__import__("os").environ, "PYTHONPATH": str(repo)}
    for args in (["check", "--outputs"], ["setup", "--no-kibana"], ["run", "--once"]):
        run = subprocess.run(
            [sys.executable, "-m", "shipper.cli", *args[:1], str(cfg), *args[1:]],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
        )  # fmt: skip
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        said = run.stdout + run.stderr
        assert "this is OpenSearch" in said and "use type: opensearch" in said, (args, said)
        assert "Traceback" not in said


@responses.activate
def test_opensearch_type_at_elasticsearch_says_so() -> None:
    url = "http://127.0.0.1:9200"
    responses.get(url + "/", json=ES_ROOT, headers={"X-Elastic-Product": "Elasticsearch"})
    responses.put(url + "/_component_template/shipper-ecs@mappings", json={"acknowledged": True})
    responses.post(url + "/_bulk", json={"errors": False, "items": []})
    s = ElasticsearchOutput(type="opensearch", hosts=[url], http_client="requests")
    expected = "this is Elasticsearch 9.1.0, not OpenSearch; use type: elasticsearch"
    st = setup.status(s)
    assert not st.ok and expected in st.message
    with pytest.raises(OutputFailed, match=expected):
        setup.install(s, kibana=False)
    with pytest.raises(OutputFailed, match=expected):
        OpenSearchTransport(s).request("POST", "/_bulk", b"{}\n")
    assert not [c for c in responses.calls if c.request.method in ("PUT", "POST")]


@responses.activate
def test_the_right_engine_is_not_questioned_and_an_unreadable_root_does_not_stop() -> None:
    url = "http://127.0.0.1:9200"
    responses.get(url + "/", json={"error": "no cluster:monitor/main"}, status=403)
    responses.post(url + "/_bulk", json={"errors": False, "items": []})
    s = ElasticsearchOutput(type="opensearch", hosts=[url], http_client="requests")
    t = OpenSearchTransport(s)
    assert t.request("POST", "/_bulk", b"{}\n").status == 200
    assert t.request("POST", "/_bulk", b"{}\n").status == 200
    assert [c.request.method for c in responses.calls] == ["GET", "POST", "POST"]
