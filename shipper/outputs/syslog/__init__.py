"""Syslog output (RFC 5424) for SIEMs: TCP, TLS, UDP or RELP; JSON, CEF or LEEF 2.0 bodies.

The parts, one concern each: ``settings`` (the user's settings, checked against the RFC's
grammar), ``encode`` (event -> RFC 5424 bytes and framings, no I/O), ``transport`` (TCP / TLS /
UDP sockets, what "delivered" means for each), ``relp`` (the RELP client), ``output`` (the
send loop: failover, backoff, dead letters, ``check``).

``syslog-rfc5424-formatter`` is not used (``encode`` says why: it stamps the send time and this
host into every message), so it is not a dependency.

Nothing is imported eagerly: ``Settings`` (pydantic) on first use, by the configuration;
decoder processes import ``encode`` alone, to encode messages beside decoding
(``encode.WireEncoder``), and must stay light.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipper.outputs.syslog.output import SyslogOutput
    from shipper.outputs.syslog.settings import Settings


@cache
def version() -> str:
    """CEF/LEEF "device version" and RELP's relp_software: this distribution's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    from shipper.registry import DISTRIBUTION

    try:
        return _version(DISTRIBUTION)
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0"


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from shipper.outputs.syslog.settings import Settings

        return Settings
    if name == "VERSION":
        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(settings: Settings, data_dir: Path) -> SyslogOutput:
    from shipper.outputs.syslog.output import SyslogOutput

    return SyslogOutput(settings, Path(data_dir))


def check(settings: Settings, data_dir: Path) -> str:
    """For ``shipper check --outputs``: what was reached; ``OutputFailed`` naming the target."""
    from shipper.outputs.syslog.output import check as _check

    return _check(settings)


__all__ = ["Settings", "VERSION", "build", "check"]
