"""CEF and LEEF bodies, read back by real parsers, field by field, hostile values included.

CEF: rsyslog's mmnormalize with liblognorm's ``cef`` parser (Debian 12's syslog-ng 3.38 has no
CEF parser). LEEF: neither receiver has a LEEF parser (syslog-ng's kv-parser splits a value at
`` word=``, which LEEF allows), so syslog-ng delivers the message and the test reads it as the
LEEF 2.0 guide describes: header fields split at ``|``, attributes at the declared delimiter,
each key ending at its first ``=``. Expected values come from ``mappings/syslog/syslog.yaml``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from .conftest import windows_event
from .helpers import TABLES, by_id, get, parse_sd, sd_text, severity, ship

pytestmark = pytest.mark.integration


def text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def epoch_ms(ts: str) -> int:
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", ts)
    assert m
    whole = datetime.fromisoformat(m[1]).replace(tzinfo=timezone.utc)
    return int(whole.timestamp()) * 1000 + int((m[2] or "0")[:3].ljust(3, "0"))


def cef_expected(event: dict[str, Any]) -> dict[str, Any]:
    dataset = event["event"]["dataset"]
    vendor, product = TABLES["cef_products"].get(dataset, TABLES["cef_default_product"])

    def header(v: str) -> str:
        return re.sub(r"[\x00-\x1f\x7f]", "\ufffd", v)

    def value(v: str) -> str:  # CR and LF travel as \r \n; other controls but TAB do not
        return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "\ufffd", v)

    action = get(event, "event.action")
    ext: dict[str, str] = {}
    for item in TABLES["cef_extension"]:
        v = get(event, item[1])
        if v is None or v == "" or v == []:
            continue
        ext[item[0]] = str(epoch_ms(v)) if item[0] == "rt" else value(text(v))
        if len(item) > 2:
            ext[item[0] + "Label"] = item[2]
    return {
        "DeviceVendor": vendor,
        "DeviceProduct": product,
        "SignatureID": header(get(event, "event.code") or action or dataset),
        "Name": header(action or dataset),
        "Severity": str(TABLES["cef_severity"][severity(event)]),
        "Extensions": ext,
    }


def test_cef_read_back_by_rsyslog_mmnormalize(
    rsyslog: Any,
    rms_events: list[dict[str, Any]],
    hostile_events: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    r = rsyslog("imptcp", parse="cef")
    events = rms_events[:100] + [windows_event(n) for n in range(3)] + hostile_events
    ack = ship(events, tmp_path, hosts=[f"127.0.0.1:{r.port}"], format="cef")
    assert ack.delivered == len(events)
    lines = r.wait_for(len(events))
    got = by_id(lines, lambda line: parse_sd(line["structured-data"])["meta"]["event_id"])
    assert len(lines) == len(events)
    for event in events:
        [line] = got[sd_text(event["event"]["id"])]
        cef = line["$!"]["cef"]
        cef.pop("DeviceVersion")
        assert cef == cef_expected(event), event["event"]["id"]


def leef_read(msg: str) -> tuple[list[str], dict[str, str]]:
    """LEEF 2.0 as its guide reads it."""
    parts = msg.split("|", 6)
    assert parts[0] == "LEEF:2.0" and len(parts) == 7, msg[:200]
    delimiter = {"x09": "\t", "0x09": "\t", "\\t": "\t"}.get(parts[5], parts[5])
    attrs = {}
    for pair in parts[6].split(delimiter):
        key, _, value = pair.partition("=")
        assert key not in attrs
        attrs[key] = value
    return parts[1:5], attrs


def test_leef_delivered_by_syslog_ng_reads_back(
    syslog_ng: Any,
    rms_events: list[dict[str, Any]],
    hostile_events: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    n = syslog_ng("tcp", parse="none")
    events = rms_events[:100] + [windows_event(n) for n in range(3)] + hostile_events
    ack = ship(events, tmp_path, hosts=[f"127.0.0.1:{n.port}"], format="leef")
    assert ack.delivered == len(events)
    lines = n.wait_for(len(events))
    assert len(lines) == len(events)
    got = by_id(lines, lambda line: line["_SDATA"]["meta"]["event_id"])
    for event in events:
        [line] = got[sd_text(event["event"]["id"])]
        header, attrs = leef_read(line["MSG"])
        dataset = event["event"]["dataset"]
        vendor, product = TABLES["leef_products"].get(dataset, TABLES["leef_default_product"])
        event_id = get(event, "event.code") or get(event, "event.action") or dataset
        assert header[:2] == [vendor, product]
        assert header[3] == re.sub(r"[|\x00-\x1f\x7f]", "_", event_id)
        want = {}
        for key, path in TABLES["leef_attributes"]:
            v = get(event, path)
            if v is None or v == "" or v == []:
                continue
            if key == "devTime":
                ms = epoch_ms(v)
                stamp = datetime.fromtimestamp(ms / 1000, timezone.utc)
                want["devTime"] = stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"
                want["devTimeFormat"] = "yyyy-MM-dd'T'HH:mm:ss.SSSX"
                continue
            v = re.sub(r"[\t\r\n]", " ", text(v))
            want[key] = re.sub(r"[\x00-\x1f\x7f]", "\ufffd", v)
        assert attrs == want, event["event"]["id"]
