"""The send loop with a fake transport: what is acknowledged, retried, dead-lettered, fatal."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shipper.errors import OutputFailed, RetryLater
from shipper.outputs.elasticsearch.config import ElasticsearchOutput
from shipper.outputs.elasticsearch.output import BulkOutput
from shipper.outputs.elasticsearch.transport import Reply

from .fakes import FakeTransport, down, items, make_batch, ok


def output(tmp_path: Path, transport: FakeTransport, **kw: object) -> BulkOutput:
    settings = ElasticsearchOutput(hosts=["http://127.0.0.1:1"], **kw)
    return BulkOutput(settings, tmp_path, transport=transport)


def test_all_delivered_in_requests_bounded_by_count(tmp_path: Path) -> None:
    t = FakeTransport(ok)
    out = output(tmp_path, t, bulk_max_docs=4, max_in_flight=3)
    ack = out.send(make_batch(10))
    assert (ack.delivered, ack.duplicates, ack.dead_lettered) == (10, 0, 0)
    assert sorted(len(r) for r in t.requests) == [2, 4, 4]
    out.close()
    assert t.closed


def test_resend_counts_duplicates_not_errors(tmp_path: Path) -> None:
    t = FakeTransport(lambda ids: Reply(200, items(*[409] * len(ids))))
    out = output(tmp_path, t)
    ack = out.send(make_batch(3))
    assert (ack.delivered, ack.duplicates, ack.dead_lettered) == (0, 3, 0)


def test_partial_failure_retries_only_the_retryable_items(tmp_path: Path) -> None:
    t = FakeTransport(
        lambda ids: Reply(200, items(201, 409, 400, 429, 503)),
        ok,
    )
    out = output(tmp_path, t)
    batch = make_batch(5)
    with pytest.raises(RetryLater, match="2 documents not accepted yet"):
        out.send(batch)  # no sleeping here: the pipeline waits, then hands the batch back
    ack = out.send(batch)
    assert t.requests == [["e0", "e1", "e2", "e3", "e4"], ["e3", "e4"]]
    assert (ack.delivered, ack.duplicates, ack.dead_lettered) == (3, 1, 1)
    [line] = (tmp_path / "dead_letter" / "elasticsearch.jsonl").read_bytes().splitlines()
    dead = orjson.loads(line)
    assert dead["id"] == "e2" and dead["status"] == 400
    assert dead["error"]["type"] == "mapper_parsing_exception"
    assert dead["doc"] == {"@timestamp": "2024-05-01T00:00:00Z", "n": 2}
    assert dead["index"] == "logs-azure_rms.usage-default" and dead["time"]


def test_429_storm_hands_back_at_each_attempt_then_resumes(tmp_path: Path) -> None:
    storm = [lambda ids: Reply(429, {"error": {"type": "circuit_breaking_exception"}})] * 4
    t = FakeTransport(*storm, ok)
    out = output(tmp_path, t)
    batch = make_batch(3)
    for attempt in range(4):  # one request per send: the one retry loop is the pipeline's
        with pytest.raises(RetryLater, match="3 documents not accepted yet"):
            out.send(batch)
        assert len(t.requests) == attempt + 1
    ack = out.send(batch)  # the pipeline hands the same batch back
    assert ack.delivered == 3
    assert len(t.requests) == 5


def test_retry_rounds_is_accepted_with_a_warning_and_ignored(tmp_path: Path, caplog) -> None:
    t = FakeTransport(down, ok)
    with caplog.at_level("WARNING", logger="shipper"):
        out = output(tmp_path, t, retry_rounds=5)
    assert "retry_rounds is retired and ignored" in caplog.text
    with pytest.raises(RetryLater):
        out.send(make_batch(1))  # not five rounds first


def test_resumed_batch_does_not_resend_what_was_accepted(tmp_path: Path) -> None:
    t = FakeTransport(lambda ids: Reply(200, items(201, 503)), down, ok)
    out = output(tmp_path, t)
    batch = make_batch(2)
    for _ in range(2):
        with pytest.raises(RetryLater):
            out.send(batch)
    ack = out.send(batch)
    assert t.requests == [["e0", "e1"], ["e1"], ["e1"]]
    assert (ack.delivered, ack.duplicates) == (2, 0)


def test_connection_errors_are_retried(tmp_path: Path) -> None:
    t = FakeTransport(down, down, ok)
    out = output(tmp_path, t)
    batch = make_batch(2)
    for _ in range(2):
        with pytest.raises(RetryLater, match="cannot connect|not accepted"):
            out.send(batch)
    assert out.send(batch).delivered == 2


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_stops_the_output(tmp_path: Path, status: int) -> None:
    body = {"error": {"type": "security_exception", "reason": "missing authentication"}}
    t = FakeTransport(lambda ids: Reply(status, body))
    out = output(tmp_path, t)
    with pytest.raises(OutputFailed, match=f"HTTP {status}.*security_exception"):
        out.send(make_batch(2))


def test_unusable_target_is_fatal_not_dead_lettered(tmp_path: Path) -> None:
    t = FakeTransport(lambda ids: Reply(200, items(400, error="unsupported_operation_exception")))
    out = output(tmp_path, t)
    with pytest.raises(OutputFailed, match="unsupported_operation_exception"):
        out.send(make_batch(1))
    assert not (tmp_path / "dead_letter").exists()


def test_413_splits_requests(tmp_path: Path) -> None:
    def small_only(ids: list[str]) -> Reply:
        return Reply(413, "too large") if len(ids) > 2 else ok(ids)

    t = FakeTransport(small_only)
    out = output(tmp_path, t, bulk_max_docs=8, max_in_flight=1)
    ack = out.send(make_batch(8))  # splitting is not retrying: all in one send
    assert ack.delivered == 8
    assert [len(r) for r in t.requests] == [8, 4, 4, 2, 2, 2, 2]


def test_a_single_document_too_large_is_dead_lettered(tmp_path: Path) -> None:
    t = FakeTransport(lambda ids: Reply(413, "too large"))
    out = output(tmp_path, t)
    ack = out.send(make_batch(1))
    assert ack.dead_lettered == 1
