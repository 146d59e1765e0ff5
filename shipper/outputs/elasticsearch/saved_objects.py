"""Build the Kibana 8 and the OpenSearch Dashboards saved objects from ``objects.yaml``.

One description (``mappings/kibana/objects.yaml``: data views, saved searches, dashboards whose
panels name a chart, a data view, fields and a place on the grid) becomes two sets, because the
products' formats parted after 7.10:

- **Kibana 8** (as Elastic's integration packages ship them): each chart is a Lens panel held
  by value in the dashboard's ``panelsJSON`` (``formBased`` datasource, one layer per panel),
  option-list controls in ``controlGroupInput``, saved searches as panels by reference; every
  object carries ``coreMigrationVersion`` and ``typeMigrationVersion`` (so Kibana runs only the
  migrations after them) and ``managed: false``.
- **OpenSearch Dashboards**: the 7.10-era shapes it still migrates from: classic
  ``visualization`` objects (``visState``), an ``input_control_vis`` for the pickers, panels by
  reference, ``migrationVersion`` at most what it knows (index patterns 7.6.0).

A data view's type comes from the index templates: a ``metrics`` dataset (the performance
counters, ``metrics-rms_connector.perf-*``) gets ``shipper-metrics-<dataset>``, the rest
``shipper-logs-<dataset>``. A line chart's ``threshold`` becomes a Lens ``referenceLine`` layer
(a static value on its own ``formBased`` layer) in Kibana and the ``thresholdLine`` of the line
chart in OpenSearch Dashboards.

Queries are Lucene in both, so one text serves Kibana, OpenSearch Dashboards, the tests (which
run them against the engine) and the README. Ids are fixed (Lens layers and panel indexes are
UUIDs derived from the panel's name), so regenerating changes nothing and ``setup`` overwrites
in place. Run ``python -m shipper.outputs.elasticsearch.saved_objects`` after editing the YAML.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from shipper.mappings import mappings_dir

__all__ = ["SOURCE", "build", "field_types", "main", "render"]

SOURCE = "kibana/objects.yaml"

#: the Kibana release whose saved-object format the Kibana set is written in
CORE_VERSION = "8.8.0"
#: per type, the last migration at or before CORE_VERSION (Kibana migrates from there on)
TYPE_VERSIONS = {"index-pattern": "8.0.0", "search": "8.0.0", "dashboard": "8.7.0"}
#: OpenSearch Dashboards (forked from Kibana 7.10.2): the newest migration it has, per type
OSD_VERSIONS = {
    "index-pattern": "7.6.0",
    "search": "7.9.3",
    "visualization": "7.10.0",
    "dashboard": "7.9.3",
}

_NS = uuid.UUID("6f1c9a52-3f0e-4d47-9b1e-5a8f2c7d4e10")
_LENS_TYPES = {"keyword": "string", "ip": "ip", "boolean": "boolean", "date": "date"}
_NUMERIC = {"long", "integer", "short", "byte", "double", "float", "scaled_float"}
_LENS_OPS = {"average", "sum", "min", "max", "unique_count"}
_VIS_OPS = {
    "average": "avg",
    "sum": "sum",
    "min": "min",
    "max": "max",
    "unique_count": "cardinality",
}
_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
#: the colour of threshold lines (Elastic's "danger" red, what both products default to)
THRESHOLD_COLOR = "#E7664C"


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def stream_type(dataset: str) -> str:
    """``logs`` or ``metrics``: the data stream type the index templates give the dataset."""
    from shipper.outputs.elasticsearch import templates

    return templates.stream_types().get(dataset, "logs")


def data_view_id(dataset: str) -> str:
    """``shipper-<type>-<dataset>``; ``kibana.saved_objects`` reads the dataset back from it."""
    return f"shipper-{stream_type(dataset)}-{dataset}"


def data_view_title(dataset: str) -> str:
    """The data streams' pattern (``setup`` rewrites it when the output uses ``index:``)."""
    return f"{stream_type(dataset)}-{dataset}-*"


