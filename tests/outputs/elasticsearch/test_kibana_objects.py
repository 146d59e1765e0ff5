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
    assert lens_panels == 10


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
                    if col["sourceField"] != "___records___":
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
        assert "shipper-rms_connector.events-*" in titles and len(titles) == 4, which


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
    assert event["host"]["name"] == "RMSCON01.contoso.com" != value  # not the connector itself


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
