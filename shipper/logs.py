"""The shipper's own log: one line format, with the time zone, whatever displays it.

``text`` (the default): ``2026-12-01T12:34:56.789+01:00 WARNING message``, local time with its
UTC offset (ISO 8601), so lines from machines in different zones, or from either side of a
daylight-saving change, sort and compare. The same format goes through the progress bar's
console when there is one (printed above the bar), and straight to standard error otherwise.

``json``: one ECS-shaped JSON object per line (``@timestamp``, ``log.level``, ``message``,
``log.logger``, ``error.*`` for exceptions), written by Elastic's ``ecs-logging`` formatter:
the format Filebeat and Elastic Agent parse as they are, which is what a log collector in
front of a SIEM expects from a shipper of ECS events. Extra figures (the heartbeat's) come as
their own fields.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import Any, Literal

__all__ = ["LOG_FORMATS", "TextFormatter", "json_formatter", "setup_logging"]

LOG_FORMATS = ("text", "json")


class TextFormatter(logging.Formatter):
    """``<ISO 8601 local time with offset> <LEVEL> <message>``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        when = datetime.fromtimestamp(record.created).astimezone()
        return when.isoformat(timespec="milliseconds")


def json_formatter() -> logging.Formatter:
    import ecs_logging

    class Formatter(ecs_logging.StdlibFormatter):
        """ECS lines, masked: the message is masked as the record is made, but ecs-logging
        writes an exception's message and stack from the exception itself (``error.*``)."""

        def format_to_ecs(self, record: logging.LogRecord) -> dict[str, Any]:
            return _masked(super().format_to_ecs(record))

    # where in our code a line was logged, and the process, are noise for an operator
    return Formatter(exclude_fields=["log.original", "log.origin", "process"])


def _masked(node: Any) -> Any:
    from shipper.redact import mask

    if isinstance(node, str):
        return mask(node)
    if isinstance(node, dict):
        return {k: _masked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_masked(v) for v in node]
    return node


class _ConsoleHandler(logging.Handler):
    """Writes formatted lines through a rich console, so that they print above a live
    progress bar instead of through it. No markup, no highlighting: the same text as
    without the bar."""

    def __init__(self, console: Any) -> None:
        super().__init__()
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


def setup_logging(
    verbose: bool = False,
    log_format: Literal["text", "json"] = "text",
    console: Any = None,
) -> None:
    """Root logging for a command: ``console`` is the progress bar's rich console, if any."""
    handler: logging.Handler
    if console is not None:
        handler = _ConsoleHandler(console)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # the loggers of an output's client library are quieted by that output, where it imports
    # the library (e.g. ``shipper.outputs.elasticsearch.transport``): this module names none
