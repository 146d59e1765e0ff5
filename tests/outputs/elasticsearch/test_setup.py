"""Templates and Kibana objects as data: consistent with each other and with what we emit."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
import responses

from shipper.mappings import mappings_dir
from shipper.outputs.elasticsearch import setup
from shipper.outputs.elasticsearch.config import ElasticsearchOutput
from shipper.outputs.elasticsearch.transport import _BulkAwareJson

from .events import rms_events, windows_events
from .localserver import LocalServer

AGGREGATABLE = {"keyword", "ip", "date", "long", "boolean"}


def explicit_fields() -> dict[str, str]:
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            else:
                out[prefix + name] = spec.get("type", "object")

    s = ElasticsearchOutput()
    for body in setup.component_templates(s).values():
        walk(body["template"].get("mappings", {}).get("properties", {}), "")
    return out


def leaves(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in doc.items():
        if isinstance(v, dict):
            out |= leaves(v, f"{prefix}{k}.")
        else:
            out.add(prefix + k)
    return out


def test_every_emitted_field_has_an_explicit_mapping() -> None:
    fields = explicit_fields()
    dynamic = ("winlog.event_data.", "winlog.user_data.", "ecma2host.trace.")
    emitted = set().union(*(leaves(e) for e in rms_events()[0] + windows_events()))
    missing = {f for f in emitted if f not in fields and not f.startswith(dynamic)}
    assert not missing
    assert fields["source.ip"] == "ip" and fields["related.ip"] == "ip"
    assert fields["azure_rms.admin_action"] == "boolean"
    assert fields["@timestamp"] == "date"


def test_dashboards_reference_existing_aggregatable_fields() -> None:
    fields = explicit_fields()
    objects = [orjson.loads(x) for x in setup.kibana_objects(ElasticsearchOutput()).splitlines()]
    ids = {(o["type"], o["id"]) for o in objects}
    for o in objects:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, (o["id"], ref)
        if o["type"] == "visualization":
            vis = json.loads(o["attributes"]["visState"])
            for agg in vis["aggs"]:
                field = agg["params"].get("field")
                if field:
                    assert fields.get(field) in AGGREGATABLE, (o["id"], field)
    assert {o["id"] for o in objects if o["type"] == "dashboard"} == {
        "shipper-rms-usage",
        "shipper-connector-health",
    }


def test_index_mode_rewrites_data_view_titles_and_templates() -> None:
    s = ElasticsearchOutput(index="shipper-{dataset}-%{+yyyy.MM.dd}")
    titles = [
        orjson.loads(x)["attributes"]["title"]
        for x in setup.kibana_objects(s).splitlines()
        if b'"index-pattern"' in x
    ]
    assert "shipper-azure_rms.usage-*" in titles
    templates = setup.index_templates(s)
    assert all("data_stream" not in t for t in templates.values())
    ds = setup.index_templates(ElasticsearchOutput())
    assert all(t["data_stream"] == {} for t in ds.values()) and len(ds) == 4


def test_ilm_only_for_elasticsearch_data_streams() -> None:
    body = setup.component_templates(ElasticsearchOutput())["shipper@settings"]
    assert body["template"]["settings"]["index"]["lifecycle"]["name"] == "shipper-logs"
    os_body = setup.component_templates(ElasticsearchOutput(type="opensearch"))["shipper@settings"]
    assert "lifecycle" not in os_body["template"]["settings"]["index"]


def test_kibana_import_posts_multipart_with_xsrf_and_auth() -> None:
    seen: list[bytes] = []

    def kibana(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        seen.append(body)
        assert headers["kbn-xsrf"] == "true" and headers["authorization"] == "ApiKey k"
        assert path.startswith("/s/soc/api/saved_objects/_import?overwrite=true")
        return 200, {}, {"success": True, "successCount": 16}

    with LocalServer(kibana) as srv:
        s = ElasticsearchOutput(kibana_url=srv.url, kibana_space="soc", api_key="k")
        step = setup.import_kibana(s)
    assert step.result == "installed", step
    assert b"shipper-rms-usage" in seen[0]


@responses.activate
def test_status_reports_auth_failure_clearly() -> None:
    url = "http://127.0.0.1:9200"
    responses.get(url + "/", json={"error": {"type": "security_exception"}}, status=401)
    st = setup.status(ElasticsearchOutput(type="opensearch", hosts=[url], http_client="requests"))
    assert not st.ok and "authentication failed" in st.message


def test_status_reports_unreachable_without_a_traceback() -> None:
    with LocalServer() as srv:
        url = srv.url
    st = setup.status(ElasticsearchOutput(type="opensearch", hosts=[url], request_timeout=2))
    assert not st.ok and "cannot connect" in st.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"errors":false,"items":[{"create":{"status":201}}]}', {"errors": False}),
        (b'{"took":3,"errors":false,"items":[]}', {"errors": False}),
        (b'{"errors":true,"items":[{"create":{"status":409}}]}', None),
    ],
)
def test_bulk_reply_shortcut(raw: bytes, expected: Any) -> None:
    assert _BulkAwareJson().loads(raw) == (expected or orjson.loads(raw))


def test_mapping_files_are_plain_json() -> None:
    for path in (mappings_dir() / "elasticsearch").glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
