"""Fluentd / Fluent Bit output: Forward protocol v1, acknowledged chunks, handshake and TLS.

The parts, one concern each: ``settings`` (what the user configures), ``encode`` (documents ->
PackedForward / Forward / CompressedPackedForward messages, no I/O), ``handshake`` (HELO, PING,
PONG as pure functions), ``transport`` (one connection: TCP/TLS, handshake, write, read acks,
errors translated), ``output`` (receivers, failover, the in-flight window, what counts as
delivered).

Only ``settings`` is imported eagerly: configuration is validated without loading the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipper.outputs.fluentd.settings import Settings

if TYPE_CHECKING:
    from shipper.outputs.fluentd.output import ForwardOutput


def build(settings: Settings, data_dir: Path) -> ForwardOutput:
    from shipper.outputs.fluentd.output import ForwardOutput

    return ForwardOutput(settings, Path(data_dir))


def check(settings: Settings, data_dir: Path) -> str:
    """For ``shipper check --outputs``: connects to every receiver, TLS and handshake included;
    raises ``OutputFailed`` naming the receivers that could not be reached or refused us."""
    from shipper.outputs.fluentd.output import check as _check

    return _check(settings)


__all__ = ["Settings", "build", "check"]
