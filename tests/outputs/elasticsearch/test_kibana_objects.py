"""The saved objects as Kibana 8 and OpenSearch Dashboards take them, and what they show.

- The Kibana set has the saved-object shape of Kibana 8: per type the attributes Kibana needs,
  ``coreMigrationVersion`` / ``typeMigrationVersion`` / ``managed``, Lens panels by value whose
  ``formBased`` layers, visualization accessors and data view references hang together.
- The OpenSearch Dashboards set has the 7.10-era shape it migrates from: ``migrationVersion``
  no newer than it knows (index patterns 7.6.0), ``visState`` that parses, panels by reference.
- In both, every reference resolves inside the set and every field a panel, search, picker or
  query names is mapped by the index templates (and aggregatable where it is grouped on).
- The committed files are what ``mappings/kibana/objects.yaml`` generates.
- The connector's "unauthorised attempts" panel groups by the computer the normaliser found in
  event 2001, and the saved searches find exactly what their names promise, on a real engine.
- ``setup`` imports the OpenSearch Dashboards set for ``type: opensearch`` and the Kibana set
  for ``type: elasticsearch``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from shipper.mappings import mappings_dir
from shipper.outputs.elasticsearch import kibana, saved_objects, setup
from shipper.outputs.elasticsearch.config import ElasticsearchOutput

from .localserver import LocalServer
from .test_setup import FakeKibana

AGGREGATABLE = {"keyword", "ip", "date", "long", "integer", "short", "double", "float", "boolean"}
OSD_VIS_TYPES = {"histogram", "line", "area", "table", "pie", "metric", "input_control_vis"}
LENS_VIS_TYPES = {"lnsXY", "lnsDatatable", "lnsPie", "lnsMetric"}


def version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def objects_of(which: str, **settings: Any) -> list[dict[str, Any]]:
    engine = "opensearch" if which == kibana.OPENSEARCH_DASHBOARDS else "elasticsearch"
    body = setup.kibana_objects(ElasticsearchOutput(type=engine, **settings))
    return [json.loads(line) for line in body.splitlines()]


@pytest.fixture(scope="module")
def fields() -> dict[str, str]:
    return saved_objects.field_types()


@pytest.fixture(scope="module")
def kib() -> list[dict[str, Any]]:
    return objects_of(kibana.KIBANA)


@pytest.fixture(scope="module")
def osd() -> list[dict[str, Any]]:
    return objects_of(kibana.OPENSEARCH_DASHBOARDS)


def query_fields(query: str) -> set[str]:
    """Field names of a Lucene query (``field:value``, ``field:(a OR b)``)."""
    return set(re.findall(r"([A-Za-z_@][\w.@]*):", query))


def resolve(objects: list[dict[str, Any]], refs: list[dict[str, Any]], owner: str) -> None:
    ids = {(o["type"], o["id"]) for o in objects}
    for ref in refs:
        assert (ref["type"], ref["id"]) in ids, f"{owner}: {ref} resolves to nothing in the set"


# --- Kibana 8 ------------------------------------------------------------------------------------

REQUIRED = {
    "index-pattern": {"title", "timeFieldName"},
    "search": {"title", "columns", "sort", "kibanaSavedObjectMeta"},
    "dashboard": {"title", "panelsJSON", "optionsJSON", "timeRestore", "kibanaSavedObjectMeta"},
}


def test_kibana_objects_have_the_saved_object_shape_of_kibana_8(kib: list[dict[str, Any]]) -> None:
    assert len({(o["type"], o["id"]) for o in kib}) == len(kib), "duplicate ids"
    for o in kib:
        what = f"{o['type']} {o['id']}"
        assert set(o) == {
            "id",
            "type",
            "attributes",
            "references",
            "coreMigrationVersion",
            "typeMigrationVersion",
            "managed",
        }, what
        assert o["type"] in REQUIRED, f"{what}: no classic visualizations in the Kibana 8 set"
        assert o["managed"] is False and o["coreMigrationVersion"] == "8.8.0", what
        assert version(o["typeMigrationVersion"]) <= version(o["coreMigrationVersion"]), what
        assert REQUIRED[o["type"]] <= set(o["attributes"]), what
        a = o["attributes"]
        for key in ("fields", "fieldFormatMap", "runtimeFieldMap", "sourceFilters"):
            if key in a:
                json.loads(a[key])  # Kibana keeps these as JSON strings
        source = json.loads(a.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}"))
        if "indexRefName" in source:
            assert source["indexRefName"] in {r["name"] for r in o["references"]}, what
        if o["type"] == "search":
            assert source["query"]["language"] in ("kuery", "lucene"), what
            assert all(isinstance(c, str) for c in a["columns"]), what
            assert all(len(s) == 2 and s[1] in ("asc", "desc") for s in a["sort"]), what
        if o["type"] == "dashboard":
            assert isinstance(json.loads(a["panelsJSON"]), list), what
            assert isinstance(json.loads(a["optionsJSON"]), dict), what
            assert isinstance(a["timeRestore"], bool), what
        resolve(kib, o["references"], what)


def lens_layers(panel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    state = panel["embeddableConfig"]["attributes"]["state"]
    return state["datasourceStates"]["formBased"]["layers"]


def accessors(vis_type: str, vis: dict[str, Any]) -> dict[str, list[str]]:
    """Column ids the visualization uses, by layer."""
    if vis_type == "lnsDatatable":
        return {vis["layerId"]: [c["columnId"] for c in vis["columns"]]}
    if vis_type == "lnsMetric":
        return {vis["layerId"]: [vis["metricAccessor"]]}
    out: dict[str, list[str]] = {}
    for layer in vis["layers"]:
        used = [*layer.get("accessors", []), *layer.get("primaryGroups", [])]
        used += [*layer.get("metrics", []), layer.get("xAccessor"), layer.get("splitAccessor")]
        out[layer["layerId"]] = [c for c in used if c]
    return out


def test_dashboard_panels_are_lens_by_value_with_their_data_views_referenced(
    kib: list[dict[str, Any]],
) -> None:
    dashboards = [o for o in kib if o["type"] == "dashboard"]
    assert {d["id"] for d in dashboards} == {
        "shipper-rms-usage",
        "shipper-connector-health",
        "shipper-rms-forensics",
    }
    lens_panels = 0
    for d in dashboards:
        refs = {r["name"]: r for r in d["references"]}
        cells: set[tuple[int, int]] = set()
        for p in json.loads(d["attributes"]["panelsJSON"]):
            what = f"{d['id']} panel {p.get('title', p['panelIndex'])}"
            g = p["gridData"]
            assert g["i"] == p["panelIndex"] and 0 <= g["x"] and g["x"] + g["w"] <= 48, what
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not mine & cells, f"{what} overlaps another panel"
            cells |= mine
            assert p["type"] in ("lens", "search"), what
            if p["type"] == "search":
                ref = refs[f"{p['panelIndex']}:{p['panelRefName']}"]
                assert ref["type"] == "search", what
                continue
            lens_panels += 1
            attrs = p["embeddableConfig"]["attributes"]
            assert attrs["visualizationType"] in LENS_VIS_TYPES, what
            layers = lens_layers(p)
            assert layers, what
            inner = {r["name"]: r["id"] for r in attrs["references"]}
            used = accessors(attrs["visualizationType"], attrs["state"]["visualization"])
            assert set(used) == set(layers), f"{what}: visualization and datasource layers differ"
            for layer_id, layer in layers.items():
                columns = layer["columns"]
                assert layer["columnOrder"] and set(layer["columnOrder"]) == set(columns), what
                assert set(used[layer_id]) <= set(columns), f"{what}: accessor without a column"
                for col in columns.values():
                    assert {"label", "dataType", "operationType", "isBucketed"} <= set(col), what
                    order = col.get("params", {}).get("orderBy", {})
                    if order.get("type") == "column":
                        assert order["columnId"] in columns, what
                name = f"indexpattern-datasource-layer-{layer_id}"
                dv = inner[name]
                assert refs[f"{p['panelIndex']}:{name}"]["id"] == dv, what
                assert refs[f"{p['panelIndex']}:{name}"]["type"] == "index-pattern", what
        controls = d["attributes"].get("controlGroupInput")
        if controls:
            for cid, control in json.loads(controls["panelsJSON"]).items():
                assert control["type"] == "optionsListControl"
                assert control["explicitInput"]["fieldName"]
                assert refs[f"controlGroup_{cid}:optionsListDataView"]["type"] == "index-pattern"
    assert lens_panels == 12


def kibana_field_uses(o: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(where, field, grouped on) for every field a Kibana object names."""
    a = o["attributes"]
    if o["type"] == "search":
        source = json.loads(a["kibanaSavedObjectMeta"]["searchSourceJSON"])
        for f in query_fields(source["query"]["query"]):
            yield f"{o['id']} query", f, False
        for f in a["columns"]:
            yield f"{o['id']} column", f, False
        for f, _ in a["sort"]:
            yield f"{o['id']} sort", f, True
    if o["type"] == "dashboard":
        for p in json.loads(a["panelsJSON"]):
            if p["type"] != "lens":
                continue
            state = p["embeddableConfig"]["attributes"]["state"]
            for f in query_fields(state["query"]["query"]):
                yield f"{p['title']} query", f, False
            for layer in lens_layers(p).values():
                for col in layer["columns"].values():
                    if col.get("sourceField", "___records___") != "___records___":
                        yield p["title"], col["sourceField"], True
        controls = a.get("controlGroupInput")
        if controls:
            for c in json.loads(controls["panelsJSON"]).values():
                yield f"{o['id']} control", c["explicitInput"]["fieldName"], True


