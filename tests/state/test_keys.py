"""Dedupe keys: the chunk-at-a-time conversion must agree with the one-id-at-a-time rule."""

from __future__ import annotations

import uuid

from shipper.state import by_bucket, event_key, event_keys, search_buckets


def test_guids_of_any_case_give_the_same_keys_one_by_one_and_together():
    ids = [str(uuid.uuid4()) for _ in range(500)]
    ids[3] = ids[3].upper()
    keys = event_keys(ids)
    assert list(keys) == [event_key(i) for i in ids]
    assert event_key(ids[3]) == event_key(ids[3].lower())  # case does not make a new event


def test_32_hex_digit_ids_and_odd_ids_give_the_same_keys_together():
    hexes = [uuid.uuid4().hex for _ in range(50)]
    assert list(event_keys(hexes)) == [event_key(i) for i in hexes]
    odd = [
        str(uuid.uuid4()),
        "not-a-guid",
        "0123456789abcdef0123456789abcdeg",  # 32 characters, one not hex
        "0123-4567-89ab-cdef-0123-4567-89ab-cdef",  # hex, dashes in other places
        "ünïcode-id",
        "",
    ]
    assert list(event_keys(odd)) == [event_key(i) for i in odd]


def test_ids_that_are_not_hex_are_hashed_apart_and_guids_keep_their_bits():
    a, b = event_key("id-1"), event_key("id-2")
    assert a != b
    g = "00000000-0000-0000-8000-000000000001"
    assert event_key(g) == (0, -(1 << 63) + 1)  # high bit set: a negative signed half
    assert len(event_keys([])) == 0


def test_keys_are_grouped_by_their_events_hour_or_day():
    ids = [str(uuid.uuid4()) for _ in range(6)]
    stamps = [
        "2024-03-05T10:00:00.000Z",
        "2024-03-05T10:59:59.000Z",
        "2024-03-05T11:00:00.000Z",
        "2024-03-05T10:30:00.000Z",  # out of order: back to the first hour
        "2024-03-06T00:00:00.000Z",
        "2024-03-06T00:00:01.000Z",
    ]
    keys = event_keys(ids)
    hours = by_bucket(keys, stamps, exact=True)
    assert {b: len(k) for b, k in hours.items()} == {
        "2024-03-05T10": 3,
        "2024-03-05T11": 1,
        "2024-03-06T00": 2,
    }
    assert list(hours["2024-03-05T10"]) == [event_key(ids[i]) for i in (0, 1, 3)]
    days = by_bucket(keys, stamps, exact=False)
    assert {b: len(k) for b, k in days.items()} == {"2024-03-05": 4, "2024-03-06": 2}
    one_hour = by_bucket(keys, stamps[:1] * 6, exact=True)
    assert list(one_hour) == ["2024-03-05T10"] and list(one_hour["2024-03-05T10"]) == list(keys)


def test_inexact_times_are_looked_up_a_day_either_side():
    assert search_buckets({"2024-03-05T10"}, exact=True) == {"2024-03-05T10"}
    assert search_buckets({"2024-03-01"}, exact=False) == {"2024-02-29", "2024-03-01", "2024-03-02"}
    assert search_buckets({""}, exact=False) == {""}
