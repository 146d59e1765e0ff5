"""The bulk encoder, checked on the bytes it writes."""

from __future__ import annotations

import orjson
import pytest

from shipper.outputs.base import EventBatch
from shipper.outputs.elasticsearch.encode import BulkEncoder, data_stream_name, index_resolver


def batch(n: int, dataset: str = "azure_rms.usage") -> EventBatch:
    b = EventBatch()
    for i in range(n):
        b.ids.append(f"id-{i}")
        b.datasets.append(dataset)
        b.docs.append(orjson.dumps({"n": i, "message": "x" * 50}))
        b.timestamps.append(f"2024-05-0{1 + i % 2}T10:00:00.000Z")
    return b


def lines(body: bytes) -> list[dict]:
    assert body.endswith(b"\n")
    return [orjson.loads(x) for x in body.splitlines()]


def test_create_with_event_id_into_data_stream() -> None:
    enc = BulkEncoder(None, "default", 100, 10**6)
    [chunk] = list(enc.chunks(batch(3)))
    parsed = lines(chunk.body)
    assert parsed[0] == {"create": {"_index": "logs-azure_rms.usage-default", "_id": "id-0"}}
    stream = {"type": "logs", "dataset": "azure_rms.usage", "namespace": "default"}
    assert parsed[1] == {"data_stream": stream, "n": 0, "message": "x" * 50}
    assert [p["create"]["_id"] for p in parsed[::2]] == ["id-0", "id-1", "id-2"]
    assert chunk.positions == [0, 1, 2]


def test_ids_are_json_escaped() -> None:
    b = batch(1)
    b.ids[0] = 'we"ird\\id'
    [chunk] = list(BulkEncoder(None, "prod", 10, 10**6).chunks(b))
    assert lines(chunk.body)[0]["create"]["_id"] == 'we"ird\\id'


def test_cut_by_count_and_bytes() -> None:
    by_count = list(BulkEncoder(None, "default", 2, 10**6).chunks(batch(5)))
    assert [c.positions for c in by_count] == [[0, 1], [2, 3], [4]]
    one = len(next(BulkEncoder(None, "default", 1, 10**6).chunks(batch(1))).body)
    by_bytes = list(BulkEncoder(None, "default", 100, 2 * one + 10).chunks(batch(5)))
    assert [len(c.positions) for c in by_bytes] == [2, 2, 1]
    assert all(len(c.body) <= 2 * one + 10 for c in by_bytes)


def test_only_the_given_positions() -> None:
    chunks = list(BulkEncoder(None, "default", 100, 10**6).chunks(batch(5), [1, 4]))
    assert chunks[0].positions == [1, 4]
    assert [p["create"]["_id"] for p in lines(chunks[0].body)[::2]] == ["id-1", "id-4"]


def test_index_from_event_time_not_arrival_time() -> None:
    enc = BulkEncoder("shipper-{dataset}-%{+yyyy.MM.dd}", "default", 100, 10**6)
    [chunk] = list(enc.chunks(batch(2)))
    names = [p["create"]["_index"] for p in lines(chunk.body)[::2]]
    assert names == ["shipper-azure_rms.usage-2024.05.01", "shipper-azure_rms.usage-2024.05.02"]


def test_names() -> None:
    assert data_stream_name("windows.events", "prod") == "logs-windows.events-prod"
    assert data_stream_name("rms-connector.events", "x") == "logs-rms_connector.events-x"
    assert index_resolver("a-{namespace}-%{+yyyy}", "ns")("d", "2023-01-01") == "a-ns-2023"
    with pytest.raises(ValueError):
        index_resolver("a-%{+yyyy.ww}", "ns")
