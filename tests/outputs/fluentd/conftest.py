"""Fixtures for the Fluentd output: receivers, certificates, ready-made batches."""

from __future__ import annotations

import datetime as dt
import ipaddress
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.outputs.base import EventBatch
from shipper.outputs.fluentd import Settings
from shipper.outputs.fluentd.output import ForwardOutput
from shipper.sources import Decoded
from shipper.spool import Spooled

from .receiver import Receiver


def event(i: int, dataset: str = "azure_rms.usage", ts: str | None = None) -> dict[str, Any]:
    return {
        "@timestamp": ts or f"2024-03-04T09:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
        "event": {"kind": "event", "dataset": dataset, "id": f"id-{i:06d}", "outcome": "success"},
        "user": {"email": f"user{i % 7}@contoso.com", "name": f"user{i % 7}"},
        "related": {"user": [f"user{i % 7}"], "ip": ["203.0.113.7"]},
        "azure_rms": {"log_offset": i * 100, "admin_action": i % 2 == 0, "ratio": 0.5},
        "message": 'ünïcode ☃ and "quotes"',
    }


def batch_of(events: list[dict[str, Any]], runs: int = 2) -> EventBatch:
    """The events as the pipeline hands them over: NDJSON runs, without metadata."""
    b = EventBatch()
    docs = [orjson.dumps(e) for e in events]
    step = max(1, -(-len(docs) // runs))
    for i in range(0, len(docs), step):
        part = docs[i : i + step]
        b.add_ndjson(b"\n".join(part) + b"\n", len(part))
    return b


def with_wires(out: ForwardOutput, batch: EventBatch) -> EventBatch:
    """``batch`` (the same object) with its entries packed as the pipeline's decoders pack
    them: by a pickled copy of the output's wire encoder, run by run."""
    if len(batch) and batch.wire(out.name) is None:
        encoder = pickle.loads(pickle.dumps(out.wire_encoder))
        for run in batch.ndjson_runs():
            data = run.read() if isinstance(run, Spooled) else run
            batch.add_wire(out.name, encoder.encode(Decoded(docs=data.split(b"\n")[:-1])))
    return batch


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def make_output(tmp_path: Path) -> Iterator[Any]:
    made: list[ForwardOutput] = []

    def make(*receivers: Receiver | str, **kw: Any) -> ForwardOutput:
        hosts = [r if isinstance(r, str) else r.address for r in receivers]
        kw.setdefault("connect_timeout", 2.0)
        kw.setdefault("ack_timeout", 2.0)
        kw.setdefault("backoff_initial", 0.05)
        kw.setdefault("backoff_max", 0.2)
        out = ForwardOutput(Settings(hosts=hosts, **kw), tmp_path)
        send = out.send

        def as_from_the_pipeline(batch: EventBatch) -> Any:
            return send(with_wires(out, batch))

        out.send = as_from_the_pipeline  # type: ignore[method-assign]
        made.append(out)
        return out

    yield make
    for out in made:
        out.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate (PEM)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.timezone.utc)

    def name(cn: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(cn: str, issuer: Any, issuer_key: Any, ca: bool, san: list[Any]) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer or name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key or key, hashes.SHA256()), key

    def write(stem: str, cert: Any, key: Any) -> None:
        (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca, ca_key = issue("test CA", None, None, True, [])
    server, server_key = issue(
        "localhost", ca.subject, ca_key, False,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )  # fmt: skip
    client, client_key = issue("shipper client", ca.subject, ca_key, False, [])
    write("ca", ca, ca_key)
    write("server", server, server_key)
    write("client", client, client_key)
    return {
        n: folder / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    }


def send_until_acked(out: ForwardOutput, batch: EventBatch, timeout: float = 15.0) -> Any:
    """What the pipeline does: hand the same batch back after a RetryLater, until acked."""
    from shipper.errors import RetryLater

    deadline = time.monotonic() + timeout
    while True:
        try:
            return out.send(batch)
        except RetryLater:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
