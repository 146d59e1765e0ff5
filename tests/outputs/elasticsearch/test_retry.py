"""The retry classifier against captured bulk replies (tests/fixtures/elasticsearch)."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from shipper.backoff import backoff
from shipper.outputs.elasticsearch.retry import Outcome, classify, classify_item

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "elasticsearch"
D, DUP, R, DL, F = (
    Outcome.DELIVERED,
    Outcome.DUPLICATE,
    Outcome.RETRY,
    Outcome.DEAD_LETTER,
    Outcome.FATAL,
)


def reply(name: str) -> object:
    return orjson.loads((FIXTURES / name).read_bytes())


@pytest.mark.parametrize(
    ("name", "count", "expected"),
    [
        ("all_created.json", 3, [D, D, D]),
        ("errors_false_no_items.json", 4, [D, D, D, D]),
        ("mixed_409_400_429.json", 5, [D, DUP, DL, R, R]),
        ("item_cluster_block.json", 2, [R, R]),
        ("item_security_403.json", 1, [F]),
        ("item_index_not_found.json", 1, [F]),
        ("osmem_data_streams_unsupported.json", 1, [F]),
        ("items_fewer_than_sent.json", 3, [F, F, F]),
    ],
)
def test_bulk_replies(name: str, count: int, expected: list[Outcome]) -> None:
    assert classify(200, reply(name), count).outcomes == expected


def test_mixed_reply_keeps_errors_for_the_dead_letter_file() -> None:
    verdict = classify(200, reply("mixed_409_400_429.json"), 5)
    assert verdict.statuses == [201, 409, 400, 429, 503]
    assert verdict.errors[2]["type"] == "document_parsing_exception"
    assert "es_rejected_execution_exception" in verdict.reason


@pytest.mark.parametrize(
    ("status", "name", "expected", "words"),
    [
        (401, "error_401.json", F, "authentication failed"),
        (403, "error_401.json", F, "not allowed"),
        (429, "error_429_circuit_breaker.json", R, "circuit_breaking_exception"),
        (400, "error_400_compat_header.json", F, "media_type_header_exception"),
        (502, None, R, "HTTP 502"),
        (503, None, R, "HTTP 503"),
        (504, None, R, "HTTP 504"),
        (404, None, F, "HTTP 404"),
        (413, None, Outcome.SPLIT, "too large"),
    ],
)
def test_whole_request_statuses(
    status: int, name: str | None, expected: Outcome, words: str
) -> None:
    body = reply(name) if name else "<html>bad gateway</html>"
    verdict = classify(status, body, 2)
    assert verdict.outcomes == [expected, expected]
    assert words in verdict.reason


def test_item_rules() -> None:
    assert classify_item(409, {"type": "version_conflict_engine_exception"}) is DUP
    assert classify_item(400, {"type": "mapper_parsing_exception"}) is DL
    assert classify_item(500, {"type": "some_bug"}) is R
    assert classify_item(None, None) is R
    assert classify_item(413, {"type": "too_large"}) is Outcome.SPLIT


def test_backoff_grows_caps_and_jitters() -> None:
    rng = random.Random(1)
    delays = [backoff(n, 0.5, 30.0, rng) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(d <= 30.0 for d in delays)
    assert delays[-1] >= 15.0
    assert len({round(d, 6) for d in delays}) == len(delays)