def field_types() -> dict[str, str]:
    """Mapped type of every explicit field in the component templates (``a.b.c`` -> type)."""
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            else:
                out[prefix + name] = spec.get("type", "object")

    from shipper.outputs.elasticsearch import setup
    from shipper.outputs.elasticsearch.config import ElasticsearchOutput

    for body in setup.component_templates(ElasticsearchOutput()).values():
        walk(body.get("template", {}).get("mappings", {}).get("properties", {}), "")
    return out


def _time_range(d: dict[str, Any]) -> dict[str, Any]:
    """A dashboard's stored time range (both products' attributes), when it has one."""
    if "time_from" not in d:
        return {}
    return {
        "timeFrom": d["time_from"],
        "timeTo": d.get("time_to", "now"),
        "refreshInterval": {"pause": True, "value": 0},
    }


# --- Kibana 8 ------------------------------------------------------------------------------------


def _kibana_meta(kind: str) -> dict[str, Any]:
    return {
        "coreMigrationVersion": CORE_VERSION,
        "typeMigrationVersion": TYPE_VERSIONS[kind],
        "managed": False,
    }


def _kibana_data_view(dataset: str, name: str) -> dict[str, Any]:
    return {
        "id": data_view_id(dataset),
        "type": "index-pattern",
        "attributes": {
            "title": data_view_title(dataset),
            "name": name,
            "timeFieldName": "@timestamp",
            "fields": "[]",
            "fieldFormatMap": "{}",
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
        },
        "references": [],
        **_kibana_meta("index-pattern"),
    }


def _search_source(query: str, *, index: bool) -> str:
    source: dict[str, Any] = {"query": {"query": query, "language": "lucene"}, "filter": []}
    if index:
        source["indexRefName"] = _INDEX_REF
        source["highlightAll"] = True
    return _dumps(source)


def _search(s: dict[str, Any], own: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """A saved search as both products store it, with ``own`` product-specific attributes
    and ``meta`` its migration fields."""
    return {
        "id": s["id"],
        "type": "search",
        "attributes": {
            "title": s["title"],
            "description": s.get("description", ""),
            "columns": list(s["columns"]),
            "sort": [list(x) for x in s.get("sort", [["@timestamp", "desc"]])],
            **own,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(s["query"], index=True)},
        },
        "references": [
            {"name": _INDEX_REF, "type": "index-pattern", "id": data_view_id(s["data_view"])}
        ],
        **meta,
    }


def _kibana_search(s: dict[str, Any]) -> dict[str, Any]:
    own = {"grid": {}, "hideChart": False, "isTextBasedQuery": False, "timeRestore": False}
    return _search(s, own, _kibana_meta("search"))


def _metric_column(metric: Any) -> dict[str, Any]:
    if metric in (None, "count"):
        return {
            "label": "Count of records",
            "dataType": "number",
            "operationType": "count",
            "isBucketed": False,
            "scale": "ratio",
            "sourceField": "___records___",
            "params": {"emptyAsNull": True},
        }
    op, field = metric["op"], metric["field"]
    if op not in _LENS_OPS:
        raise ValueError(f"{SOURCE}: metric op {op!r} is not one of {sorted(_LENS_OPS)}")
    column = {
        "label": metric.get("label") or f"{op.replace('_', ' ').capitalize()} of {field}",
        "dataType": "number",
        "operationType": op,
        "sourceField": field,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"emptyAsNull": True},
    }
    if metric.get("label"):
        column["customLabel"] = True
    return column


def _terms_column(spec: dict[str, Any], metric_id: str, types: dict[str, str]) -> dict[str, Any]:
    mapped = types.get(spec["field"], "keyword")
    data_type = "number" if mapped in _NUMERIC else _LENS_TYPES.get(mapped, "string")
    column: dict[str, Any] = {
        "label": spec.get("label") or f"Top values of {spec['field']}",
        "dataType": data_type,
        "operationType": "terms",
        "scale": "ordinal",
        "sourceField": spec["field"],
        "isBucketed": True,
        "params": {
            "size": int(spec.get("size", 10)),
            "orderBy": {"type": "column", "columnId": metric_id},
            "orderDirection": "desc",
            "otherBucket": False,
            "missingBucket": False,
            "parentFormat": {"id": "terms"},
            "include": [],
            "exclude": [],
            "includeIsRegex": False,
            "excludeIsRegex": False,
        },
    }
    if spec.get("label"):
        column["customLabel"] = True
    return column


