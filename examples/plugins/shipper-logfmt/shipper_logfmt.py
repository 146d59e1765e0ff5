"""Example shipper output: one logfmt line per event (``key=value ...``, as Grafana Loki,
Heroku and many command-line tools read), appended to a file, exactly once.

What a shipper output module provides (see shipper's README, "Writing a plugin"):

* ``Settings``: a ``shipper.settings.Settings`` (unknown keys are errors) with
  ``type: Literal["<entry point name>"]``;
* ``build(settings, data_dir)`` returning the output: ``restore(state)``, ``send(batch)`` ->
  ``Ack`` once the batch is durable (or ``RetryLater`` / ``OutputFailed``), ``close()``, ``name``,
  ``needs_metadata``;
* optionally ``check(settings, data_dir) -> str`` for ``shipper check --outputs``.

Exactly once comes from shipper's ``AppendFile``: the file's committed length travels in the
``Ack`` state and a restart cuts off whatever a crash left after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field

from shipper.errors import OutputFailed
from shipper.outputs.appendfile import AppendFile, check_writable
from shipper.outputs.base import Ack, EventBatch, ecs_field
from shipper.settings import Settings as _Settings
from shipper.settings import Size

DEFAULT_FIELDS = ["@timestamp", "event.dataset", "event.id", "event.action", "user.name"]


class Settings(_Settings):
    type: Literal["logfmt"] = "logfmt"
    path: str = "out/events.logfmt"
    fields: list[str] = Field(default_factory=lambda: list(DEFAULT_FIELDS), min_length=1)
    max_bytes: Size = Field(default=100 * 10**6, gt=0)
    keep_files: int = Field(default=5, ge=1)


def _value(v: Any) -> str:
    text = v if isinstance(v, str) else orjson.dumps(v).decode()
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    return orjson.dumps(text).decode()  # quoted, with escapes: one event stays one line


class LogfmtOutput:
    needs_metadata = False  # reads everything from the documents

    def __init__(self, settings: Settings) -> None:
        self.name = f"logfmt:{settings.path}"
        self.fields = settings.fields
        self._file = AppendFile(Path(settings.path), settings.max_bytes, settings.keep_files)

    def restore(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        return self._file.restore(state)

    def send(self, batch: EventBatch) -> Ack:
        lines = []
        for doc in batch.docs:
            event = orjson.loads(doc)
            pairs = ((f, ecs_field(event, f)) for f in self.fields)
            lines.append(" ".join(f"{k}={_value(v)}" for k, v in pairs if v is not None))
        try:
            self._file.rotate_if_full()
            self._file.write([("\n".join(lines) + "\n").encode()] if lines else [])
            state = self._file.sync()
        except OSError as e:
            raise OutputFailed(f"{self.name}: cannot write: {e.strerror or e}") from e
        return Ack(delivered=len(batch), state=state)

    def close(self) -> None:
        self._file.close()


def build(settings: Settings, data_dir: Path) -> LogfmtOutput:
    return LogfmtOutput(settings)


def check(settings: Settings, data_dir: Path) -> str:
    return check_writable(settings.path)
