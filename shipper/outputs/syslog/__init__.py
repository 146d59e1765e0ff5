"""Syslog output (RFC 5424) for SIEMs: TCP, TLS, UDP or RELP; JSON, CEF or LEEF 2.0 bodies.

The parts, one concern each: ``settings`` (the user's settings, checked against the RFC's
grammar), ``encode`` (event -> RFC 5424 bytes and framings, no I/O), ``transport`` (TCP / TLS /
UDP sockets, what "delivered" means for each), ``relp`` (the RELP client), ``output`` (the
send loop: failover, backoff, dead letters, ``check``).

``syslog-rfc5424-formatter`` is not used (``encode`` says why: it stamps the send time and this
host into every message), so it is not a dependency.

Only ``settings`` is imported eagerly: validating a configuration needs nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipper.outputs.syslog.settings import Settings

if TYPE_CHECKING:
    from shipper.outputs.syslog.output import SyslogOutput


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from shipper.registry import DISTRIBUTION

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0"


#: CEF/LEEF "device version" and RELP's relp_software
VERSION = _version()


def build(settings: Settings, data_dir: Path) -> SyslogOutput:
    from shipper.outputs.syslog.output import SyslogOutput

    return SyslogOutput(settings, Path(data_dir))


def check(settings: Settings, data_dir: Path) -> str:
    """For ``shipper check --outputs``: what was reached; ``OutputFailed`` naming the target."""
    from shipper.outputs.syslog.output import check as _check

    return _check(settings)


__all__ = ["Settings", "VERSION", "build", "check"]
