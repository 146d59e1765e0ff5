"""End to end against a real OpenSearch-compatible engine (osmem-server on loopback).

osmem has no data streams and no ISM, so these tests use a classic daily index
(``index: shipper-{dataset}-%{+yyyy.MM.dd}``); the data stream path is covered by what the
engine answers (a fatal, not a pile of dead letters) and by the mocked tests.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from shipper.errors import OutputFailed
from shipper.outputs.elasticsearch import setup
from shipper.outputs.elasticsearch.config import ElasticsearchOutput
from shipper.outputs.elasticsearch.output import BulkOutput

from .events import rms_events, to_batch, windows_events

pytestmark = pytest.mark.integration
INDEX = "shipper-{dataset}-%{+yyyy.MM.dd}"


def settings(url: str, **kw: Any) -> ElasticsearchOutput:
    return ElasticsearchOutput(type="opensearch", hosts=[url], index=INDEX, **kw)


def search(url: str, body: dict[str, Any], index: str = "shipper-*") -> dict[str, Any]:
    requests.post(f"{url}/{index}/_refresh", timeout=10)
    r = requests.post(f"{url}/{index}/_search", json={"size": 0, **body}, timeout=10)
    r.raise_for_status()
    return r.json()


def count(url: str, query: dict[str, Any] | None = None) -> int:
    return search(url, {"query": query or {"match_all": {}}})["hits"]["total"]["value"]


@pytest.fixture
def loaded(engine_url: str, tmp_path: Path) -> tuple[str, list[dict[str, Any]], BulkOutput]:
    s = settings(engine_url)
    report = setup.install(s)
    assert report.ok, report.steps
    events = rms_events()[0] + windows_events()
    out = BulkOutput(s, tmp_path)
    ack = out.send(to_batch(events))
    assert (ack.delivered, ack.duplicates, ack.dead_lettered) == (len(events), 0, 0)
    return engine_url, events, out


def test_setup_is_idempotent_and_status_sees_it(engine_url: str) -> None:
    s = settings(engine_url)
    assert not setup.status(s).ok
    first, second = setup.install(s), setup.install(s)
    assert first.ok and second.ok
    assert [x.what for x in first.steps] == [x.what for x in second.steps]
    st = setup.status(s)
    assert st.ok and st.version and all(st.templates.values()), st


def test_field_types(loaded: tuple[str, list[dict[str, Any]], BulkOutput]) -> None:
    url = loaded[0]
    mapping = requests.get(f"{url}/shipper-azure_rms.usage-*/_mapping", timeout=10).json()
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["@timestamp"]["type"] == "date"
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["user"]["properties"]["email"]["type"] == "keyword"
    assert props["related"]["properties"]["ip"]["type"] == "ip"
    rms = props["azure_rms"]["properties"]
    assert rms["admin_action"]["type"] == "boolean"
    assert rms["content_id"]["type"] == "keyword"
    win = requests.get(f"{url}/shipper-rms_connector.events-*/_mapping", timeout=10).json()
    wprops = next(iter(win.values()))["mappings"]["properties"]["winlog"]["properties"]
    assert wprops["event_data"]["properties"]["param1"]["type"] == "keyword"
    assert wprops["event_data"]["properties"]["Count"]["type"] == "keyword"
    assert wprops["process"]["properties"]["pid"]["type"] == "long"


def test_resending_adds_nothing(loaded: tuple[str, list[dict[str, Any]], BulkOutput]) -> None:
    url, events, out = loaded
    before = count(url)
    ack = out.send(to_batch(events))
    assert (ack.delivered, ack.duplicates) == (0, len(events))
    assert count(url) == before == len(events)


def test_analyst_queries(loaded: tuple[str, list[dict[str, Any]], BulkOutput]) -> None:
    url, events, _ = loaded
    rms = [e for e in events if e["event"]["dataset"] == "azure_rms.usage"]
    by_user = Counter(e["user"]["email"] for e in rms if e.get("user", {}).get("email"))
    reply = search(
        url, {"aggs": {"u": {"terms": {"field": "user.email", "size": 100}}}}, "shipper-azure*"
    )
    assert {b["key"]: b["doc_count"] for b in reply["aggregations"]["u"]["buckets"]} == by_user

    ten = ipaddress.ip_network("10.0.0.0/8")
    expected = sum(
        1 for e in rms if "source" in e and ipaddress.ip_address(e["source"]["ip"]) in ten
    )
    assert count(url, {"term": {"source.ip": "10.0.0.0/8"}}) == expected

    days = Counter(e["@timestamp"][:10] for e in events)
    reply = search(
        url,
        {"aggs": {"d": {"date_histogram": {"field": "@timestamp", "calendar_interval": "day"}}}},
    )
    got = {b["key_as_string"][:10]: b["doc_count"] for b in reply["aggregations"]["d"]["buckets"]}
    assert {k: v for k, v in got.items() if v} == days

    failures = sum(1 for e in rms if e["event"]["outcome"] == "failure")
    assert count(url, {"term": {"event.outcome": "failure"}}) == failures


def test_bad_document_is_dead_lettered_rest_lands(engine_url: str, tmp_path: Path) -> None:
    s = settings(engine_url)
    assert setup.install(s, kibana=False).ok
    events = windows_events()[:3]
    bad = orjson.loads(orjson.dumps(events[1]))
    bad["source"] = {"ip": "not-an-ip"}
    out = BulkOutput(s, tmp_path)
    ack = out.send(to_batch([events[0], bad, events[2]]))
    assert (ack.delivered, ack.dead_lettered) == (2, 1)
    [line] = (tmp_path / "dead_letter" / "opensearch.jsonl").read_bytes().splitlines()
    dead = orjson.loads(line)
    assert dead["id"] == bad["event"]["id"] and dead["status"] == 400
    assert dead["doc"]["source"]["ip"] == "not-an-ip"
    assert count(engine_url) == 2


def test_unknown_custom_field_still_indexes(engine_url: str, tmp_path: Path) -> None:
    s = settings(engine_url)
    assert setup.install(s, kibana=False).ok
    [event] = windows_events()[:1]
    event["azure_rms"] = {"brand_new_field": "x", "new_number": 7}
    event["ecma2host"] = {"trace": {"Callstack": "at X.Y()"}}
    assert BulkOutput(s, tmp_path).send(to_batch([event])).delivered == 1


def test_data_streams_unsupported_is_fatal_not_dead_letters(
    engine_url: str, tmp_path: Path
) -> None:
    s = ElasticsearchOutput(type="opensearch", hosts=[engine_url])
    report = setup.install(s, kibana=False)
    assert report.ok, report.steps
    assert [x.result for x in report.steps if x.what.startswith("ISM")] == ["skipped"]
    with pytest.raises(OutputFailed, match="data streams"):
        BulkOutput(s, tmp_path).send(to_batch(windows_events()[:2]))
    assert not (tmp_path / "dead_letter").exists()
