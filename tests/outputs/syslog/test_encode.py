"""The encoder on bytes (no receiver): header fields, severity, framing, sizes, settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from shipper.outputs.syslog.encode import Encoder, frame_lf, frame_octets, rfc3339, truncate
from shipper.outputs.syslog.settings import Settings

from .conftest import HOSTILE, batch_of, windows_event
from .helpers import parse_sd

HEADER = re.compile(
    rb"^<(\d{1,3})>1 (\S+) ([A-Za-z0-9._-]{1,255}) (\S{1,48}) - (\S{1,32}) (\[.*?[^\\]\]) "
)


def one(event: dict[str, Any], **settings: Any) -> bytes:
    return Encoder(Settings(**settings), "this-host").messages(batch_of([event]))[0]


def test_the_events_own_time_and_host_never_the_send_time() -> None:
    msg = one(windows_event(7))  # 7 fraction digits, as Windows writes them
    m = HEADER.match(msg)
    assert m, msg[:200]
    pri, ts, host, app, msgid, sd = m.groups()
    assert ts == b"2024-05-06T07:08:07.123456Z"  # RFC 5424: at most 6 digits
    assert host == b"rmsconn01.contoso.com" and app == b"shipper"
    assert msgid == b"rms_connector.events"
    assert int(pri) == 16 * 8 + 3  # local0, log.level error
    assert parse_sd(sd.decode()) == {
        "meta": {"event_id": "win-000007", "dataset": "rms_connector.events"}
    }
    assert orjson.loads(msg[m.end() :]) == windows_event(7)


@pytest.mark.parametrize(
    "ts,want",
    [
        ("2024-03-04T11:35:47.000Z", "2024-03-04T11:35:47.000Z"),
        ("2024-03-04T11:35:47Z", "2024-03-04T11:35:47Z"),
        ("2024-03-04T11:35:47.1234567+02:00", "2024-03-04T11:35:47.123456+02:00"),
        ("04/03/2024 11:35", "-"),
        ("", "-"),
    ],
)
def test_timestamps(ts: str, want: str) -> None:
    assert rfc3339(ts) == want


def test_severity_facility_and_msgid_from_settings() -> None:
    ok = {
        "@timestamp": "2024-01-01T00:00:00Z",
        "event": {"id": "1", "dataset": "d", "action": "Get"},
    }
    failed = {**ok, "event": {**ok["event"], "outcome": "failure"}}
    assert one(ok).startswith(b"<134>1 ")  # local0.info
    assert one(failed).startswith(b"<132>1 ")  # local0.warning
    assert one(failed, facility="auth").startswith(b"<36>1 ")
    assert b" this-host shipper - Get [" in one(ok, msgid="action")
    assert b" this-host rms - d [origin " in one(ok, app_name="rms", sd_id="origin")
    assert one(ok, utf8_bom=True).split(b"] ", 1)[1].startswith(b"\xef\xbb\xbf{")


@pytest.mark.parametrize("fmt", ["json", "cef", "leef"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_no_value_can_break_a_message(name: str, fmt: str) -> None:
    value = HOSTILE[name]
    event = windows_event(1, message=value)
    event["event"].update(id=f"id-{value}", action=value, code=value)
    event["host"] = {"name": value}
    msg = one(event, format=fmt, msgid="action")
    assert not re.search(rb"[\x00\r\n]", msg), msg  # nothing ends it early, in any framing
    m = HEADER.match(msg)
    assert m, msg[:300]
    assert parse_sd(m.group(6).decode())["meta"]["event_id"].startswith("id-")
    head, body = msg[:20], msg[20:]
    octets, ends = frame_octets([head], [body])
    assert b"".join(octets) == b"%d %b" % (len(msg), msg) and ends == [len(b"".join(octets))]
    assert b"".join(frame_lf([head], [body])[0]) == msg + b"\n"


def test_truncate_keeps_whole_utf8_characters() -> None:
    msg = ("é" * 1000).encode()
    cut = truncate(msg, 501)
    assert len(cut) <= 501 and cut.endswith(b" [truncated]")
    cut.decode("utf-8")  # no half character


@pytest.mark.parametrize(
    "settings,where",
    [
        ({"sd_id": "shipper"}, "IANA-registered"),
        ({"sd_id": "a b@1"}, "SD-ID"),
        ({"app_name": "two words"}, "APP-NAME"),
        ({"facility": "local9"}, "unknown facility"),
        ({"hosts": ["host:99999"]}, "port must be"),
        ({"transport": "udp", "framing": "lf"}, "framing: lf"),
        ({"ca_file": "ca.pem"}, "need transport tls"),
        ({"transport": "udp", "max_message_size": 100}, "at least 480"),
        ({"max_message_size": "lots"}, "not a size"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_settings_refused_with_a_reason(settings: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        Settings(**settings)


def test_hosts_and_default_ports() -> None:
    s = Settings(hosts=["a", "b:1514", "[::1]:6000", "::1"], transport="tls")
    assert s.addresses() == [("a", 6514), ("b", 1514), ("::1", 6000), ("::1", 6514)]
    assert Settings(transport="udp").size_limit() == 8192
    assert Settings().size_limit() is None


def test_check_names_the_target_when_nothing_answers(tmp_path: Path) -> None:
    import socket

    from shipper.errors import OutputFailed
    from shipper.outputs.syslog import check

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OutputFailed, match=f"127.0.0.1:{port}: cannot connect"):
        check(Settings(hosts=[f"127.0.0.1:{port}"], timeout=2), tmp_path)