def osd_field_uses(o: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    a = o["attributes"]
    if o["type"] == "search":
        yield from kibana_field_uses(o)
    if o["type"] == "visualization":
        source = json.loads(a["kibanaSavedObjectMeta"]["searchSourceJSON"])
        for f in query_fields(source["query"]["query"]):
            yield f"{o['id']} query", f, False
        vis = json.loads(a["visState"])
        for agg in vis["aggs"]:
            if agg["params"].get("field"):
                yield o["id"], agg["params"]["field"], True
        for control in vis["params"].get("controls", []):
            yield f"{o['id']} control", control["fieldName"], True


@pytest.mark.parametrize("which", [kibana.KIBANA, kibana.OPENSEARCH_DASHBOARDS])
def test_every_field_is_mapped_and_aggregatable_where_grouped(
    which: str, fields: dict[str, str]
) -> None:
    uses = kibana_field_uses if which == kibana.KIBANA else osd_field_uses
    seen = 0
    for o in objects_of(which):
        for where, field, grouped in uses(o):
            seen += 1
            assert field in fields, f"{which}: {where} names {field}, which no template maps"
            if grouped:
                assert fields[field] in AGGREGATABLE, f"{which}: {where} groups on {field}"
    assert seen > 50


def test_lens_column_types_match_the_mappings(
    kib: list[dict[str, Any]], fields: dict[str, str]
) -> None:
    lens_type = {"keyword": "string", "ip": "ip", "boolean": "boolean", "date": "date"}
    for d in (o for o in kib if o["type"] == "dashboard"):
        for p in json.loads(d["attributes"]["panelsJSON"]):
            if p["type"] == "lens":
                for layer in lens_layers(p).values():
                    for col in layer["columns"].values():
                        if col["operationType"] in ("terms", "date_histogram"):
                            expected = lens_type.get(fields[col["sourceField"]], "number")
                            assert col["dataType"] == expected, (p["title"], col["sourceField"])


# --- OpenSearch Dashboards -----------------------------------------------------------------------

#: the newest migration OpenSearch Dashboards has per type (forked from Kibana 7.10.2)
OSD_KNOWS = {
    "index-pattern": "7.6.0",
    "visualization": "7.10.0",
    "search": "7.9.3",
    "dashboard": "7.9.3",
}


def test_opensearch_dashboards_objects_have_its_shape(osd: list[dict[str, Any]]) -> None:
    assert len({(o["type"], o["id"]) for o in osd}) == len(osd), "duplicate ids"
    for o in osd:
        what = f"{o['type']} {o['id']}"
        assert set(o) == {"id", "type", "attributes", "references", "migrationVersion"}, what
        assert o["type"] in OSD_KNOWS, what
        assert list(o["migrationVersion"]) == [o["type"]], what
        assert version(o["migrationVersion"][o["type"]]) <= version(OSD_KNOWS[o["type"]]), what
        a = o["attributes"]
        assert a["title"], what
        source = json.loads(a.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}"))
        if "indexRefName" in source:
            assert source["indexRefName"] in {r["name"] for r in o["references"]}, what
        if o["type"] == "visualization":
            vis = json.loads(a["visState"])
            assert vis["type"] in OSD_VIS_TYPES and vis["title"] == a["title"], what
            assert isinstance(vis["aggs"], list) and isinstance(vis["params"], dict), what
            json.loads(a["uiStateJSON"])
            for control in vis["params"].get("controls", []):
                assert control["indexPatternRefName"] in {r["name"] for r in o["references"]}
        if o["type"] == "dashboard":
            names = {r["name"] for r in o["references"]}
            for p in json.loads(a["panelsJSON"]):
                assert p["panelRefName"] in names, what
                assert p["gridData"]["x"] + p["gridData"]["w"] <= 48, what
        resolve(osd, o["references"], what)


def test_both_sets_show_the_same_dashboards_and_searches(
    kib: list[dict[str, Any]], osd: list[dict[str, Any]]
) -> None:
    def searches(objects: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            o["id"]: (
                o["attributes"]["title"],
                o["attributes"]["columns"],
                json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"],
            )
            for o in objects
            if o["type"] == "search"
        }

    assert searches(kib) == searches(osd)
    osd_by_id = {(o["type"], o["id"]): o for o in osd}
    for d in (o for o in kib if o["type"] == "dashboard"):
        kib_titles = [p.get("title") for p in json.loads(d["attributes"]["panelsJSON"])]
        theirs = osd_by_id[("dashboard", d["id"])]
        osd_titles = []
        for ref in theirs["references"]:
            target = osd_by_id[(ref["type"], ref["id"])]
            if target["type"] == "visualization" and "controls" in target["attributes"]["visState"]:
                continue  # OpenSearch Dashboards' pickers are a panel, Kibana's a control group
            osd_titles.append(None if ref["type"] == "search" else target["attributes"]["title"])
        assert kib_titles == osd_titles, d["id"]
        assert theirs["attributes"]["title"] == d["attributes"]["title"]


def test_committed_files_are_what_objects_yaml_generates() -> None:
    built = saved_objects.build()
    for folder, files in built.items():
        on_disk = {p.stem for p in (mappings_dir() / folder).glob("*.ndjson")}
        assert on_disk == set(files), folder
        assert {f"{name}.ndjson" for name in files} == set(kibana.FILES), folder
        for name, objects in files.items():
            committed = (mappings_dir() / folder / f"{name}.ndjson").read_text(encoding="utf-8")
            assert committed == saved_objects.render(objects), (
                f"{folder}/{name}.ndjson differs from objects.yaml: run "
                "python -m shipper.outputs.elasticsearch.saved_objects"
            )


def test_a_panel_with_a_chart_it_cannot_draw_is_refused_naming_it() -> None:
    spec = saved_objects.load_source()
    spec["dashboards"][0]["panels"][0]["chart"] = "radar"
    with pytest.raises(ValueError, match="shipper-rms-activity.*radar"):
        saved_objects.build(spec)


def test_index_mode_rewrites_data_view_titles_in_both_sets() -> None:
    for which in (kibana.KIBANA, kibana.OPENSEARCH_DASHBOARDS):
        objects = objects_of(which, index="shipper-{dataset}-%{+yyyy.MM.dd}")
        titles = {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
        assert "shipper-rms_connector.events-*" in titles, which
        assert "shipper-rms_connector.perf-*" in titles and len(titles) == 5, which


# --- what the panels and searches show -----------------------------------------------------------


def connector_event(code: str, message: str, level: int, n: int) -> dict[str, Any]:
    from shipper.normalise.winlog import normalise

    rec = {"time": f"2024-03-04T14:{n:02d}:07Z", "event_id": code, "level": level,
           "provider": "Microsoft RMS connector", "channel": "Application",
           "computer": "RMSCON01.contoso.com", "record_id": n,
           "event_data": {"param1": message}}  # fmt: skip
    return normalise(rec, "app.xml")


def refused(n: int, computer: str, account: str) -> dict[str, Any]:
    message = (
        "Unauthorized access attempt to Microsoft RMS connector.\r\n\r\n"
        f"SID: S-1-5-21-1-2-3-{n}\r\nAccount Name: {account}\r\nComputer Name: {computer}"
    )
    return connector_event("2001", message, 3, n)


def panel(objects: list[dict[str, Any]], title: str) -> dict[str, Any]:
    for o in objects:
        if o["type"] == "dashboard":
            for p in json.loads(o["attributes"]["panelsJSON"]):
                if p.get("title") == title:
                    return p
    raise AssertionError(title)


def test_unauthorised_attempts_are_grouped_by_the_computer_that_tried(
    kib: list[dict[str, Any]], osd: list[dict[str, Any]]
) -> None:
    event = refused(1, "SP-WEB03.contoso.com", "CONTOSO\\SP-WEB03$")
    title = "RMS connector: unauthorised attempts"
    p = panel(kib, title)
    (layer,) = lens_layers(p).values()
    first = layer["columns"][layer["columnOrder"][0]]["sourceField"]
    vis = json.loads(
        next(o for o in osd if o["attributes"]["title"] == title)["attributes"]["visState"]
    )
    assert vis["aggs"][1]["params"]["field"] == first
    value: Any = event
    for part in first.split("."):
        value = value[part]
    assert value == "SP-WEB03.contoso.com"  # the caller named in the 2001 message
    assert event["host"]["hostname"] == "rmscon01" != value  # not the connector itself


def rms_events_for_searches() -> list[dict[str, Any]]:
    from shipper.normalise.rms import RmsNormaliser
    from tests.conftest import FIELDS_17, rms_row

    bound = RmsNormaliser().bind(FIELDS_17)
    rows = [rms_row(n) for n in range(10)]  # granted licences
    rows += [
        rms_row(10 + n, result="'AccessDenied'", user_id="'eve@contoso.com'") for n in range(3)
    ]
    rows += [
        rms_row(13, admin_action="true", request_type="GetAllDocs", user_id="'admin@contoso.com'")
    ]
    rows += [rms_row(14, request_type="SetUsageLogFeatureState", user_id="'admin@contoso.com'")]
    return [bound(r, "rmslog.log", 0, "\t".join(r)) for r in rows]


@pytest.fixture
def shipped(engine_url: str, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    from shipper.outputs.elasticsearch.output import BulkOutput

    from .events import to_batch

    s = ElasticsearchOutput(type="opensearch", hosts=[engine_url], index="shipper-{dataset}")
    assert setup.install(s, kibana=False).ok
    connector = [
        refused(1, "SP-WEB03.contoso.com", "CONTOSO\\SP-WEB03$"),
        refused(2, "SP-WEB03.contoso.com", "CONTOSO\\SP-WEB03$"),
        refused(3, "EXCH02.contoso.com", "CONTOSO\\EXCH02$"),
        connector_event("3001", "An exception occurred while downloading authorization.", 2, 4),
        connector_event("1004", "The list of authorized accounts has been updated.", 4, 5),
    ]
    events = {"rms": rms_events_for_searches(), "connector": connector}
    ack = BulkOutput(s, tmp_path).send(to_batch(events["rms"] + connector))
    assert ack.delivered == len(events["rms"]) + len(connector)
    requests.post(f"{engine_url}/shipper-*/_refresh", timeout=10)
    return {"url": engine_url, **events}  # type: ignore[dict-item]


def run(url: str, index: str, query: str, aggs: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"size": 100, "query": {"query_string": {"query": query}}}
    if aggs:
        body["aggs"] = aggs
    r = requests.post(f"{url}/{index}/_search", json=body, timeout=10)
    r.raise_for_status()
    return r.json()


@pytest.mark.integration
def test_saved_searches_find_what_their_names_promise(
    shipped: dict[str, Any], osd: list[dict[str, Any]]
) -> None:
    url, rms, connector = shipped["url"], shipped["rms"], shipped["connector"]
    found = {}
    for o in (o for o in osd if o["type"] == "search"):
        source = json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        hits = run(url, "shipper-*", source["query"]["query"])["hits"]["hits"]
        found[o["id"]] = {h["_source"]["event"]["id"] for h in hits}

    def ids(events: list[dict[str, Any]], keep: Any) -> set[str]:
        return {e["event"]["id"] for e in events if keep(e)}

    assert found["shipper-rms-failures-by-user"] == ids(
        rms, lambda e: e["event"]["outcome"] == "failure"
    )
    assert len(found["shipper-rms-failures-by-user"]) == 3
    assert found["shipper-rms-admin-actions"] == ids(
        rms, lambda e: e["event"]["action"] in ("GetAllDocs", "SetUsageLogFeatureState")
    )
    assert found["shipper-connector-errors"] == ids(
        connector, lambda e: e["event"]["code"] == "3001"
    )
    assert found["shipper-connector-unauthorised-callers"] == ids(
        connector, lambda e: e["event"]["code"] == "2001"
    )
    assert found["shipper-rms-forensics-user"] == ids(
        rms, lambda e: e["event"]["action"] == "AcquireLicense"
    )


@pytest.mark.integration
def test_unauthorised_panel_on_the_engine_lists_the_callers(
    shipped: dict[str, Any], osd: list[dict[str, Any]]
) -> None:
    """The panel's own query and aggregation, as OpenSearch Dashboards sends them."""
    vis_obj = next(o for o in osd if o["id"] == "shipper-connector-unauthorised")
    assert vis_obj["type"] == "visualization"
    vis = json.loads(vis_obj["attributes"]["visState"])
    query = json.loads(vis_obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    field = vis["aggs"][1]["params"]["field"]
    reply = run(
        shipped["url"],
        "shipper-rms_connector.events",
        query["query"]["query"],
        {"by": {"terms": {"field": field, "size": vis["aggs"][1]["params"]["size"]}}},
    )
    buckets = {b["key"]: b["doc_count"] for b in reply["aggregations"]["by"]["buckets"]}
    assert buckets == {"SP-WEB03.contoso.com": 2, "EXCH02.contoso.com": 1}


# --- setup picks the set by the engine -----------------------------------------------------------


class FakeDashboards(FakeKibana):
    """OpenSearch Dashboards' import, as far as the sets differ for it: ``osd-xsrf`` instead of
    ``kbn-xsrf``, and an object whose ``migrationVersion`` is newer than it knows is refused
    (its migrator's "belongs to a more recent version"); one without ``migrationVersion`` but
    with Kibana 8's ``typeMigrationVersion`` is refused too, as a Kibana 8 object it would
    otherwise migrate from scratch into panels it cannot draw (Lens)."""

    def __call__(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        self.calls.append((method, path))
        if headers.get("osd-xsrf") != "true":
            return 400, {}, {"message": "Request must contain a osd-xsrf header."}
        if not (method == "POST" and path.startswith("/api/saved_objects/_import")):
            return 404, {}, {"message": f"Not Found: {path}"}
        errors = []
        objs = self._file(headers, body)
        for o in objs:
            newer = {
                t: v for t, v in o.get("migrationVersion", {}).items()
                if version(v) > version(OSD_KNOWS.get(t, "0.0.0"))
            }  # fmt: skip
            if newer or "typeMigrationVersion" in o:
                than = newer or o["typeMigrationVersion"]
                why = f"{o['id']} belongs to a more recent version: {than}"
                errors.append(
                    {"id": o["id"], "type": o["type"], "error": {"type": "unknown", "message": why}}
                )
            else:
                self.objects[(o["type"], o["id"])] = o
        reply = {"success": not errors, "successCount": len(objs) - len(errors), "errors": errors}
        return 200, {}, reply


@pytest.mark.integration
def test_setup_against_opensearch_imports_the_opensearch_dashboards_set(engine_url: str) -> None:
    dashboards = FakeDashboards()
    with LocalServer(dashboards) as osd_server:
        s = ElasticsearchOutput(
            type="opensearch",
            hosts=[engine_url],
            index="shipper-{dataset}",
            kibana_url=osd_server.url,
        )
        report = setup.install(s)
        wrong = setup.import_kibana(
            ElasticsearchOutput(type="elasticsearch", kibana_url=osd_server.url)
        )
    steps = {st.what: st for st in report.steps}
    assert report.ok, report.steps
    step = steps[setup.SAVED_OBJECTS]
    expected = objects_of(kibana.OPENSEARCH_DASHBOARDS, index="shipper-{dataset}")
    assert step.result == "installed", step
    assert step.detail == f"{len(expected)} objects, OpenSearch Dashboards set"
    assert dashboards.objects == {(o["type"], o["id"]): o for o in expected}
    assert ("dashboard", "shipper-connector-health") in dashboards.objects
    # the Kibana 8 set is what OpenSearch Dashboards would refuse (sent with the wrong header
    # and format, it never lands)
    assert wrong.result == "failed"


def test_setup_for_elasticsearch_imports_the_kibana_8_set() -> None:
    fake = FakeKibana()
    with LocalServer(fake) as kb:
        step = setup.import_kibana(ElasticsearchOutput(kibana_url=kb.url))
    expected = objects_of(kibana.KIBANA)
    assert step.result == "installed" and step.detail == f"{len(expected)} objects, Kibana 8 set"
    assert fake.objects == {(o["type"], o["id"]): o for o in expected}
    assert all(o["coreMigrationVersion"] == "8.8.0" for o in fake.objects.values())


def test_dry_run_names_the_set_it_would_import() -> None:
    for engine, which in (
        ("opensearch", kibana.OPENSEARCH_DASHBOARDS),
        ("elasticsearch", kibana.KIBANA),
    ):
        report = setup.plan(ElasticsearchOutput(type=engine, kibana_url="http://127.0.0.1:1"))
        (step,) = [st for st in report.steps if st.what == setup.SAVED_OBJECTS]
        n = len(objects_of(which))
        assert step.detail.startswith(f"{n} objects, {which} set: POST http://127.0.0.1:1/api/")


# --- the performance counter panels --------------------------------------------------------------

PERF = "rms_connector.perf."
BATCHED = f"{PERF}licensing_successful_batched."
TIMES = [
    f"{BATCHED}connector_processing_time_ms",
    f"{BATCHED}service_response_time_ms",
    f"{BATCHED}connector_response_time_ms",
]
SINCE = f"{PERF}time_since_last_authorization_policy_update_seconds"
TIMES_TITLE = "RMS connector: connector vs service vs network time"
SINCE_TITLE = "RMS connector: time since last authorization policy update (line at 15 minutes)"
NUMERIC = {"double", "float", "long", "integer", "short", "scaled_float"}


def osd_vis(osd: list[dict[str, Any]], title: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the visualization object, its parsed visState) of an OpenSearch Dashboards panel."""
    o = next(o for o in osd if o["type"] == "visualization" and o["attributes"]["title"] == title)
    return o, json.loads(o["attributes"]["visState"])


def lens_columns(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cid: c for layer in lens_layers(p).values() for cid, c in layer["columns"].items()}


@pytest.mark.parametrize("which", [kibana.KIBANA, kibana.OPENSEARCH_DASHBOARDS])
def test_every_metric_is_computed_on_a_numeric_field(which: str, fields: dict[str, str]) -> None:
    """An average or maximum of a keyword is an error in the panel; of an unmapped field,
    an empty chart. The perf panels' fields are the templates' doubles."""
    metrics: dict[str, str] = {}
    for o in objects_of(which):
        if o["type"] == "dashboard" and which == kibana.KIBANA:
            for p in json.loads(o["attributes"]["panelsJSON"]):
                if p["type"] == "lens":
                    for c in lens_columns(p).values():
                        if c["operationType"] in ("average", "sum", "min", "max"):
                            metrics[c["sourceField"]] = p["title"]
        if o["type"] == "visualization":
            for agg in json.loads(o["attributes"]["visState"])["aggs"]:
                if agg["type"] in ("avg", "sum", "min", "max"):
                    metrics[agg["params"]["field"]] = o["attributes"]["title"]
    assert set(TIMES) | {SINCE} <= set(metrics), which
    for field, title in metrics.items():
        assert fields.get(field) in NUMERIC, f"{which}: {title} computes on {field}"


def test_perf_data_view_is_the_metrics_data_stream_and_follows_index_mode() -> None:
    for which in (kibana.KIBANA, kibana.OPENSEARCH_DASHBOARDS):
        for settings in ({}, {"index": "shipper-{dataset}-%{+yyyy.MM.dd}"}):
            s = ElasticsearchOutput(
                type="opensearch" if which == kibana.OPENSEARCH_DASHBOARDS else "elasticsearch",
                **settings,
            )
            views = {
                o["id"]: o["attributes"]["title"]
                for o in objects_of(which, **settings)
                if o["type"] == "index-pattern"
            }
            want = "shipper-rms_connector.perf-*" if settings else "metrics-rms_connector.perf-*"
            assert views["shipper-metrics-rms_connector.perf"] == want, (which, settings)
            assert views["shipper-logs-rms_connector.events"].endswith("rms_connector.events-*")
            # each data view covers exactly what an index template of `setup` creates
            patterns = {p for t in setup.index_templates(s).values() for p in t["index_patterns"]}
            assert set(views.values()) <= patterns, (which, settings)


def test_kibana_perf_panels_are_lens_lines_with_a_900_s_reference_line(
    kib: list[dict[str, Any]],
) -> None:
    p = panel(kib, TIMES_TITLE)
    vis = p["embeddableConfig"]["attributes"]["state"]["visualization"]
    (data,) = vis["layers"]
    columns = lens_columns(p)
    assert data["seriesType"] == "line" and data["layerType"] == "data"
    assert [columns[a]["sourceField"] for a in data["accessors"]] == TIMES
    assert {columns[a]["operationType"] for a in data["accessors"]} == {"average"}
    assert columns[data["xAccessor"]]["operationType"] == "date_histogram"
    assert columns[data["splitAccessor"]]["sourceField"] == "host.hostname"
    dv = {r["id"] for r in p["embeddableConfig"]["attributes"]["references"]}
    assert dv == {"shipper-metrics-rms_connector.perf"}

    p = panel(kib, SINCE_TITLE)
    attrs = p["embeddableConfig"]["attributes"]
    vis = attrs["state"]["visualization"]
    by_type = {layer["layerType"]: layer for layer in vis["layers"]}
    assert set(by_type) == {"data", "referenceLine"}
    columns = lens_columns(p)
    (since,) = by_type["data"]["accessors"]
    assert columns[since]["sourceField"] == SINCE and by_type["data"]["seriesType"] == "line"
    assert columns[by_type["data"]["splitAccessor"]]["sourceField"] == "host.hostname"
    (ref,) = by_type["referenceLine"]["accessors"]
    assert columns[ref]["operationType"] == "static_value"
    assert float(columns[ref]["params"]["value"]) == 900
    assert by_type["referenceLine"]["yConfig"][0]["forAccessor"] == ref
    # the reference line's own formBased layer has its data view reference, in the panel and
    # in the dashboard (Kibana drops a layer whose data view it cannot find)
    layer_refs = {r["name"] for r in attrs["references"]}
    assert {f"indexpattern-datasource-layer-{lid}" for lid in lens_layers(p)} == layer_refs
    dashboard = next(o for o in kib if o["id"] == "shipper-connector-health")
    names = {r["name"] for r in dashboard["references"]}
    assert {f"{p['panelIndex']}:{n}" for n in layer_refs} <= names


def test_opensearch_dashboards_perf_panels_are_lines_with_a_900_s_threshold_line(
    osd: list[dict[str, Any]],
) -> None:
    o, vis = osd_vis(osd, TIMES_TITLE)
    assert vis["type"] == "line" and vis["params"]["type"] == "line"
    metrics = [a for a in vis["aggs"] if a["schema"] == "metric"]
    assert [(a["type"], a["params"]["field"]) for a in metrics] == [("avg", f) for f in TIMES]
    assert [s["data"]["id"] for s in vis["params"]["seriesParams"]] == [a["id"] for a in metrics]
    assert {s["type"] for s in vis["params"]["seriesParams"]} == {"line"}
    buckets = {a["schema"]: a for a in vis["aggs"] if a["schema"] != "metric"}
    assert buckets["segment"]["type"] == "date_histogram"
    assert buckets["group"]["params"]["field"] == "host.hostname"
    assert vis["params"]["thresholdLine"]["show"] is False
    assert o["references"][0]["id"] == "shipper-metrics-rms_connector.perf"

    o, vis = osd_vis(osd, SINCE_TITLE)
    (metric,) = [a for a in vis["aggs"] if a["schema"] == "metric"]
    assert (metric["type"], metric["params"]["field"]) == ("max", SINCE)
    line = vis["params"]["thresholdLine"]
    assert line["show"] is True and line["value"] == 900
    assert line["style"] in ("full", "dashed", "dot-dashed") and line["width"] > 0
    dashboard = next(x for x in osd if x["id"] == "shipper-connector-health")
    assert ("visualization", o["id"]) in {(r["type"], r["id"]) for r in dashboard["references"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chart": "table", "fields": [{"field": "host.name"}]}, "'metrics'.*time charts"),
        ({"series": "bars"}, "threshold needs chart time, series line"),
        ({"threshold": {"value": "fifteen minutes"}}, "threshold value must be a number"),
    ],
)
def test_a_perf_panel_described_wrongly_is_refused_naming_it(
    change: dict[str, Any], message: str
) -> None:
    spec = saved_objects.load_source()
    health = next(d for d in spec["dashboards"] if d["id"] == "shipper-connector-health")
    times = next(p for p in health["panels"] if p.get("id") == "shipper-connector-perf-times")
    since = next(p for p in health["panels"] if p.get("id") == "shipper-connector-policy-age")
    target = times if "chart" in change else since
    target.update(change)
    with pytest.raises(ValueError, match=f"{target['id']}.*{message}"):
        saved_objects.build(spec)


# the panels' own aggregations on the engine


def typeperf_example() -> tuple[list[dict[str, Any]], dict[str, dict[str, list[float]]]]:
    """The shipped example log through the real decoder, and what the test reads in it
    itself: per UTC minute, each counter's samples (the header's bias is -60: UTC = local - 1h)."""
    import csv
    import datetime as dt

    import orjson

    from shipper.sources.perfcsv import PERF_CSV

    path = Path(__file__).resolve().parents[3] / "examples" / "perf" / "rmscon01_typeperf.csv"
    docs: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        for chunk in PERF_CSV.chunks(f, str(path), 0, "", True, {}):
            out = PERF_CSV.decode(chunk)
            assert out.refused is None and not out.quarantined
            docs += [orjson.loads(d) for d in out.docs]
    by_name = {
        "Time since last authorization policy update": SINCE,
        "Average Connector Processing Time": TIMES[0],
        "Average Service Response Time": TIMES[1],
        "Average Connector Response Time": TIMES[2],
    }
    samples: dict[str, dict[str, list[float]]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    for row in rows[1:]:
        local = dt.datetime.strptime(row[0], "%m/%d/%Y %H:%M:%S.%f")
        minute = (local - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:00.000Z")
        for head, cell in zip(rows[0][1:], row[1:], strict=True):
            field = next((f for k, f in by_name.items() if head.endswith(k)), None)
            if field and cell.strip():
                samples.setdefault(field, {}).setdefault(minute, []).append(float(cell))
    return docs, samples


def nest(buckets: list[tuple[str, dict[str, Any]]], metrics: dict[str, Any]) -> dict[str, Any]:
    """Bucket aggregations nested in the given order, the metrics innermost."""
    aggs = metrics
    for name, body in reversed(buckets):
        aggs = {name: {**body, "aggs": aggs}}
    return aggs


def osd_request(vis: dict[str, Any]) -> dict[str, Any]:
    """The aggregation a classic line chart asks for (its date_histogram's "auto" interval as
    1m, what it picks for a few minutes of data)."""
    buckets, metrics = [], {}
    for agg in vis["aggs"]:
        if agg["schema"] == "metric":
            metrics[agg["id"]] = {agg["type"]: {"field": agg["params"]["field"]}}
        elif agg["type"] == "date_histogram":
            body = {"field": agg["params"]["field"], "fixed_interval": "1m"}
            buckets.append((agg["id"], {"date_histogram": body}))
        else:
            terms = {"field": agg["params"]["field"], "size": agg["params"]["size"]}
            buckets.append((agg["id"], {"terms": terms}))
    return nest(buckets, metrics)


def lens_request(p: dict[str, Any]) -> dict[str, Any]:
    """The same from a Lens panel's data layer: bucket columns in columnOrder, metrics inside."""
    ops = {"average": "avg", "max": "max", "min": "min", "sum": "sum"}
    (layer,) = [
        layer
        for layer in lens_layers(p).values()
        if not any(c.get("isStaticValue") for c in layer["columns"].values())
    ]
    buckets, metrics = [], {}
    for cid in layer["columnOrder"]:
        c = layer["columns"][cid]
        if c["operationType"] == "date_histogram":
            buckets.append(
                (cid, {"date_histogram": {"field": c["sourceField"], "fixed_interval": "1m"}})
            )
        elif c["operationType"] == "terms":
            terms = {"field": c["sourceField"], "size": c["params"]["size"]}
            buckets.append((cid, {"terms": terms}))
        else:
            metrics[cid] = {ops[c["operationType"]]: {"field": c["sourceField"]}}
    return nest(buckets, metrics)


def series(reply: dict[str, Any], request: dict[str, Any]) -> dict[tuple[str, ...], float | None]:
    """{(terms keys..., time bucket, metric field): value} of a nested reply, whichever way
    the product nests its buckets (OpenSearch Dashboards: time then host; Lens: host first)."""
    out: dict[tuple[str, ...], float | None] = {}

    def walk(node: dict[str, Any], req: dict[str, Any], terms: tuple[str, ...], t: str) -> None:
        for name, body in req.items():
            if "terms" in body:
                for b in node[name]["buckets"]:
                    walk(b, body["aggs"], (*terms, str(b["key"])), t)
            elif "date_histogram" in body:
                for b in node[name]["buckets"]:
                    walk(b, body["aggs"], terms, b["key_as_string"])
            else:
                field = next(iter(body.values()))["field"]
                out[(*terms, t, field)] = node[name]["value"]

    walk(reply["aggregations"], request, (), "")
    return out


@pytest.mark.integration
def test_perf_panels_on_the_engine_chart_the_example_typeperf_log(
    engine_url: str, tmp_path: Path, kib: list[dict[str, Any]], osd: list[dict[str, Any]]
) -> None:
    """examples/perf/rmscon01_typeperf.csv decoded and shipped to the engine; each perf panel's
    aggregation, as OpenSearch Dashboards and as Kibana's Lens would ask for it, returns per
    host and minute the averages (maxima) the test computes from the file itself."""
    from shipper.outputs.elasticsearch.output import BulkOutput

    from .events import to_batch

    docs, samples = typeperf_example()
    s = ElasticsearchOutput(type="opensearch", hosts=[engine_url], index="shipper-{dataset}")
    assert setup.install(s, kibana=False).ok
    assert BulkOutput(s, tmp_path).send(to_batch(docs)).delivered == len(docs)
    requests.post(f"{engine_url}/shipper-*/_refresh", timeout=10)
    views = {o["id"]: o["attributes"]["title"] for o in objects_of(kibana.KIBANA, index=s.index)}
    index = views["shipper-metrics-rms_connector.perf"]

    for title, op in ((TIMES_TITLE, lambda v: sum(v) / len(v)), (SINCE_TITLE, max)):
        o, vis = osd_vis(osd, title)
        query = json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]
        results = []
        for request in (osd_request(vis), lens_request(panel(kib, title))):
            body = {"size": 0, "aggs": request}
            if query["query"]:
                body["query"] = {"query_string": {"query": query["query"]}}
            r = requests.post(f"{engine_url}/{index}/_search", json=body, timeout=10)
            r.raise_for_status()
            results.append(series(r.json(), request))
        from_osd, from_lens = results
        assert from_osd == from_lens, title
        fields = {k[-1] for k in from_osd}
        expected = {
            ("rmscon01", minute, field): pytest.approx(op(values))
            for field in fields
            for minute, values in samples[field].items()
        }
        assert from_osd == expected, title
        assert len(from_osd) == 3 * len(fields)  # three minutes of samples, every value a number
