"""Standard output: one JSON event a line, for piping into jq or another shipper.

Delivery means the bytes reached the pipe (flushed); a closed pipe stops the output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from shipper.errors import OutputFailed
from shipper.outputs.base import Ack, EventBatch
from shipper.settings import Settings as _Settings


class Settings(_Settings):
    """One JSON event a line on standard output (for piping into other tools)."""

    type: Literal["stdout"] = "stdout"


class StdoutOutput:
    name = "stdout"
    needs_metadata = False

    def restore(self, state: dict[str, Any] | None) -> None:
        return None

    def send(self, batch: EventBatch) -> Ack:
        if len(batch):
            try:
                sys.stdout.buffer.writelines(batch.ndjson())
                sys.stdout.buffer.flush()
            except (BrokenPipeError, ValueError) as e:
                raise OutputFailed("stdout is closed") from e
        return Ack(delivered=len(batch))

    def close(self) -> None:
        pass


def build(settings: Settings, data_dir: Path) -> StdoutOutput:
    return StdoutOutput()


def check(settings: Settings, data_dir: Path) -> str:
    return "standard output"
