"""NDJSON file output: exactly once by truncating back to the committed length.

A batch is appended and fsynced before ``send`` returns; the file's length after it travels in
the ``Ack`` state and is committed with the positions. On start, ``restore`` cuts the file back
to the committed length, removing whatever a crash left after the last commit (those events
are read and written again, because their positions were not committed either).

Rotation by size happens at the start of a ``send``: the pipeline commits every batch before
sending the next, so at that moment the whole active file is committed and can be renamed to
``<name>.1`` (older ones shift up; the oldest beyond ``keep_files`` is deleted). The active
file's identity is part of the state, so a crash between a rotation and the next commit is
recognised: the renamed file is complete, and the new active file is cut to zero.

The file is written through a plain descriptor, not in append mode: runs that decoders spooled
to files are moved in with ``sendfile``, which refuses an ``O_APPEND`` target. One shipper owns
a data dir (and so its output), so nothing else appends meanwhile.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shipper.config import NdjsonOutput
from shipper.errors import OutputFailed
from shipper.outputs.base import Ack, EventBatch
from shipper.sources.identity import file_key
from shipper.spool import Spooled, copy_spooled, write_all


class NdjsonFileOutput:
    needs_metadata = False

    def __init__(self, settings: NdjsonOutput) -> None:
        self.name = f"ndjson:{settings.path}"
        self.path = Path(settings.path)
        self.max_bytes = settings.max_bytes
        self.keep_files = settings.keep_files
        self._fd: int | None = None

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        os.lseek(fd, 0, os.SEEK_END)
        self._fd = fd
        return fd

    def restore(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._open()
        size = os.lseek(fd, 0, os.SEEK_END)
        if state is None:
            length = size  # a file we did not write: append to it, never cut it
        elif state["file"] == self._identity():
            length = state["length"]
        else:
            length = 0  # rotated after the last commit: all of it is uncommitted
        if size > length:
            os.ftruncate(fd, length)
            os.lseek(fd, length, os.SEEK_SET)
            os.fsync(fd)
        return {"length": length, "file": self._identity()} if state is None else None

    def send(self, batch: EventBatch) -> Ack:
        assert self._fd is not None
        try:
            if os.lseek(self._fd, 0, os.SEEK_CUR) >= self.max_bytes:
                self._rotate()
            fd = self._fd
            for run in batch.ndjson_runs():
                if isinstance(run, Spooled):
                    copy_spooled(run, fd)
                else:
                    write_all(fd, run)
            os.fsync(fd)
        except OSError as e:
            raise OutputFailed(f"{self.path}: cannot write: {e.strerror or e}") from e
        return Ack(
            delivered=len(batch),
            state={"length": os.lseek(fd, 0, os.SEEK_CUR), "file": self._identity()},
        )

    def _identity(self) -> str:
        assert self._fd is not None
        return file_key(os.fstat(self._fd), str(self.path))

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        for i in range(self.keep_files, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                if i == self.keep_files:
                    older.unlink()
                else:
                    older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
