"""Counter samples become ECS metric documents; RMS connector counter names come from the table."""

from __future__ import annotations

import pytest
import yaml

from shipper.errors import RecordRejected
from shipper.mappings import mappings_dir
from shipper.normalise.perf import TABLE, normalise, snake

RMS = "Microsoft Rights Management connector"


def doc(obj: str, counters: dict[str, float], instance: str | None = None, **rec: object):
    base = {
        "time": "2024-03-04T09:00:00.123Z",
        "host": "RMSCON01",
        "object": obj,
        "instance": instance,
        "counters": counters,
    }
    return normalise({**base, **rec}, "perf.csv")


def test_the_documented_counters_have_their_fields_with_units() -> None:
    ev = doc(
        RMS,
        {
            "Time since last authorization policy update": 840.0,
            "Licensing Successful Batched Request Average Connector Response Time": 50.0,
            "Licensing Successful Batched Request Average Service Response Time": 40.0,
            "Licensing Successful Batched Request Average Connector Processing Time": 3.0,
        },
    )
    assert ev["@timestamp"] == "2024-03-04T09:00:00.123Z"
    assert ev["event"] == {
        "kind": "metric",
        "module": "rms_connector",
        "dataset": "rms_connector.perf",
        "id": ev["event"]["id"],
    }
    assert ev["host"] == {"name": "rmscon01", "hostname": "rmscon01"}
    assert ev["rms_connector"]["perf"] == {
        "time_since_last_authorization_policy_update_seconds": 840.0,
        "licensing_successful_batched": {
            "connector_response_time_ms": 50.0,
            "service_response_time_ms": 40.0,
            "connector_processing_time_ms": 3.0,
        },
    }


def test_names_match_whatever_the_case_and_other_request_kinds_follow_the_pattern() -> None:
    ev = doc(
        RMS.lower(),
        {
            "time since last authorization policy update": 1.0,
            "Certification Failed Request Average Service Response Time": 2.0,
            "Publishing Successful Batched Requests/sec": 3.0,
            "Publishing Successful Batched Requests": 4.0,
            "Something Microsoft adds later": 5.0,
            "Average Cache Lookup Time": 6.0,
        },
    )
    assert ev["rms_connector"]["perf"] == {
        "time_since_last_authorization_policy_update_seconds": 1.0,
        "certification_failed": {"service_response_time_ms": 2.0},
        "publishing_successful_batched": {"requests_per_sec": 3.0, "requests_count": 4.0},
        "something_microsoft_adds_later": 5.0,
        "average_cache_lookup_time_ms": 6.0,
    }


def test_instance_of_the_connector_set_is_a_dimension() -> None:
    ev = doc(RMS, {"Time since last authorization policy update": 1.0}, instance="w3wp#1")
    assert ev["rms_connector"]["perf"]["instance"] == "w3wp#1"


def test_unknown_objects_are_kept_under_windows_perf() -> None:
    ev = doc("LogicalDisk", {"Avg. Disk sec/Read": 0.004, "% Free Space": 42.0}, instance="C:")
    assert ev["event"]["dataset"] == "windows.perf" and ev["event"]["module"] == "windows"
    assert ev["windows"]["perf"] == {
        "object": "LogicalDisk",
        "instance": "C:",
        "logicaldisk": {"avg_disk_sec_per_read": 0.004, "pct_free_space": 42.0},
    }
    assert "rms_connector" not in ev


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("% Processor Time", "pct_processor_time"),
        ("Avg. Disk sec/Read", "avg_disk_sec_per_read"),
        ("Bytes Total/sec", "bytes_total_per_sec"),
        ("# of current logical Threads", "num_of_current_logical_threads"),
        ("Network Interface", "network_interface"),
    ],
)
def test_snake_case(name: str, field: str) -> None:
    assert snake(name) == field


def test_ids_are_stable_and_tell_samples_apart() -> None:
    a = doc(RMS, {"Time since last authorization policy update": 1.0})
    again = doc(
        RMS.upper(),
        {"TIME SINCE LAST AUTHORIZATION POLICY UPDATE": 2.0},
        host="rmscon01",
        time="2024-03-04T09:00:00.1234567Z",
    )
    assert a["event"]["id"] == again["event"]["id"]  # same sample, other export's spelling
    later = doc(
        RMS, {"Time since last authorization policy update": 1.0}, time="2024-03-04T09:00:15.123Z"
    )
    other_host = doc(RMS, {"Time since last authorization policy update": 1.0}, host="RMSCON02")
    other_instance = doc(RMS, {"Time since last authorization policy update": 1.0}, instance="x")
    other_counters = doc(
        RMS, {"Licensing Successful Batched Request Average Connector Response Time": 1.0}
    )
    ids = {e["event"]["id"] for e in (a, later, other_host, other_instance, other_counters)}
    assert len(ids) == 5


def test_a_sample_without_time_object_or_values_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="no sample time"):
        doc(RMS, {"x": 1.0}, time="")
    with pytest.raises(RecordRejected, match="no counter value"):
        doc(RMS, {})
    with pytest.raises(RecordRejected, match="no counter object"):
        doc("", {"x": 1.0})


def test_every_table_field_carries_a_unit() -> None:
    raw = yaml.safe_load((mappings_dir() / TABLE).read_text(encoding="utf-8"))
    for counter, field in raw["counters"].items():
        assert field.endswith(("_ms", "_seconds", "_count", "_per_sec")), counter
    assert raw["dataset"] == "rms_connector.perf"
