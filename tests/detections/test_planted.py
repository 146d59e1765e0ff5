"""Every shipped detection fires on its planted case and stays quiet on the background.

The corpus (``planted.py``) is shipped as a user ships it: ``shipper setup`` (templates) and
``shipper run --once`` into osmem-server, an in-memory OpenSearch-compatible engine on
loopback, with classic daily indices (osmem has no data streams). Then each rule of
``mappings/detections/elastic_rules.ndjson`` (generated from the Sigma rules; see
``test_rules.py``) is run the way Kibana runs it, as far as the engine allows:

- ``query`` rules: their Lucene query, as a ``query_string`` search;
- ``threshold`` rules: their Lucene query with the aggregation the rule specifies (terms on
  ``threshold.field``, at least ``threshold.value`` events, and ``cardinality`` of the
  field named in ``threshold.cardinality``), over windows as long as the rule's look-back
  (``from``) -- two passes, the second shifted by half a window, standing in for the rule's
  runs every few minutes;
- ``esql`` rules: osmem has no ES|QL (nor EQL: both answer "no handler"), so the rule's query
  text is parsed with Elasticsearch's own grammar and run by ``esql.py`` on every document of
  its FROM pattern, at each scheduled run (every ``interval``, over its look-back, with
  ``NOW()`` at that run): the rule's WHERE, EVAL, STATS and functions decide, not a copy of
  its logic.

The working-hours and GeoIP enrichment the rules read (``azure_rms.after_hours``,
``source.geo.country_iso_code``) is the normaliser's, configured in the input as a user does:
working hours Monday-Friday 08:00-18:00 UTC, and a tiny GeoIP database built here that knows
two networks.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from shipper.detections import elastic_rules

from . import planted

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not planted.GEN.exists(), reason="../shared/bench/gen_rms.py is absent"),
]

INDEX = "shipper-{dataset}-%{+yyyy.MM.dd}"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    osmem = pytest.importorskip("osmem_server", reason="pip install osmem-server")
    try:
        server = osmem.OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    except osmem.OsmemError as e:
        pytest.skip(f"osmem-server cannot start here: {e}")
    yield server
    server.close()


def _shipper(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(planted.REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _geoip_database(path: Path) -> Path:
    """A tiny MaxMind City database placing ``planted.GEO_NETWORKS`` in their countries."""
    mmdb_writer = pytest.importorskip("mmdb_writer", reason="mmdb-writer (test extra) is absent")
    from netaddr import IPSet

    writer = mmdb_writer.MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City"
    )
    for network, country in planted.GEO_NETWORKS.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": country}})
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def shipped(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, planted.Corpus]:
    root = tmp_path_factory.mktemp("detections")
    corpus = planted.build(root)
    rms_input: dict[str, Any] = {
        "type": "rms_usage",
        "paths": [str(corpus.rms_dir / "*")],
        # the normaliser's enrichment, as a user configures it: the tenant works Monday to
        # Friday, 08:00-18:00 UTC (the defaults)
        "enrich": {
            "geoip_database": str(_geoip_database(root / "city.mmdb")),
            "working_hours": {"default": {"timezone": "UTC"}},
        },
    }
    cfg = {
        "data_dir": str(root / "data"),
        "inputs": [
            rms_input,
            {"type": "windows_events", "paths": [str(corpus.windows_dir / "*")]},
            {"type": "windows_perf", "paths": [str(corpus.perf_dir / "*")]},
        ],
        "outputs": [
            {"type": "ndjson", "path": str(root / "out" / "events.ndjson")},
            {"type": "opensearch", "hosts": [engine.url], "index": INDEX, "request_timeout": 30},
        ],
        "pipeline": {"workers": 1},
    }
    path = root / "shipper.yaml"
    path.write_text(json.dumps(cfg))
    checked = _shipper("check", str(path), cwd=root)
    assert checked.returncode == 0, checked.stderr
    for args in (("setup", str(path)), ("run", "--once", "--no-progress", str(path))):
        done = _shipper(*args, cwd=root)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    events = [json.loads(x) for x in (root / "out" / "events.ndjson").read_text().splitlines()]
    assert {e["event"]["id"] for e in events} >= corpus.planted_ids
    usage = [e for e in events if e["event"]["dataset"] == "azure_rms.usage"]
    assert all(isinstance(e["azure_rms"]["after_hours"], bool) for e in usage)
    roamer = [e for e in usage if e.get("user", {}).get("id") == "roamer@contoso.com"]
    assert {e["source"]["geo"]["country_iso_code"] for e in roamer} == {"DE", "BR"}
    requests.post(f"{engine.url}/shipper-*/_refresh", timeout=30)
    return engine.url, corpus


def _search(url: str, body: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{url}/shipper-*/_search", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _seconds(date_math: str) -> int:
    m = re.fullmatch(r"now-(\d+)([smhd])", date_math)
    assert m, date_math
    return int(m.group(1)) * UNITS[m.group(2)]


def fired_query(url: str, rule: dict[str, Any]) -> set[str]:
    """What a query rule alerts on: RMS event ids; connector events as 'host code HH:MM'."""
    body = {"size": 10000, "query": {"query_string": {"query": rule["query"]}}}
    out = set()
    for hit in _search(url, body)["hits"]["hits"]:
        e = hit["_source"]
        if e["event"]["dataset"] == "azure_rms.usage":
            out.add(e["event"]["id"])
        else:
            out.add(f"{e['host']['name']} {e['event']['code']} {e['@timestamp'][11:16]}")
    return out


def fired_threshold(url: str, rule: dict[str, Any]) -> set[str]:
    """The groups a threshold rule alerts on, over windows of its look-back."""
    th = rule["threshold"]
    (group,) = th["field"]
    window = _seconds(rule["from"])
    inner: dict[str, Any] = {"terms": {"field": group, "size": 10000, "min_doc_count": th["value"]}}
    for card in th.get("cardinality", []):
        inner["aggs"] = {"distinct": {"cardinality": {"field": card["field"]}}}
    out: set[str] = set()
    for offset in (0, window // 2):
        body = {
            "size": 0,
            "query": {"query_string": {"query": rule["query"]}},
            "aggs": {
                "windows": {
                    "date_histogram": {
                        "field": "@timestamp",
                        "fixed_interval": f"{window}s",
                        "offset": f"{offset}s",
                        "min_doc_count": 1,
                    },
                    "aggs": {"groups": inner},
                }
            },
        }
        for w in _search(url, body)["aggregations"]["windows"]["buckets"]:
            for b in w["groups"]["buckets"]:
                cards = th.get("cardinality", [])
                if all(b["distinct"]["value"] >= c["value"] for c in cards):
                    out.add(b["key"])
    return out


def _rows(url: str, pattern: str, types: dict[str, str]) -> list[dict[str, Any]]:
    """Every document of a rule's FROM pattern as an ES|QL row. The rules read the data
    streams ``logs-<dataset>-*``; here the same documents sit in ``shipper-<dataset>-*``."""
    from . import esql

    index = pattern.replace("logs-", "shipper-", 1)
    r = requests.post(
        f"{url}/{index}/_search",
        json={"size": 10000, "track_total_hits": True, "query": {"match_all": {}}},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits["hits"] and len(hits["hits"]) == hits["total"]["value"], index
    return [esql.typed_row(h["_source"], types) for h in hits["hits"]]


def esql_alerts(url: str, rule: dict[str, Any]) -> Iterator[tuple[dt.datetime, dict[str, Any]]]:
    """(run time, alert row) of an ES|QL rule: its query text, parsed by Elasticsearch's
    grammar and run by ``esql.py`` on the shipped documents, as Kibana schedules it -- every
    ``interval`` from the first document to ``planted.NOW``, each run seeing the documents
    between ``from`` and that run, with NOW() at that run."""
    pytest.importorskip("esql_parser", reason="pip install esql-parser")
    from tests.outputs.elasticsearch.test_setup import explicit_fields

    from . import esql

    types = explicit_fields()
    query = esql.compile_query(rule["query"], set(types))
    once, scheduled = query.split()  # leading WHERE/EVAL without NOW(): the same every run
    rows = once.run([r for p in query.indices for r in _rows(url, p, types)], planted.NOW)
    look_back = dt.timedelta(seconds=_seconds(rule["from"]))
    interval = dt.timedelta(seconds=UNITS[rule["interval"][-1]] * int(rule["interval"][:-1]))
    first = min(r["@timestamp"] for r in rows)
    now = esql.EPOCH + ((first - esql.EPOCH) // interval + 1) * interval
    while now <= planted.NOW:
        window = [r for r in rows if now - look_back <= r["@timestamp"] <= now]
        for alert in scheduled.run(window, now):
            yield now, alert
        now += interval


def fired_esql(url: str, rule: dict[str, Any]) -> set[str]:
    """The groups an ES|QL rule alerts on (see ``esql_alerts``). A row's group is its values
    of template fields (the STATS BY fields)."""
    from tests.outputs.elasticsearch.test_setup import explicit_fields

    types = explicit_fields()
    out: set[str] = set()
    for _, alert in esql_alerts(url, rule):
        (group,) = (v for k, v in alert.items() if k in types)
        out.add(group)
    return out


RULES = {r["rule_id"]: r for r in elastic_rules()}


@pytest.mark.parametrize("rule_id", sorted(RULES), ids=lambda i: RULES[i]["name"][:60])
def test_rule_fires_on_its_planted_case_and_nothing_else(
    shipped: tuple[str, planted.Corpus], rule_id: str
) -> None:
    url, corpus = shipped
    rule = RULES[rule_id]
    expected = set(corpus.expected[rule_id])
    if rule_id == planted.ADMIN:
        # the generator's own admin actions are admin actions too: the rule must catch
        # every one of them (counted from the raw files), and nothing else
        background = planted.background_admin_ids(corpus.rms_dir)
        assert background, "the background should contain admin actions"
        expected |= background
    fired = {
        "query": fired_query,
        "threshold": fired_threshold,
        "esql": fired_esql,
    }[rule["type"]](url, rule)
    assert fired == expected


def test_every_rule_has_a_planted_case() -> None:
    corpus = planted.Corpus(Path("."), Path("."))
    planted._plant_usage(corpus, __import__("random").Random(1))
    planted._connector(corpus)
    planted._perf(corpus)
    assert set(corpus.expected) == set(RULES)


def test_background_alone_would_raise_nothing_but_admin_actions(
    shipped: tuple[str, planted.Corpus],
) -> None:
    """The same rules over the background only (planted events excluded by id)."""
    url, corpus = shipped
    planted_ids = sorted(corpus.planted_ids)
    exclude = " OR ".join(f'"{i}"' for i in planted_ids)
    loud = {}
    for rule in RULES.values():
        if rule["type"] == "esql" or rule["index"] != ["logs-azure_rms.usage-*"]:
            continue  # connector background is checked by exact expectations above
        quiet = dict(rule, query=f"({rule['query']}) AND NOT event.id:({exclude})")
        fired = (fired_query if rule["type"] == "query" else fired_threshold)(url, quiet)
        if fired:
            loud[rule["name"]] = len(fired)
    assert set(loud) == {RULES[planted.ADMIN]["name"]}, loud


def _saved_search(search_id: str) -> str:
    from shipper.mappings import mappings_dir

    for line in (mappings_dir() / "kibana" / "forensics.ndjson").read_text().splitlines():
        obj = json.loads(line)
        if obj["id"] == search_id:
            source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert source["query"]["language"] == "lucene"
            return source["query"]["query"]
    raise AssertionError(search_id)


def _forensic(url: str, search_id: str, filter_: str) -> list[dict[str, Any]]:
    query = f"({_saved_search(search_id)}) AND {filter_}"
    body = {"size": 1000, "query": {"query_string": {"query": query}}}
    return [h["_source"] for h in _search(url, body)["hits"]["hits"]]


def test_forensics_who_opened_document_x(shipped: tuple[str, planted.Corpus]) -> None:
    url, _ = shipped
    by_id = _forensic(
        url, "shipper-rms-forensics-document", f'azure_rms.content_id:"{planted.LEAKED_DOC}"'
    )
    by_name = _forensic(
        url, "shipper-rms-forensics-document", 'file.name:"Merger Plan (final).docx"'
    )
    who = {e["user"]["id"] for e in by_id}
    assert who == {f"outsider{i}@fabrikam.com" for i in range(6)}
    assert {e["event"]["id"] for e in by_name} == {e["event"]["id"] for e in by_id}
    assert {e["event"]["outcome"] for e in by_id} == {"failure"}  # refused attempts count too


def test_forensics_what_did_user_y_open(shipped: tuple[str, planted.Corpus]) -> None:
    url, _ = shipped
    opened = _forensic(url, "shipper-rms-forensics-user", 'user.id:"collector@contoso.com"')
    assert len({e["azure_rms"]["content_id"] for e in opened}) == 30
    assert {e["event"]["action"] for e in opened} == {"AcquireLicense"}


def test_after_hours_rule_without_group_by_is_tenant_wide(
    shipped: tuple[str, planted.Corpus],
) -> None:
    """The README's tenant-wide variant (the Sigma correlation without its ``group-by``,
    regenerated) is valid ES|QL and compares the tenant's after-hours openings in the last
    hour with its own busiest after-hours hour of the look-back: its alerts carry no user,
    and count more than any one user opens in an hour (25 at most in the corpus). On this
    corpus it fires on the first morning's rise before 08:00 (no history yet), not on one
    user's night: a different question from the per-user rule's."""
    pytest.importorskip("sigma", reason="pysigma (test extra) is absent")
    pytest.importorskip("esql_parser", reason="pip install esql-parser")
    from shipper.detections import compile_detections, generate_elastic_rules

    from . import esql

    after = next(d for d in compile_detections() if d.id == planted.AFTER_HOURS)
    after.group_by = []
    (rule,) = generate_elastic_rules([after])
    assert "user.id" not in rule["query"]
    _, errors = esql.parse(rule["query"])
    assert not errors, errors
    url, _ = shipped
    fired = list(esql_alerts(url, rule))
    assert fired
    assert all(set(a) == {"in_window", "usual"} for _, a in fired)
    assert all(a["in_window"] >= 20 and a["in_window"] >= 2 * a["usual"] for _, a in fired)
    assert max(a["in_window"] for _, a in fired) > 25
    assert {t.date() for t, _ in fired} == {dt.date(2024, 3, 4)}
