"""Fluentd / Fluent Bit output: Forward protocol v1, acknowledged chunks, handshake and TLS.

The parts, one concern each: ``settings`` (what the user configures), ``encode`` (documents ->
PackedForward / Forward / CompressedPackedForward messages, no I/O), ``handshake`` (HELO, PING,
PONG as pure functions), ``transport`` (one connection: TCP/TLS, handshake, write, read acks,
errors translated), ``output`` (receivers, failover, the in-flight window, what counts as
delivered).

Nothing is imported eagerly: ``Settings`` (pydantic) on first use, by the configuration;
decoder processes import ``encode`` alone, to pack entries beside decoding
(``encode.WireEncoder``), and must stay light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipper.outputs.fluentd.output import ForwardOutput
    from shipper.outputs.fluentd.settings import Settings


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from shipper.outputs.fluentd.settings import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(settings: Settings, data_dir: Path) -> ForwardOutput:
    from shipper.outputs.fluentd.output import ForwardOutput

    return ForwardOutput(settings, Path(data_dir))


def check(settings: Settings, data_dir: Path) -> str:
    """For ``shipper check --outputs``: connects to every receiver, TLS and handshake included;
    raises ``OutputFailed`` naming the receivers that could not be reached or refused us."""
    from shipper.outputs.fluentd.output import check as _check

    return _check(settings)


__all__ = ["Settings", "build", "check"]
