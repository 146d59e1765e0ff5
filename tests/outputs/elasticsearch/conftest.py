"""Fixtures: a real OpenSearch-compatible engine (osmem-server), a self-signed certificate.

``engine`` starts one ``osmem-server`` per session on a free loopback port (the binary ships
in the ``osmem-server`` wheel; ``OsmemServer.start`` runs it with ``--addr 127.0.0.1:0`` and
reads the URL it prints). Tests that need it skip when the package is not installed.
Each test gets its own clone (``engine_url``), so tests cannot see each other's documents.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    osmem = pytest.importorskip("osmem_server", reason="pip install osmem-server")
    try:
        server = osmem.OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    except osmem.OsmemError as e:
        pytest.skip(f"osmem-server cannot start here: {e}")
    yield server
    server.close()


@pytest.fixture
def engine_url(engine: Any) -> Iterator[str]:
    clone = engine.clone()
    yield clone.url
    clone.close()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """(cert file, key file, SHA-256 fingerprint) for CN=localhost, IP 127.0.0.1."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d: Path = tmp_path_factory.mktemp("tls")
    cert_file, key_file = d / "cert.pem", d / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return str(cert_file), str(key_file), fingerprint