def _metrics(panel: dict[str, Any]) -> list[Any]:
    """The panel's metrics: ``metrics`` (several lines on one time chart) or ``metric``."""
    key = panel["id"]
    if "metrics" in panel:
        if panel["chart"] != "time" or "metric" in panel or not panel["metrics"]:
            raise ValueError(
                f"{SOURCE}: panel {key!r}: 'metrics' (a non-empty list) is for time charts, "
                "instead of 'metric'"
            )
        return list(panel["metrics"])
    return [panel.get("metric")]


def _threshold(panel: dict[str, Any]) -> dict[str, Any] | None:
    """The panel's threshold line ``{value, label}``, checked: line time charts only."""
    threshold: dict[str, Any] | None = panel.get("threshold")
    if threshold is None:
        return None
    if panel["chart"] != "time" or panel.get("series") != "line":
        raise ValueError(
            f"{SOURCE}: panel {panel['id']!r}: a threshold needs chart time, series line"
        )
    if not isinstance(threshold.get("value"), int | float):
        raise ValueError(f"{SOURCE}: panel {panel['id']!r}: threshold value must be a number")
    return threshold


def _reference_layer(
    panel: dict[str, Any], threshold: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(layer id, lnsXY ``referenceLine`` layer, its formBased layer): a static value line."""
    key = panel["id"]
    layer = _uid(key, "reference-layer")
    column_id = _uid(key, "threshold")
    label = threshold.get("label") or str(threshold["value"])
    column = {
        "label": label,
        "dataType": "number",
        "operationType": "static_value",
        "isStaticValue": True,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"value": str(threshold["value"])},
        "references": [],
        "customLabel": True,
    }
    vis_layer = {
        "layerId": layer,
        "layerType": "referenceLine",
        "accessors": [column_id],
        "yConfig": [
            {
                "forAccessor": column_id,
                "axisMode": "left",
                "color": THRESHOLD_COLOR,
                "lineStyle": "dashed",
                "lineWidth": 2,
                "iconPosition": "auto",
                "textVisibility": True,
                "fill": "none",
            }
        ],
    }
    form_layer = {
        "columns": {column_id: column},
        "columnOrder": [column_id],
        "incompleteColumns": {},
        "sampling": 1,
    }
    return layer, vis_layer, form_layer


def _lens_state(
    panel: dict[str, Any], layer: str, types: dict[str, str]
) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]]]:
    """(visualizationType, visualization state, formBased layers by id) of one chart panel."""
    key = panel["id"]
    metrics = _metrics(panel)
    metric_ids = (
        [_uid(key, "metric")]
        if len(metrics) == 1
        else [_uid(key, "metric", str(n)) for n in range(len(metrics))]
    )
    metric_id = metric_ids[0]
    columns: dict[str, dict[str, Any]] = {
        mid: _metric_column(m) for mid, m in zip(metric_ids, metrics, strict=True)
    }
    fields = panel.get("fields") or []
    term_ids = [_uid(key, "terms", f["field"]) for f in fields]
    for cid, spec in zip(term_ids, fields, strict=True):
        columns[cid] = _terms_column(spec, metric_id, types)
    chart = panel["chart"]
    threshold = _threshold(panel)
    extra: dict[str, dict[str, Any]] = {}
    if chart == "time":
        date_id = _uid(key, "date")
        columns[date_id] = {
            "label": "@timestamp",
            "dataType": "date",
            "operationType": "date_histogram",
            "sourceField": "@timestamp",
            "isBucketed": True,
            "scale": "interval",
            "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False},
        }
        line = panel.get("series") == "line"
        series = "line" if line else "bar_stacked"
        xy_layer: dict[str, Any] = {
            "layerId": layer,
            "layerType": "data",
            "seriesType": series,
            "xAccessor": date_id,
            "accessors": metric_ids,
            "position": "top",
            "showGridlines": False,
        }
        if term_ids:
            xy_layer["splitAccessor"] = term_ids[0]
        vis = {
            "legend": {"isVisible": True, "position": "right"},
            "valueLabels": "hide",
            "fittingFunction": "Linear" if line else "None",
            "preferredSeriesType": series,
            "axisTitlesVisibilitySettings": {"x": False, "yLeft": True, "yRight": True},
            "layers": [xy_layer],
        }
        if panel.get("axis_title"):
            vis["yTitle"] = panel["axis_title"]
        if threshold is not None:
            ref_id, ref_layer, ref_form = _reference_layer(panel, threshold)
            vis["layers"].append(ref_layer)
            extra[ref_id] = ref_form
        order = [*term_ids[:1], date_id, *metric_ids]
        vis_type = "lnsXY"
    elif chart == "table":
        if not term_ids:
            raise ValueError(f"{SOURCE}: table panel {key!r} needs fields")
        order = [*term_ids, metric_id]
        vis = {
            "layerId": layer,
            "layerType": "data",
            "columns": [{"columnId": c, "isTransposed": False} for c in order],
        }
        vis_type = "lnsDatatable"
    elif chart == "donut":
        if not term_ids:
            raise ValueError(f"{SOURCE}: donut panel {key!r} needs a field")
        order = [term_ids[0], metric_id]
        vis = {
            "shape": "donut",
            "layers": [
                {
                    "layerId": layer,
                    "layerType": "data",
                    "primaryGroups": [term_ids[0]],
                    "metrics": [metric_id],
                    "numberDisplay": "percent",
                    "categoryDisplay": "default",
                    "legendDisplay": "default",
                    "nestedLegend": False,
                }
            ],
        }
        vis_type = "lnsPie"
    else:
        raise ValueError(f"{SOURCE}: panel {key!r}: chart {chart!r} is not time, table or donut")
    form_layer = {
        "columns": {c: columns[c] for c in order},
        "columnOrder": order,
        "incompleteColumns": {},
        "sampling": 1,
    }
    return vis_type, vis, {layer: form_layer, **extra}


def _kibana_dashboard(d: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    for p in d["panels"]:
        grid = dict(p["grid"])
        if "search" in p:
            index = _uid(d["id"], "search", p["search"])
            panels.append(
                {
                    "type": "search",
                    "version": CORE_VERSION,
                    "gridData": {**grid, "i": index},
                    "panelIndex": index,
                    "embeddableConfig": {"enhancements": {}},
                    "panelRefName": f"panel_{index}",
                }
            )
            refs.append({"name": f"{index}:panel_{index}", "type": "search", "id": p["search"]})
            continue
        index = _uid(d["id"], "panel", p["id"])
        layer = _uid(p["id"], "layer")
        vis_type, vis, form_layers = _lens_state(p, layer, types)
        dv = data_view_id(p["data_view"])
        # every formBased layer (a reference line's too) names its data view
        layer_refs = [f"indexpattern-datasource-layer-{lid}" for lid in form_layers]
        attributes = {
            "title": p["title"],
            "description": p.get("description", ""),
            "visualizationType": vis_type,
            "type": "lens",
            "references": [{"type": "index-pattern", "id": dv, "name": n} for n in layer_refs],
            "state": {
                "visualization": vis,
                "query": {"query": p.get("query", ""), "language": "lucene"},
                "filters": [],
                "datasourceStates": {"formBased": {"layers": form_layers}},
                "internalReferences": [],
                "adHocDataViews": {},
            },
        }
        panels.append(
            {
                "type": "lens",
                "version": CORE_VERSION,
                "gridData": {**grid, "i": index},
                "panelIndex": index,
                "title": p["title"],
                "embeddableConfig": {"attributes": attributes, "enhancements": {}},
            }
        )
        refs += [{"name": f"{index}:{n}", "type": "index-pattern", "id": dv} for n in layer_refs]
    attributes: dict[str, Any] = {
        "title": d["title"],
        "description": d.get("description", ""),
        "panelsJSON": _dumps(panels),
        "optionsJSON": _dumps(
            {
                "useMargins": True,
                "syncColors": False,
                "syncCursor": True,
                "syncTooltips": False,
                "hidePanelTitles": False,
            }
        ),
        "timeRestore": "time_from" in d,
        "version": 1,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source("", index=False)},
    }
    attributes.update(_time_range(d))
    if "controls" in d:
        controls: dict[str, Any] = {}
        dv = data_view_id(d["controls"]["data_view"])
        for order, c in enumerate(d["controls"]["fields"]):
            cid = _uid(d["id"], "control", c["field"])
            controls[cid] = {
                "order": order,
                "width": "medium",
                "grow": True,
                "type": "optionsListControl",
                "explicitInput": {
                    "id": cid,
                    "fieldName": c["field"],
                    "title": c["label"],
                    "selectedOptions": [],
                    "enhancements": {},
                },
            }
            refs.append(
                {
                    "name": f"controlGroup_{cid}:optionsListDataView",
                    "type": "index-pattern",
                    "id": dv,
                }
            )
        attributes["controlGroupInput"] = {
            "controlStyle": "oneLine",
            "chainingSystem": "HIERARCHICAL",
            "panelsJSON": _dumps(controls),
            "ignoreParentSettingsJSON": _dumps(
                {
                    "ignoreFilters": False,
                    "ignoreQuery": False,
                    "ignoreTimerange": False,
                    "ignoreValidations": False,
                }
            ),
        }
    return {
        "id": d["id"],
        "type": "dashboard",
        "attributes": attributes,
        "references": refs,
        **_kibana_meta("dashboard"),
    }


# --- OpenSearch Dashboards ----------------------------------------------------------------------


def _osd_meta(kind: str) -> dict[str, Any]:
    return {"migrationVersion": {kind: OSD_VERSIONS[kind]}}


def _osd_data_view(dataset: str) -> dict[str, Any]:
    return {
        "id": data_view_id(dataset),
        "type": "index-pattern",
        "attributes": {"title": data_view_title(dataset), "timeFieldName": "@timestamp"},
        "references": [],
        **_osd_meta("index-pattern"),
    }


def _osd_search(s: dict[str, Any]) -> dict[str, Any]:
    return _search(s, {"version": 1}, _osd_meta("search"))


def _agg_params(spec: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "field": spec["field"],
        "size": int(spec.get("size", 10)),
        "order": "desc",
        "orderBy": "1",
        "otherBucket": False,
        "missingBucket": False,
    }
    if spec.get("label"):
        params["customLabel"] = spec["label"]
    return params


def _osd_metric(metric: Any, agg_id: str) -> tuple[dict[str, Any], str]:
    """(metric agg, its label) of one metric spec, as a classic visualization holds it."""
    if metric in (None, "count"):
        return {"id": agg_id, "enabled": True, "type": "count", "schema": "metric", "params": {}}, (
            "Count"
        )
    label = metric.get("label") or f"{metric['op']} of {metric['field']}"
    agg_params: dict[str, Any] = {"field": metric["field"]}
    if metric.get("label"):
        agg_params["customLabel"] = metric["label"]
    agg = {
        "id": agg_id,
        "enabled": True,
        "type": _VIS_OPS[metric["op"]],
        "schema": "metric",
        "params": agg_params,
    }
    return agg, label


def _osd_visualization(p: dict[str, Any]) -> dict[str, Any]:
    metrics = _metrics(p)
    threshold = _threshold(p)
    aggs: list[dict[str, Any]] = []
    labels: list[str] = []
    for n, metric in enumerate(metrics, start=1):
        agg, label = _osd_metric(metric, str(n))
        aggs.append(agg)
        labels.append(label)
    label = labels[0]
    fields = p.get("fields") or []
    chart = p["chart"]
    if chart == "time":
        first_bucket = len(metrics) + 1
        aggs.append(
            {
                "id": str(first_bucket),
                "enabled": True,
                "type": "date_histogram",
                "schema": "segment",
                "params": {
                    "field": "@timestamp",
                    "interval": "auto",
                    "min_doc_count": 1,
                    "extended_bounds": {},
                },
            }
        )
        if fields:
            aggs.append(
                {
                    "id": str(first_bucket + 1),
                    "enabled": True,
                    "type": "terms",
                    "schema": "group",
                    "params": _agg_params(fields[0]),
                }
            )
        line = p.get("series") == "line"
        params: dict[str, Any] = {
            "type": "line" if line else "histogram",
            "addTooltip": True,
            "addLegend": True,
            "legendPosition": "right",
            "seriesParams": [
                {
                    "show": True,
                    "type": "line" if line else "histogram",
                    "mode": "normal" if line else "stacked",
                    "data": {"id": str(n), "label": text},
                    "valueAxis": "ValueAxis-1",
                    **({"interpolate": "linear", "drawLinesBetweenPoints": True} if line else {}),
                }
                for n, text in enumerate(labels, start=1)
            ],
            "categoryAxes": [
                {
                    "id": "CategoryAxis-1",
                    "type": "category",
                    "position": "bottom",
                    "show": True,
                    "labels": {"show": True},
                    "title": {},
                }
            ],
            "valueAxes": [
                {
                    "id": "ValueAxis-1",
                    "name": "LeftAxis-1",
                    "type": "value",
                    "position": "left",
                    "show": True,
                    "labels": {"show": True},
                    "title": {"text": p.get("axis_title") or label},
                    "scale": {"type": "linear", "mode": "normal"},
                }
            ],
            # the vislib threshold line (no label of its own: the panel title names it)
            "thresholdLine": {
                "show": threshold is not None,
                "value": threshold["value"] if threshold is not None else 0,
                "width": 2,
                "style": "dashed",
                "color": THRESHOLD_COLOR,
            },
        }
        vis_type = "line" if line else "histogram"
    elif chart == "table":
        for n, spec in enumerate(fields, start=2):
            aggs.append(
                {
                    "id": str(n),
                    "enabled": True,
                    "type": "terms",
                    "schema": "bucket",
                    "params": _agg_params(spec),
                }
            )
        params = {
            "perPage": 10,
            "showPartialRows": False,
            "showMetricsAtAllLevels": False,
            "showTotal": False,
            "totalFunc": "sum",
            "percentageCol": "",
        }
        vis_type = "table"
    else:  # donut (checked when the Kibana form was built)
        aggs.append(
            {
                "id": "2",
                "enabled": True,
                "type": "terms",
                "schema": "segment",
                "params": _agg_params(fields[0]),
            }
        )
        params = {
            "type": "pie",
            "addTooltip": True,
            "addLegend": True,
            "legendPosition": "right",
            "isDonut": True,
            "labels": {"show": False, "values": True, "last_level": True, "truncate": 100},
        }
        vis_type = "pie"
    vis_state = {"title": p["title"], "type": vis_type, "aggs": aggs, "params": params}
    return {
        "id": p["id"],
        "type": "visualization",
        "attributes": {
            "title": p["title"],
            "description": p.get("description", ""),
            "version": 1,
            "uiStateJSON": "{}",
            "visState": _dumps(vis_state),
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": _search_source(p.get("query", ""), index=True)
            },
        },
        "references": [
            {"name": _INDEX_REF, "type": "index-pattern", "id": data_view_id(p["data_view"])}
        ],
        **_osd_meta("visualization"),
    }


def _osd_controls(d: dict[str, Any]) -> dict[str, Any]:
    title = f"{d['title']}: pick a value"
    controls = []
    refs = []
    dv = data_view_id(d["controls"]["data_view"])
    for n, c in enumerate(d["controls"]["fields"]):
        ref = f"control_{n}_index_pattern"
        controls.append(
            {
                "id": str(n + 1),
                "fieldName": c["field"],
                "parent": "",
                "label": c["label"],
                "type": "list",
                "options": {
                    "type": "terms",
                    "multiselect": True,
                    "dynamicOptions": True,
                    "size": 10,
                    "order": "desc",
                },
                "indexPatternRefName": ref,
            }
        )
        refs.append({"name": ref, "type": "index-pattern", "id": dv})
    vis_state = {
        "title": title,
        "type": "input_control_vis",
        "params": {
            "controls": controls,
            "updateFiltersOnChange": True,
            "useTimeFilter": False,
            "pinFilters": False,
        },
        "aggs": [],
    }
    return {
        "id": f"{d['id']}-controls",
        "type": "visualization",
        "attributes": {
            "title": title,
            "description": "",
            "version": 1,
            "uiStateJSON": "{}",
            "visState": _dumps(vis_state),
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source("", index=False)},
        },
        "references": refs,
        **_osd_meta("visualization"),
    }


def _osd_dashboard(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard and the visualizations it references (controls first)."""
    objects: list[dict[str, Any]] = []
    panels: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []

    def add(kind: str, ref_id: str, grid: dict[str, Any]) -> None:
        n = len(panels)
        panels.append(
            {
                "panelIndex": str(n + 1),
                "gridData": {**grid, "i": str(n + 1)},
                "embeddableConfig": {},
                "panelRefName": f"panel_{n}",
            }
        )
        refs.append({"name": f"panel_{n}", "type": kind, "id": ref_id})

    if "controls" in d:
        controls = _osd_controls(d)
        objects.append(controls)
        add("visualization", controls["id"], {"x": 0, "y": 0, "w": 48, "h": 6})
    for p in d["panels"]:
        if "search" in p:
            add("search", p["search"], p["grid"])
        else:
            vis = _osd_visualization(p)
            objects.append(vis)
            add("visualization", vis["id"], p["grid"])
    attributes: dict[str, Any] = {
        "title": d["title"],
        "description": d.get("description", ""),
        "panelsJSON": _dumps(panels),
        "optionsJSON": _dumps({"useMargins": True, "hidePanelTitles": False}),
        "timeRestore": "time_from" in d,
        "version": 1,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source("", index=False)},
    }
    attributes.update(_time_range(d))
    objects.append(
        {
            "id": d["id"],
            "type": "dashboard",
            "attributes": attributes,
            "references": refs,
            **_osd_meta("dashboard"),
        }
    )
    return objects


