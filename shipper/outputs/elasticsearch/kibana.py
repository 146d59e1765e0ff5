"""The saved objects ``shipper setup`` imports: the Kibana 8 set or the OpenSearch Dashboards set.

Two sets, because the two products parted at 7.10: Kibana 8 dashboards hold Lens panels by
value and refuse nothing older, while OpenSearch Dashboards knows no migration past 7.10
(index patterns stop at 7.6.0) and refuses Kibana 8 objects outright. ``setup`` picks the set
by the output's ``type`` (``opensearch`` -> ``mappings/opensearch_dashboards/``, otherwise
``mappings/kibana/``). Both are generated from one description, ``mappings/kibana/objects.yaml``,
by ``python -m shipper.outputs.elasticsearch.saved_objects``, and a test fails when a committed
file differs from what it would generate. To add a panel, add an entry to a dashboard's
``panels`` in ``objects.yaml`` (chart, data view, fields, grid position) and regenerate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from shipper.mappings import mappings_dir
from shipper.outputs.elasticsearch.config import ElasticsearchOutput

__all__ = ["FILES", "KIBANA", "OPENSEARCH_DASHBOARDS", "object_set", "saved_objects", "set_dir"]

KIBANA = "Kibana 8"
OPENSEARCH_DASHBOARDS = "OpenSearch Dashboards"

#: the NDJSON files of each set, data views first
FILES = (
    "data_views.ndjson",
    "searches.ndjson",
    "forensics.ndjson",
    "dashboard_rms_usage.ndjson",
    "dashboard_connector_health.ndjson",
)

_DIRS = {KIBANA: "kibana", OPENSEARCH_DASHBOARDS: "opensearch_dashboards"}
#: a data view's id names its dataset (``shipper-logs-<dataset>``, ``shipper-metrics-<dataset>``)
_DATA_VIEW_ID = re.compile(r"shipper-(?:logs|metrics)-(?P<dataset>.+)")


def object_set(settings: ElasticsearchOutput) -> str:
    """Which set the output's dashboards take: the output type names the engine."""
    return OPENSEARCH_DASHBOARDS if settings.type == "opensearch" else KIBANA


def set_dir(which: str) -> Path:
    return mappings_dir() / _DIRS[which]


def saved_objects(
    settings: ElasticsearchOutput, index_pattern: Callable[[ElasticsearchOutput, str], str]
) -> bytes:
    """One NDJSON body of the set for this output, data view titles where documents go.

    ``index_pattern(settings, dataset)`` is the pattern of a dataset's indices; ``setup``
    passes it in, as it owns the naming rules of indices and data streams.
    """
    lines: list[bytes] = []
    folder = set_dir(object_set(settings))
    for name in FILES:
        path = folder / name
        if not path.exists():
            continue
        for raw in path.read_text(encoding="utf-8").splitlines():
            if not raw.strip():
                continue
            obj = json.loads(raw)
            if obj["type"] == "index-pattern" and settings.index is not None:
                m = _DATA_VIEW_ID.fullmatch(obj["id"])
                if m is None:
                    raise ValueError(f"{path}: data view id {obj['id']!r} names no dataset")
                obj["attributes"]["title"] = index_pattern(settings, m["dataset"])
            lines.append(json.dumps(obj, ensure_ascii=False).encode())
    return b"\n".join(lines) + b"\n"
