"""One connector server is one host on the dashboards and in the alerts, whichever dataset.

Its events name it by their Computer (the FQDN, in the case Windows writes it), its counter
logs by the ``\\\\HOST`` of each column (the NetBIOS name): both must carry the same
``host.hostname``, the field the connector-health panels and the per-host rules group by.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shipper.normalise.hosts import host_fields
from shipper.normalise.winlog import normalise
from shipper.sources.eventxml import parse_event_xml
from shipper.sources.perfcsv import PERF_CSV

NS = "http://schemas.microsoft.com/win/2004/08/events/event"
RMS = "Microsoft Rights Management connector"


def connector_event(computer: str) -> dict:
    xml = (
        f"<Event xmlns='{NS}'><System><Provider Name='Microsoft RMS connector'/>"
        "<EventID>1004</EventID><Level>4</Level>"
        "<TimeCreated SystemTime='2024-03-05T09:00:07.0000000Z'/>"
        "<EventRecordID>7</EventRecordID><Channel>Application</Channel>"
        f"<Computer>{computer}</Computer></System>"
        "<EventData><Data>The list of authorized accounts has been updated.</Data></EventData>"
        "</Event>"
    )
    return normalise(parse_event_xml(xml), "Application.xml")


def counter_docs(tmp_path: Path, host: str) -> list[dict]:
    path = tmp_path / "typeperf.csv"
    path.write_bytes(
        (
            f'"(PDH-CSV 4.0) (GMT Standard Time)(0)",'
            f'"\\\\{host}\\{RMS}\\Time since last authorization policy update"\r\n'
            '"03/05/2024 09:00:30.000","23"\r\n'
        ).encode()
    )
    docs = []
    with open(path, "rb") as f:
        for chunk in PERF_CSV.chunks(f, str(path), 0, "", True, {"timezone": "UTC"}):
            docs += [orjson.loads(d) for d in PERF_CSV.decode(chunk).docs]
    return docs


def test_a_connectors_events_and_counters_share_host_hostname(tmp_path: Path) -> None:
    event = connector_event("RMSCON02.contoso.com")
    (counter,) = counter_docs(tmp_path, "RMSCON02")
    assert event["event"]["dataset"] == "rms_connector.events"
    assert counter["event"]["dataset"] == "rms_connector.perf"
    assert event["host"] == {"name": "rmscon02.contoso.com", "hostname": "rmscon02"}
    assert counter["host"] == {"name": "rmscon02", "hostname": "rmscon02"}
    assert event["winlog"]["computer_name"] == "RMSCON02.contoso.com"  # as Windows wrote it


@pytest.mark.parametrize(
    ("name", "full", "short"),
    [
        ("RMSCON01", "rmscon01", "rmscon01"),
        ("rmscon01.Contoso.COM", "rmscon01.contoso.com", "rmscon01"),
        ("RMSCON01.contoso.com.", "rmscon01.contoso.com", "rmscon01"),  # DNS root dot
        ("10.0.0.7", "10.0.0.7", "10.0.0.7"),  # \\10.0.0.7\... is a host, not "10"
        ("fe80::1", "fe80::1", "fe80::1"),
    ],
)
def test_host_fields(name: str, full: str, short: str) -> None:
    assert host_fields(name) == {"name": full, "hostname": short}
