"""The syslog output against real rsyslog and syslog-ng, on every transport and framing.

Each case ships the RMS examples (through the real normaliser), Windows-style events (own host
and level) and one hostile event per character class plus a 64 KiB value, and checks that
each arrives exactly once, as one message, parsing back to the same fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import closed_port

from .conftest import windows_event
from .helpers import check_rsyslog_json, check_syslog_ng_json, ship

pytestmark = pytest.mark.integration

HOST = "shipper-test"


def _events(rms: list[dict[str, Any]], hostile: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rms[:150] + [windows_event(n) for n in range(5)] + hostile


@pytest.mark.parametrize(
    "kind,transport,framing",
    [
        ("imptcp", "tcp", "octet_counting"),
        ("imtcp", "tcp", "octet_counting"),
        ("imtcp", "tcp", "lf"),
        ("imrelp", "relp", "octet_counting"),
    ],
)
def test_rsyslog_gets_every_event_once(
    rsyslog: Any,
    rms_events: list[dict[str, Any]],
    hostile_events: list[dict[str, Any]],
    tmp_path: Path,
    kind: str,
    transport: str,
    framing: str,
) -> None:
    r = rsyslog(kind)
    events = _events(rms_events, hostile_events)
    ack = ship(
        events,
        tmp_path,
        hosts=[f"127.0.0.1:{r.port}"],
        transport=transport,
        framing=framing,
        hostname=HOST,
    )
    assert ack.delivered == len(events)
    check_rsyslog_json(r.wait_for(len(events)), events, HOST)


def test_rsyslog_tls_with_its_ca(
    rsyslog: Any,
    certs: dict[str, Path],
    rms_events: list[dict[str, Any]],
    hostile_events: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    r = rsyslog("tls", tls_files=(certs["server"], certs["server_key"]))
    events = _events(rms_events, hostile_events)
    ack = ship(
        events,
        tmp_path,
        hosts=[f"localhost:{r.port}"],
        transport="tls",
        ca_file=certs["ca"],
        hostname=HOST,
    )
    assert ack.delivered == len(events)
    check_rsyslog_json(r.wait_for(len(events)), events, HOST)


def test_rsyslog_udp_small_events_and_oversize_dead_lettered(
    rsyslog: Any,
    rms_events: list[dict[str, Any]],
    hostile_events: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    r = rsyslog("imudp")
    events = rms_events[:100] + hostile_events
    big = [e for e in events if e["event"]["id"] == "hostile-64k"]
    ack = ship(events, tmp_path, hosts=[f"127.0.0.1:{r.port}"], transport="udp", hostname=HOST)
    # UDP is lossy by nature; on loopback with these few datagrams nothing is dropped
    assert (ack.delivered, ack.dead_lettered) == (len(events) - 1, 1)
    check_rsyslog_json(r.wait_for(len(events) - 1), [e for e in events if e not in big], HOST)
    dead = (tmp_path / "dead_letter" / "syslog.jsonl").read_text()
    assert "hostile-64k" in dead and "over max_message_size 8192" in dead


@pytest.mark.parametrize("kind,transport,framing", [("tcp", "tcp", "octet_counting"),
                                                    ("lf", "tcp", "lf")])  # fmt: skip
def test_syslog_ng_gets_every_event_once(
    syslog_ng: Any,
    rms_events: list[dict[str, Any]],
    hostile_events: list[dict[str, Any]],
    tmp_path: Path,
    kind: str,
    transport: str,
    framing: str,
) -> None:
    n = syslog_ng(kind)
    events = _events(rms_events, hostile_events)
    ack = ship(
        events,
        tmp_path,
        hosts=[f"127.0.0.1:{n.port}"],
        transport=transport,
        framing=framing,
        hostname=HOST,
    )
    assert ack.delivered == len(events)
    check_syslog_ng_json(n.wait_for(len(events)), events, HOST)


def test_syslog_ng_udp_truncates_with_a_marker(
    syslog_ng: Any,
    rms_events: list[dict[str, Any]],
    hostile_events: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    n = syslog_ng("udp", parse="none")  # a cut JSON body would fail json-parser, dropping it
    events = rms_events[:50] + hostile_events
    ack = ship(
        events,
        tmp_path,
        hosts=[f"127.0.0.1:{n.port}"],
        transport="udp",
        hostname=HOST,
        max_message_size="4KB",
        oversize="truncate",
    )
    assert (ack.delivered, ack.dead_lettered) == (len(events), 0)
    lines = n.wait_for(len(events))
    assert len(lines) == len(events)
    cut = [line for line in lines if line["MSG"].endswith(" [truncated]")]
    assert len(cut) == 1 and cut[0]["_SDATA"]["meta"]["event_id"] == "hostile-64k"
    big = next(e for e in events if e["event"]["id"] == "hostile-64k")
    assert orjson.dumps(big).decode().startswith(cut[0]["MSG"][: -len(" [truncated]")])
    assert 3000 < len(cut[0]["MSG"].encode()) < 4000
    bodies = sorted(orjson.loads(line["MSG"])["event"]["id"] for line in lines if line not in cut)
    assert bodies == sorted(e["event"]["id"] for e in events if e is not big)


def test_failover_to_the_next_receiver(
    rsyslog: Any, rms_events: list[dict[str, Any]], tmp_path: Path
) -> None:
    from shipper.outputs.syslog import check
    from shipper.outputs.syslog.settings import Settings

    r = rsyslog("imptcp")
    dead = closed_port()
    hosts = [f"127.0.0.1:{dead}", f"127.0.0.1:{r.port}"]
    assert f"127.0.0.1:{r.port}" in check(Settings(hosts=hosts), tmp_path)
    ack = ship(rms_events[:50], tmp_path, hosts=hosts, hostname=HOST)
    assert ack.delivered == 50
    check_rsyslog_json(r.wait_for(50), rms_events[:50], HOST)
