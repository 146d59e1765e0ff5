"""NDJSON file output: one JSON event a line, exactly once by cutting back to the committed
length (see ``appendfile``), rotated by size."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from shipper.errors import OutputFailed
from shipper.outputs.appendfile import AppendFile, check_writable
from shipper.outputs.base import Ack, EventBatch
from shipper.private import FILE_MODE
from shipper.settings import FileMode, Size
from shipper.settings import Settings as _Settings


class Settings(_Settings):
    """One JSON event a line, fsynced before the checkpoint moves; rotated by size."""

    type: Literal["ndjson"] = "ndjson"
    path: str = "out/events.ndjson"
    max_bytes: Size = Field(default=256 * 10**6, gt=0, description="rotate at this size")
    keep_files: int = Field(default=10, ge=1, description="rotated files to keep")
    file_mode: FileMode = Field(default=FILE_MODE, description='of the files created ("0640")')


#: the name this model had in ``shipper.config``
NdjsonOutput = Settings


class NdjsonFileOutput:
    needs_metadata = False

    def __init__(self, settings: Settings) -> None:
        self.name = settings.display_name()
        self.path = Path(settings.path)
        self._file = AppendFile(
            self.path, settings.max_bytes, settings.keep_files, settings.file_mode
        )

    def restore(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        return self._file.restore(state)

    def send(self, batch: EventBatch) -> Ack:
        try:
            self._file.rotate_if_full()
            self._file.write(batch.ndjson_runs())
            state = self._file.sync()
        except OSError as e:
            raise OutputFailed(f"{self.path}: cannot write: {e.strerror or e}") from e
        return Ack(delivered=len(batch), state=state)

    def close(self) -> None:
        self._file.close()


def build(settings: Settings, data_dir: Path) -> NdjsonFileOutput:
    return NdjsonFileOutput(settings)


def check(settings: Settings, data_dir: Path) -> str:
    return check_writable(settings.path)
