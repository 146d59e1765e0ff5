"""TLS (RFC 5425) and RELP over TLS against rsyslog's gtls driver: verification is on by
default, the receiver's name is checked, a client certificate is shown when asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipper.errors import OutputFailed, RetryLater
from shipper.outputs.syslog import build, check
from shipper.outputs.syslog.settings import Settings

from .conftest import batch_of
from .helpers import check_rsyslog_json, ship

pytestmark = pytest.mark.integration

HOST = "shipper-test"


def test_self_signed_receiver_refused_by_default_accepted_with_its_ca(
    rsyslog: Any, certs: dict[str, Path], rms_events: list[dict[str, Any]], tmp_path: Path
) -> None:
    r = rsyslog("tls", tls_files=(certs["self"], certs["self_key"]))
    default = Settings(hosts=[f"localhost:{r.port}"], transport="tls", hostname=HOST)
    with pytest.raises(OutputFailed, match=r"localhost:\d+: TLS certificate refused: .*self"):
        check(default, tmp_path)
    out = build(default, tmp_path)
    with pytest.raises(OutputFailed, match="certificate refused"):
        out.send(batch_of(rms_events[:5]))
    out.close()

    trusted = default.model_copy(update={"ca_file": certs["self"]})
    assert "tls connected to localhost" in check(trusted, tmp_path)
    ack = ship(rms_events[:40], tmp_path, **trusted.model_dump(exclude={"type"}))
    assert ack.delivered == 40
    check_rsyslog_json(r.wait_for(40), rms_events[:40], HOST)  # nothing from the refusals


def test_receiver_name_is_checked(rsyslog: Any, certs: dict[str, Path], tmp_path: Path) -> None:
    r = rsyslog("tls", tls_files=(certs["server"], certs["server_key"]))
    base = Settings(hosts=[f"127.0.0.1:{r.port}"], transport="tls", ca_file=certs["ca"])
    assert "tls connected" in check(base, tmp_path)  # the certificate names 127.0.0.1
    wrong = base.model_copy(update={"server_name": "siem.example.com"})
    with pytest.raises(OutputFailed, match="siem.example.com|match"):
        check(wrong, tmp_path)
    unchecked = wrong.model_copy(update={"verify_certs": False})
    assert "tls connected" in check(unchecked, tmp_path)


def test_client_certificate_when_the_receiver_asks(
    rsyslog: Any, certs: dict[str, Path], rms_events: list[dict[str, Any]], tmp_path: Path
) -> None:
    r = rsyslog("tls", tls_files=(certs["server"], certs["server_key"]), client_ca=certs["ca"])
    base = {
        "hosts": [f"localhost:{r.port}"],
        "transport": "tls",
        "ca_file": certs["ca"],
        "hostname": HOST,
        "retry_rounds": 0,
        "backoff_initial": 0.01,
    }
    without = build(Settings(**base), tmp_path)
    with pytest.raises(RetryLater, match="right after the TLS handshake .* client certificate"):
        without.send(batch_of(rms_events[:5]))  # gnutls hangs up without an alert
    without.close()
    ack = ship(
        rms_events[:30],
        tmp_path,
        **base,
        cert_file=certs["client"],
        key_file=certs["client_key"],
    )
    assert ack.delivered == 30
    check_rsyslog_json(r.wait_for(30), rms_events[:30], HOST)


def test_relp_over_tls_with_a_client_certificate(
    rsyslog: Any, certs: dict[str, Path], rms_events: list[dict[str, Any]], tmp_path: Path
) -> None:
    r = rsyslog(
        "imrelp_tls", tls_files=(certs["server"], certs["server_key"]), client_ca=certs["ca"]
    )
    ack = ship(
        rms_events[:60],
        tmp_path,
        hosts=[f"localhost:{r.port}"],
        transport="relp_tls",
        ca_file=certs["ca"],
        cert_file=certs["client"],
        key_file=certs["client_key"],
        hostname=HOST,
    )
    assert ack.delivered == 60
    check_rsyslog_json(r.wait_for(60), rms_events[:60], HOST)