# --- both ----------------------------------------------------------------------------------------


def load_source(path: Path | None = None) -> dict[str, Any]:
    with open(path or mappings_dir() / SOURCE, encoding="utf-8") as f:
        spec: dict[str, Any] = yaml.safe_load(f)
    return spec


def build(
    spec: dict[str, Any] | None = None, types: dict[str, str] | None = None
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{"kibana": {file: objects}, "opensearch_dashboards": {file: objects}}``."""
    spec = spec if spec is not None else load_source()
    types = types if types is not None else field_types()
    kib: dict[str, list[dict[str, Any]]] = {}
    osd: dict[str, list[dict[str, Any]]] = {}
    for dataset, name in spec["data_views"].items():
        kib.setdefault("data_views", []).append(_kibana_data_view(dataset, name))
        osd.setdefault("data_views", []).append(_osd_data_view(dataset))
    for s in spec.get("searches", []):
        kib.setdefault(s["file"], []).append(_kibana_search(s))
        osd.setdefault(s["file"], []).append(_osd_search(s))
    for d in spec.get("dashboards", []):
        kib.setdefault(d["file"], []).append(_kibana_dashboard(d, types))
        osd.setdefault(d["file"], []).extend(_osd_dashboard(d))
    return {"kibana": kib, "opensearch_dashboards": osd}


def render(objects: Iterable[dict[str, Any]]) -> str:
    """NDJSON as committed: one object per line, keys in the order they are built."""
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)


def main(argv: list[str] | None = None) -> int:
    """Write both sets under ``mappings/`` (or ``argv[0]``), one NDJSON file per ``file``."""
    root = Path(argv[0]) if argv else mappings_dir()
    for folder, files in build().items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, objects in files.items():
            (root / folder / f"{name}.ndjson").write_text(render(objects), encoding="utf-8")
            print(f"{folder}/{name}.ndjson: {len(objects)} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
