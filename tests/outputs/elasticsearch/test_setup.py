"""Templates and Kibana objects as data: consistent with each other and with what we emit."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
import responses

from shipper.detections import elastic_rules
from shipper.mappings import mappings_dir
from shipper.outputs.elasticsearch import saved_objects, setup
from shipper.outputs.elasticsearch.config import ElasticsearchOutput
from shipper.outputs.elasticsearch.transport import _BulkAwareJson

from .events import rms_events, windows_events
from .localserver import LocalServer

AGGREGATABLE = {"keyword", "ip", "date", "long", "boolean"}


def explicit_fields() -> dict[str, str]:
    return saved_objects.field_types()


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


# written by the normaliser's enrichment (GeoIP, working hours); mapped where it lands
ENRICHMENT = {"source.geo.country_iso_code", "source.geo.country_name", "azure_rms.after_hours"}


def test_dashboards_reference_existing_aggregatable_fields() -> None:
    fields = explicit_fields()
    objects = [orjson.loads(x) for x in setup.kibana_objects(ElasticsearchOutput()).splitlines()]
    ids = {(o["type"], o["id"]) for o in objects}
    for o in objects:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, (o["id"], ref)
        panels = json.loads(o["attributes"].get("panelsJSON", "[]"))
        refs = {r["name"] for r in o["references"]}
        # Kibana 8 prefixes a panel's reference name with its panelIndex ("<i>:panel_<i>");
        # Lens panels are held by value and reference nothing
        for p in (p for p in panels if "panelRefName" in p):
            names = {p["panelRefName"], f"{p['panelIndex']}:{p['panelRefName']}"}
            assert names & refs, (o["id"], p["panelRefName"])
        if o["type"] == "visualization":
            vis = json.loads(o["attributes"]["visState"])
            for agg in vis["aggs"]:
                field = agg["params"].get("field")
                if field:
                    assert fields.get(field) in AGGREGATABLE, (o["id"], field)
            for control in vis["params"].get("controls", []):
                assert fields.get(control["fieldName"]) in AGGREGATABLE, (o["id"], control)
                assert control["indexPatternRefName"] in refs, (o["id"], control)
        if o["type"] == "search":
            for column in o["attributes"]["columns"]:
                assert column in fields or column in ENRICHMENT, (o["id"], column)
    assert {o["id"] for o in objects if o["type"] == "dashboard"} == {
        "shipper-rms-usage",
        "shipper-connector-health",
        "shipper-rms-forensics",
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
    assert all(t["data_stream"] == {} for t in ds.values()) and len(ds) == 6


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


# --- Kibana: saved objects and detection rules, against a fake Kibana -----------------------


class FakeKibana:
    """Just enough of Kibana's two import APIs to show what ``shipper setup`` sends and repeats.

    Saved objects and rules are kept by id; an import without ``overwrite=true`` of an id
    that exists is refused per item (as Kibana does: 409 in ``errors``, HTTP 200). A rule of
    a type in ``unknown_types`` is refused as an older Kibana refuses it (400 in ``errors``).
    """

    def __init__(self, unknown_types: tuple[str, ...] = ()) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.unknown_types = unknown_types
        self.calls: list[tuple[str, str]] = []

    @staticmethod
    def _file(headers: dict[str, str], body: bytes) -> list[dict[str, Any]]:
        from email.parser import BytesParser
        from email.policy import HTTP

        msg = BytesParser(policy=HTTP).parsebytes(
            f"content-type: {headers['content-type']}\r\n\r\n".encode() + body
        )
        (part,) = list(msg.iter_parts())
        assert part.get_param("name", header="content-disposition") == "file"
        data = part.get_payload(decode=True)
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def __call__(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        self.calls.append((method, path))
        if headers.get("kbn-xsrf") != "true":
            return 400, {}, {"message": "Request must contain a kbn-xsrf header."}
        overwrite = path.endswith("?overwrite=true")
        if method == "POST" and path.startswith("/api/saved_objects/_import"):
            objs = self._file(headers, body)
            errors = []
            for o in objs:
                key = (o["type"], o["id"])
                if key in self.objects and not overwrite:
                    errors.append({"id": o["id"], "type": o["type"], "error": {"type": "conflict"}})
                else:
                    self.objects[key] = o
            return 200, {}, {"success": not errors, "successCount": len(objs) - len(errors),
                             "errors": errors}  # fmt: skip
        if method == "POST" and path.startswith("/api/detection_engine/rules/_import"):
            rules = self._file(headers, body)
            errors = []
            for r in rules:
                if r["type"] in self.unknown_types:
                    refused = (400, f"type: Invalid enum value. Received '{r['type']}'")
                elif r["rule_id"] in self.rules and not overwrite:
                    refused = (409, f"rule_id: {r['rule_id']} already exists")
                else:
                    refused = None
                if refused:
                    error = {"status_code": refused[0], "message": refused[1]}
                    errors.append({"rule_id": r["rule_id"], "error": error})
                else:
                    self.rules[r["rule_id"]] = r
            return 200, {}, {"success": not errors, "success_count": len(rules) - len(errors),
                             "rules_count": len(rules), "errors": errors}  # fmt: skip
        return 404, {}, {"message": f"Not Found: {path}"}


def _elasticsearch(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
    """An Elasticsearch that accepts every template and policy PUT."""
    product = {"X-Elastic-Product": "Elasticsearch"}
    if method == "PUT":
        return 200, product, {"acknowledged": True}
    return 200, product, {"version": {"number": "9.1.0"}}


def test_setup_imports_saved_objects_and_rules_and_a_second_run_changes_nothing() -> None:

    kibana = FakeKibana()
    with LocalServer(_elasticsearch) as es, LocalServer(kibana) as kb:
        s = ElasticsearchOutput(hosts=[es.url], kibana_url=kb.url, api_key="k")
        first = setup.install(s)
        after_first = (dict(kibana.objects), dict(kibana.rules))
        second = setup.install(s)
    for report in (first, second):
        assert report.ok, report.steps
        steps = {st.what: st for st in report.steps}
        assert steps["Kibana detection rules"].result == "installed"
        assert steps["Kibana detection rules"].detail == f"{len(elastic_rules())} rules"
    assert (kibana.objects, kibana.rules) == after_first
    assert set(kibana.rules) == {r["rule_id"] for r in elastic_rules()}
    assert ("dashboard", "shipper-rms-forensics") in kibana.objects
    assert ("search", "shipper-rms-forensics-document") in kibana.objects
    rule_calls = [c for c in kibana.calls if "detection_engine" in c[1]]
    assert rule_calls == [("POST", "/api/detection_engine/rules/_import?overwrite=true")] * 2


def test_rules_refused_by_kibana_fail_the_step_naming_them() -> None:
    kibana = FakeKibana(unknown_types=("esql",))  # a Kibana before ES|QL rules (8.13)
    with LocalServer(kibana) as kb:
        step = setup.import_rules(ElasticsearchOutput(kibana_url=kb.url))
    assert step.result == "failed"
    assert f"2 of {len(elastic_rules())} refused" in step.detail
    assert "9a6aaa38-767a-4b05-bbaf-b2a763e3b5c4" in step.detail and "esql" in step.detail
    assert "14154a54-51c6-4e28-84db-a46b6f1b51a2" in step.detail


def test_kibana_unreachable_is_a_failed_step_not_a_traceback() -> None:
    with LocalServer() as srv:
        url = srv.url
    step = setup.import_rules(ElasticsearchOutput(kibana_url=url, request_timeout=2))
    assert step.result == "failed" and url in step.detail


def test_dry_run_contacts_nothing_and_names_every_request() -> None:
    kibana = FakeKibana()
    with LocalServer(_elasticsearch) as es, LocalServer(kibana) as kb:
        s = ElasticsearchOutput(hosts=[es.url], kibana_url=kb.url, kibana_space="soc")
        report = setup.install(s, dry_run=True)
        assert es.requests == [] and kb.requests == []
    lines = [f"{st.what}: {st.result} ({st.detail})" for st in report.steps]
    assert report.ok
    assert any(
        line.startswith(
            f"Kibana detection rules: would install ({len(elastic_rules())} rules: POST "
        )
        and line.endswith("/s/soc/api/detection_engine/rules/_import?overwrite=true)")
        for line in lines
    ), lines
    assert any("PUT /_index_template/" in line for line in lines)
    assert any("PUT /_ilm/policy/shipper-logs" in line for line in lines)


def test_opensearch_skips_the_rules_with_the_reason() -> None:
    step = setup.import_rules(ElasticsearchOutput(type="opensearch", kibana_url="http://x"))
    assert step.result == "skipped" and "Sigma" in step.detail


def test_index_mode_points_rules_at_the_indices() -> None:
    s = ElasticsearchOutput(index="shipper-{dataset}-%{+yyyy.MM.dd}")
    rules = [orjson.loads(x) for x in setup.detection_rules(s).splitlines()]
    for r in rules:
        if "index" in r:
            assert r["index"][0] in (
                "shipper-azure_rms.usage-*",
                "shipper-rms_connector.events-*",
                "shipper-rms_connector.perf-*",
            )
        else:
            assert r["query"].split("\n")[0] in (
                "FROM shipper-azure_rms.usage-*",
                "FROM shipper-rms_connector.events-*",
            )
    default = [orjson.loads(x) for x in setup.detection_rules(ElasticsearchOutput()).splitlines()]
    assert {r["index"][0] for r in default if "index" in r} == {
        "logs-azure_rms.usage-*",
        "logs-rms_connector.events-*",
        "metrics-rms_connector.perf-*",
    }


def test_shipper_setup_command_dry_run_then_twice_for_real(tmp_path: Any) -> None:
    """As a user runs it: `shipper setup --dry-run` touches nothing; two real runs both say
    the rules are installed and leave Kibana with the same rules."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    kibana = FakeKibana()

    def shipper(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shipper.cli", "setup", *args, str(tmp_path / "s.yaml")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    with LocalServer(_elasticsearch) as es, LocalServer(kibana) as kb:
        cfg = {"outputs": [{"type": "elasticsearch", "hosts": [es.url], "kibana_url": kb.url}]}
        (tmp_path / "s.yaml").write_text(json.dumps(cfg))
        dry = shipper("--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert es.requests == [] and kb.requests == []
        n = len(elastic_rules())
        assert (
            f"elasticsearch: Kibana detection rules: would install ({n} rules: POST " in dry.stdout
        )
        runs = [shipper(), shipper()]
    n_objects = setup.kibana_objects(ElasticsearchOutput()).count(b"\n")
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"elasticsearch: Kibana detection rules: installed ({n} rules)" in run.stdout
        assert (
            f"elasticsearch: Kibana saved objects: installed ({n_objects} objects, Kibana 8 set)"
            in run.stdout
        )
    assert len(kibana.rules) == len(elastic_rules())
