"""Performance counter metrics into a real search engine: templates first, numbers stay numbers.

``shipper setup`` then ``shipper run --once`` (subprocesses, as a user runs them) put a
typeperf log and a Get-Counter JSON export into osmem-server (an in-memory
OpenSearch-compatible engine on loopback; no data streams there, so classic daily indices
through ``index:``). The mappings the engine reports must say ``double`` for every counter, the
RMS connector's named ones and the dynamic ``windows.perf.*`` ones alike, and keyword for the
names; a range query on a counter and a terms aggregation on the host work, which is what the
dashboard panel and the 15-minute detection rely on. Without the templates the first value of
an integral counter could make its field a ``long``, and later fractions would be cut off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from shipper.outputs.elasticsearch import setup, templates
from shipper.outputs.elasticsearch.config import ElasticsearchOutput

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
RMS = "Microsoft Rights Management connector"
SINCE = "time_since_last_authorization_policy_update_seconds"


def _write_logs(folder: Path) -> None:
    folder.mkdir()
    lic = "Licensing Successful Batched Request Average"
    cols = [
        f"\\\\RMSCON01\\{RMS}\\Time since last authorization policy update",
        f"\\\\RMSCON01\\{RMS}\\{lic} Connector Response Time",
        f"\\\\RMSCON01\\{RMS}\\{lic} Service Response Time",
        "\\\\RMSCON01\\Processor(_Total)\\% Processor Time",
    ]
    rows = [
        ["03/04/2024 09:00:00.000", "0", "12", "10", "1"],  # integral first values
        ["03/04/2024 09:05:00.000", "300", "12.75", "10.5", "2.5"],
        ["03/04/2024 09:20:00.000", "1200", " ", "9.25", "3.125"],
    ]
    text = '"(PDH-CSV 4.0) (W. Europe Standard Time)(-60)",' + ",".join(f'"{c}"' for c in cols)
    text += "\r\n" + "".join(",".join(f'"{v}"' for v in r) + "\r\n" for r in rows)
    (folder / "rmscon01.csv").write_text(text, encoding="utf-8")
    sample_set = {
        "Timestamp": "2024-03-04T10:30:00+01:00",
        "CounterSamples": [
            {
                "Path": f"\\\\rmscon02\\{RMS.lower()}\\time since last authorization policy update",
                "InstanceName": "",
                "CookedValue": 61,
                "Status": 0,
                "Timestamp": "2024-03-04T10:30:00+01:00",
            },
        ],
    }
    (folder / "rmscon02.json").write_text(json.dumps(sample_set), encoding="utf-8")


def _shipper(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _field(mapping: dict[str, Any], dotted: str) -> dict[str, Any]:
    node: dict[str, Any] = {"properties": mapping["mappings"]["properties"]}
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


def test_perf_metrics_round_trip_with_numeric_types(tmp_path: Path, engine_url: str) -> None:
    _write_logs(tmp_path / "perf")
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"type": "windows_perf", "paths": [str(tmp_path / "perf" / "*")]}],
        "outputs": [
            {"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")},
            {
                "type": "opensearch",
                "hosts": [engine_url],
                "index": "shipper-{dataset}-%{+yyyy.MM.dd}",
                "request_timeout": 30,
            },
        ],
        "pipeline": {"workers": 1},
    }
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(cfg))
    for args in (("setup", str(path)), ("run", "--once", "--no-progress", str(path))):
        done = _shipper(*args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    requests.post(f"{engine_url}/shipper-*/_refresh", timeout=30)

    mappings = requests.get(
        f"{engine_url}/shipper-rms_connector.perf-*/_mapping", timeout=30
    ).json()
    assert mappings, "no rms_connector.perf index"
    for mapping in mappings.values():
        for name in (
            SINCE,
            "licensing_successful_batched.connector_response_time_ms",
            "licensing_successful_batched.service_response_time_ms",
        ):
            assert _field(mapping, f"rms_connector.perf.{name}")["type"] == "double", name
        assert _field(mapping, "host.name")["type"] == "keyword"
        # the field the connector-health panels and per-host rules group by
        assert _field(mapping, "host.hostname")["type"] == "keyword"
    (cpu,) = (
        requests.get(f"{engine_url}/shipper-windows.perf-*/_mapping", timeout=30).json().values()
    )
    assert _field(cpu, "windows.perf.processor.pct_processor_time")["type"] == "double"
    assert _field(cpu, "windows.perf.object")["type"] == "keyword"
    assert _field(cpu, "windows.perf.instance")["type"] == "keyword"

    def search(body: dict[str, Any]) -> dict[str, Any]:
        r = requests.post(
            f"{engine_url}/shipper-rms_connector.perf-*/_search", json=body, timeout=30
        )
        assert r.status_code == 200, r.text
        return r.json()

    hits = search({"size": 10, "sort": [{"@timestamp": "asc"}]})["hits"]["hits"]
    got = [
        (
            h["_source"]["@timestamp"],
            h["_source"]["host"]["name"],
            h["_source"]["rms_connector"]["perf"],
        )
        for h in hits
    ]
    assert got == [
        (
            "2024-03-04T08:00:00.000Z",
            "rmscon01",
            {
                SINCE: 0.0,
                "licensing_successful_batched": {
                    "connector_response_time_ms": 12.0,
                    "service_response_time_ms": 10.0,
                },
            },
        ),
        (
            "2024-03-04T08:05:00.000Z",
            "rmscon01",
            {
                SINCE: 300.0,
                "licensing_successful_batched": {
                    "connector_response_time_ms": 12.75,
                    "service_response_time_ms": 10.5,
                },
            },
        ),
        (
            "2024-03-04T08:20:00.000Z",
            "rmscon01",
            {SINCE: 1200.0, "licensing_successful_batched": {"service_response_time_ms": 9.25}},
        ),
        ("2024-03-04T09:30:00.000Z", "rmscon02", {SINCE: 61.0}),
    ]
    over = search(
        {
            "size": 0,
            "query": {"range": {f"rms_connector.perf.{SINCE}": {"gt": 900}}},
            "aggs": {
                "hosts": {"terms": {"field": "host.name"}},
                "avg": {
                    "avg": {
                        "field": "rms_connector.perf."
                        "licensing_successful_batched.service_response_time_ms"
                    }
                },
            },
        }
    )
    assert over["hits"]["total"]["value"] == 1
    assert [b["key"] for b in over["aggregations"]["hosts"]["buckets"]] == ["rmscon01"]
    assert over["aggregations"]["avg"]["value"] == 9.25


def test_perf_datasets_are_metrics_data_streams() -> None:
    assert templates.stream_types()["rms_connector.perf"] == "metrics"
    assert templates.stream_types()["windows.perf"] == "metrics"
    names = setup.index_templates(ElasticsearchOutput())
    body = names["metrics-rms_connector.perf"]
    assert body["index_patterns"] == ["metrics-rms_connector.perf-*"]
    assert body["data_stream"] == {}
    assert "shipper-perf@mappings" in body["composed_of"]
    assert "metrics-windows.perf" in names


def test_every_named_counter_field_is_mapped_as_a_number() -> None:
    """The table in mappings/windows and the template in mappings/elasticsearch agree."""
    from shipper.mappings import load_yaml

    table = load_yaml("windows/rms_connector_perf.yaml")
    body = templates.load("component_template_shipper-perf@mappings.json")
    props = body["template"]["mappings"]["properties"]["rms_connector"]["properties"]["perf"]
    for counter, field in table["counters"].items():
        node = props
        for part in field.split("."):
            node = node["properties"][part]
        assert node["type"] == "double", (counter, field)


def test_perf_documents_go_to_the_metrics_data_stream() -> None:
    from shipper.outputs.elasticsearch.encode import BulkEncoder

    enc = BulkEncoder(None, "prod", 100, 10**6)
    assert enc.data_stream_fields("rms_connector.perf") == {
        "type": "metrics",
        "dataset": "rms_connector.perf",
        "namespace": "prod",
    }
    assert enc._resolve("rms_connector.perf", "2024-03-04T08:00:00.000Z") == (
        "metrics-rms_connector.perf-prod"
    )
    assert enc._resolve("rms_connector.events", "2024-03-04T08:00:00.000Z") == (
        "logs-rms_connector.events-prod"
    )
