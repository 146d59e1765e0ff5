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
- the two ``esql`` rules: osmem has no ES|QL (nor EQL: both answer "no handler"), so the test
  takes the documents the Sigma rule's Lucene query selects, checks the ES|QL query says
  what the test relies on, and applies the same logic to them: the after-hours openings of
  the last hour against twice the user's busiest hour of the 14 days before (evaluated
  every 10 minutes across the corpus), and the latest 1004 per host over the last 24 h,
  older than 15 minutes. What this cannot show is that Kibana parses the ES|QL text.

The working-hours and GeoIP enrichment the rules read (``azure_rms.after_hours``,
``source.geo.country_iso_code``) is the normaliser's, configured in the input as a user does:
working hours Monday-Friday 08:00-18:00 UTC, and a tiny GeoIP database built here that knows
two networks. Until the ``rms_usage`` input's settings take ``enrich`` (``shipper check``
refuses it), the test sets those fields itself after shipping, with a bulk update.
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
        "inputs": [rms_input, {"type": "windows_events", "paths": [str(corpus.windows_dir / "*")]}],
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


def _sigma_query(rule_id: str) -> str:
    """The Sigma -> Lucene query of an ES|QL rule's base selection (osmem has no ES|QL)."""
    pytest.importorskip(
        "sigma.backends.elasticsearch", reason="pip install pysigma-backend-elasticsearch"
    )
    from shipper.detections import compile_detections

    return next(d.query for d in compile_detections() if d.id == rule_id)


def _times(url: str, query: str, group: str) -> list[tuple[str, dt.datetime]]:
    body = {
        "size": 10000,
        "query": {"query_string": {"query": query}},
        "_source": [group, "@timestamp"],
    }
    out = []
    for hit in _search(url, body)["hits"]["hits"]:
        e = hit["_source"]
        key: Any = e
        for part in group.split("."):
            key = key[part]
        out.append((key, dt.datetime.fromisoformat(e["@timestamp"].replace("Z", "+00:00"))))
    return out


def fired_absence(url: str, rule: dict[str, Any]) -> set[str]:
    """The ES|QL absence rule, evaluated at ``planted.NOW``: hosts whose latest 1004 is old."""
    q = rule["query"]
    assert "MAX(@timestamp) BY host.name" in q, q
    m = re.search(r"WHERE last_refresh < NOW\(\) - (\d+) minutes", q)
    assert m, q
    silence = dt.timedelta(minutes=int(m.group(1)))
    since = planted.NOW - dt.timedelta(seconds=_seconds(rule["from"]))
    last: dict[str, dt.datetime] = {}
    for host, t in _times(url, _sigma_query(rule["rule_id"]), "host.name"):
        if since <= t <= planted.NOW:
            last[host] = max(t, last.get(host, t))
    return {host for host, t in last.items() if t < planted.NOW - silence}


def fired_baseline(url: str, rule: dict[str, Any]) -> set[str]:
    """The ES|QL after-hours rule, run every 10 minutes over the corpus: the users with at
    least ``floor`` events in the last hour and ``factor`` times their busiest clock hour of
    the look-back before it."""
    q = rule["query"]
    m = re.search(r"WHERE in_window >= (\d+) AND in_window >= (\d+) \* usual", q)
    assert m and "NOW() - 1 hour" in q and "DATE_TRUNC(1 hour, @timestamp)" in q, q
    assert "usual = MAX(past) BY user.id" in q, q
    floor, factor = int(m.group(1)), int(m.group(2))
    history = dt.timedelta(seconds=_seconds(rule["from"]))
    hour = dt.timedelta(hours=1)
    events = _times(url, _sigma_query(rule["rule_id"]), "user.id")
    out = set()
    now = dt.datetime(2024, 3, 3, 12, tzinfo=dt.timezone.utc)
    while now <= planted.NOW:
        recent: dict[str, int] = {}
        past: dict[tuple[str, dt.datetime], int] = {}
        for user, t in events:
            if now - hour <= t <= now:
                recent[user] = recent.get(user, 0) + 1
            elif now - history <= t < now - hour:
                key = (user, t.replace(minute=0, second=0, microsecond=0))
                past[key] = past.get(key, 0) + 1
        for user, n in recent.items():
            usual = max((c for (u, _), c in past.items() if u == user), default=0)
            if n >= floor and n >= factor * usual:
                out.add(user)
        now += dt.timedelta(minutes=10)
    return out


def fired_esql(url: str, rule: dict[str, Any]) -> set[str]:
    if "last_refresh" in rule["query"]:
        return fired_absence(url, rule)
    return fired_baseline(url, rule)


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
