"""Fixtures for the syslog output: real events, hostile events, receivers, certificates."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.outputs.base import EventBatch

from .receivers import (
    REPO,
    Receiver,
    Rsyslog,
    SyslogNg,
    free_port,
    rsyslog_available,
    syslog_ng_available,
)

HOSTILE = {
    "cr": "before\rafter",
    "lf": "line one\nline two\n<13>1 2024-01-01T00:00:00Z forged app - - - injected",
    "crlf_octets": "12 <13>1 - - - - - -\r\n",
    "nul": "nul\x00here",
    "controls": "bell\x07 esc\x1b[31m del\x7f vt\x0b ff\x0c tab\there",
    "bracket": 'close] [meta forged="1"]',
    "quote": 'a "quoted" value',
    "backslash": "C:\\Users\\joe\\ end\\",
    "pipe": "a|b||c|",
    "equals": "k=v a=b =",
    "unicode": "ünïcødé 日本語 🎉 \u2028 \u0085",
}


def batch_of(events: list[dict[str, Any]]) -> EventBatch:
    """What the pipeline hands an output: documents plus ids, datasets and timestamps."""
    return EventBatch(
        ids=[e["event"]["id"] for e in events],
        datasets=[e["event"]["dataset"] for e in events],
        docs=[orjson.dumps(e) for e in events],
        timestamps=[e["@timestamp"] for e in events],
    )


@pytest.fixture(scope="session")
def rms_events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The bundled RMS usage examples, through the real pipeline and normaliser."""
    d = tmp_path_factory.mktemp("rms")
    cfg = d / "cfg.yaml"
    cfg.write_text(
        f"data_dir: {d / 'data'}\n"
        f"inputs: [{{type: rms_usage, paths: ['{REPO / 'examples/rms'}/*']}}]\n"
        f"outputs: [{{type: ndjson, path: '{d / 'events.ndjson'}'}}]\n"
        "pipeline: {workers: 1}\n"
    )
    subprocess.run(
        [sys.executable, "-m", "shipper.cli", "run", "--once", "--no-progress", str(cfg)],
        check=False,
        capture_output=True,
        timeout=60,
    )
    lines = (d / "events.ndjson").read_bytes().split(b"\n")
    events = [orjson.loads(x) for x in lines if x]
    assert len(events) > 300
    return events


def windows_event(n: int, **over: Any) -> dict[str, Any]:
    """A Windows event as the winlog normaliser writes it: host.name and log.level."""
    event: dict[str, Any] = {
        "@timestamp": f"2024-05-06T07:08:{n % 60:02d}.1234567Z",
        "event": {
            "kind": "event",
            "module": "rms_connector",
            "dataset": "rms_connector.events",
            "code": "3001",
            "provider": "Microsoft RMS Connector",
            "id": f"win-{n:06d}",
            "outcome": "failure",
        },
        "host": {"name": "rmsconn01.contoso.com"},
        "log": {"level": "error"},
        "message": "The connector cannot reach the service.",
        "winlog": {"channel": "Application", "record_id": 1000 + n, "event_id": "3001"},
    }
    event.update(over)
    return event


@pytest.fixture(scope="session")
def hostile_events(rms_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event per character class, the value in several fields (body, SD, header, CEF
    header and extension), plus a 64 KiB value."""
    out = []
    for n, (name, value) in enumerate(HOSTILE.items()):
        e = orjson.loads(orjson.dumps(rms_events[n]))
        e["event"]["id"] = f"hostile-{name}-{value}"
        e["event"]["action"] = value
        e["event"]["dataset"] = "azure_rms.usage"
        e["file"] = {"name": value, "extension": "x"}
        e["user"] = {"name": value, "email": value, "domain": value}
        e["message"] = value
        e["host"] = {"name": value}
        out.append(e)
    big = orjson.loads(orjson.dumps(rms_events[20]))
    big["event"]["id"] = "hostile-64k"
    big["message"] = ("0123456789abcdef" * 4096)[:65535] + "\n"
    out.append(big)
    return out


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Callable[..., Rsyslog]]:
    started: list[Receiver] = []

    def start(kind: str = "imptcp", parse: str = "json", **kw: Any) -> Rsyslog:
        why = rsyslog_available({"tls": "lmnsd_gtls", "imrelp_tls": "imrelp"}.get(kind, kind))
        if why:
            pytest.skip(why)
        folder = tmp_path / f"rsyslog{len(started)}"
        folder.mkdir()
        udp = kind == "imudp"
        import socket

        port = kw.pop("port", None) or free_port(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        r = Rsyslog(folder, port, kind, parse, **kw)
        started.append(r)
        return r.start()

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def syslog_ng(tmp_path: Path) -> Iterator[Callable[..., SyslogNg]]:
    started: list[Receiver] = []

    def start(kind: str = "tcp", parse: str = "json") -> SyslogNg:
        why = syslog_ng_available()
        if why:
            pytest.skip(why)
        folder = tmp_path / f"syslog-ng{len(started)}"
        folder.mkdir()
        import socket

        port = free_port(socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        r = SyslogNg(folder, port, kind, parse)
        started.append(r)
        return r.start()

    yield start
    for r in started:
        r.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a receiver certificate it signed (localhost / 127.0.0.1), and a self-signed one."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d: Path = tmp_path_factory.mktemp("certs")
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def save(stem: str, cert: Any, key: Any) -> None:
        (d / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def leaf(cn: str, issuer: Any, issuer_key: Any, key: Any) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(issuer_key, hashes.SHA256())
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("shipper test CA"))
        .issuer_name(name("shipper test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    save("ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    save("server", leaf("localhost", ca.subject, ca_key, server_key), server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    save("client", leaf("shipper", ca.subject, ca_key, client_key), client_key)
    self_key = ec.generate_private_key(ec.SECP256R1())
    save("selfsigned", leaf("localhost", name("localhost"), self_key, self_key), self_key)
    return {
        "ca": d / "ca.pem",
        "server": d / "server.pem",
        "server_key": d / "server.key",
        "client": d / "client.pem",
        "client_key": d / "client.key",
        "self": d / "selfsigned.pem",
        "self_key": d / "selfsigned.key",
    }
