"""A file an output only appends to, exactly once: cut back to the committed length on start.

The file outputs (NDJSON, CSV) share this. A batch is appended and fsynced before ``send``
returns; the file's length after it travels in the ``Ack`` state (``state()``) and is committed
with the positions. ``restore`` cuts the file back to the committed length, removing whatever a
crash left after the last commit (those events are read and written again, because their
positions were not committed either).

Rotation by size happens at the start of a ``send`` (``rotate_if_full``): the pipeline commits
every batch before sending the next, so at that moment the whole active file is committed and
can be renamed to ``<name>.1`` (older ones shift up; the oldest beyond ``keep_files`` is
deleted). The active file's identity is part of the state, so a crash between a rotation and
the next commit is recognised: the renamed file is complete, and the new active file is cut to
zero.

The file is written through a plain descriptor, not in append mode: runs that decoders spooled
to files are moved in with ``sendfile``, which refuses an ``O_APPEND`` target. One shipper owns
a data dir (and so its outputs), so nothing else appends meanwhile.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shipper.errors import OutputFailed
from shipper.private import FILE_MODE, dir_mode_for, make_dirs, open_new
from shipper.sources.identity import file_key
from shipper.spool import Spooled, copy_spooled, write_all


class AppendFile:
    def __init__(self, path: Path, max_bytes: int, keep_files: int, mode: int = FILE_MODE) -> None:
        """``mode``: of the files created (the active one, and each after a rotation) and,
        readable alike, of the folders made for them; owner-only unless an output says
        otherwise (``shipper.private``)."""
        self.path = path
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        self.mode = mode
        self._fd: int | None = None

    def _open(self) -> int:
        fd = open_new(self.path, os.O_WRONLY | getattr(os, "O_BINARY", 0), self.mode)
        self._synced = os.lseek(fd, 0, os.SEEK_END)  # where the last fsync left the file
        self._fd = fd
        return fd

    def restore(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        """Open the file, cut off what was written after ``state`` (the last committed
        ``state()``); with no state, a file already there is kept whole and a state to commit
        at once is returned."""
        try:
            return self._restore(state)
        except OSError as e:
            raise OutputFailed(f"{self.path}: cannot open: {e.strerror or e}") from e

    def _restore(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        make_dirs(self.path.parent, dir_mode_for(self.mode))
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
            self._synced = length
        return self.state() if state is None else None

    @property
    def length(self) -> int:
        """Bytes in the active file (where the next write goes)."""
        assert self._fd is not None
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def rotate_if_full(self) -> None:
        """Call before writing a batch (when everything written so far is committed)."""
        if self.length >= self.max_bytes:
            self._rotate()

    def write(self, runs: Iterable[bytes | Spooled]) -> None:
        """Append, in order; spooled runs are copied file to file.

        A write that fails (disk full, I/O error) is cut back off, so that the batch can be
        written again whole: a retry never follows half a batch.
        """
        assert self._fd is not None
        fd = self._fd
        start = self.length
        try:
            for run in runs:
                if isinstance(run, Spooled):
                    copy_spooled(run, fd)
                else:
                    write_all(fd, run)
        except OSError as e:
            self._cut_back(start)
            raise self._failure("write", e) from None

    def sync(self) -> dict[str, Any]:
        """fsync, and the state that says so (goes into the ``Ack``)."""
        assert self._fd is not None
        try:
            os.fsync(self._fd)
        except OSError as e:
            self._cut_back(self._synced)  # what did not reach the disk is written again whole
            raise self._failure("flush", e) from None
        self._synced = self.length
        return self.state()

    def cut_back(self, length: int) -> None:
        """Forget what was written after ``length`` (an output writing several files undoes a
        batch in all of them when one fails)."""
        self._cut_back(length)

    def _cut_back(self, length: int) -> None:
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, length)
        except OSError:
            pass  # the next start cuts it back to the committed length anyway
        os.lseek(self._fd, length, os.SEEK_SET)

    def _failure(self, what: str, e: OSError) -> Exception:
        """Disk full is worth waiting for (space is freed, a volume grows); anything else
        needs a person. Either way nothing of the batch is committed."""
        from shipper.errors import OutputFailed, RetryLater

        if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return RetryLater(f"{self.path}: disk full; waiting for free space")
        return OutputFailed(f"{self.path}: cannot {what}: {e.strerror or e}")

    def state(self) -> dict[str, Any]:
        return {"length": self.length, "file": self._identity()}

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


def check_writable(path: str | Path) -> str:
    """``check`` for a file output: the folder exists or can be created, and is writable."""
    folder = Path(path).resolve().parent
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputFailed(f"{path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK):
        raise OutputFailed(f"{path}: {probe} is not writable")
    return f"{path}: writable"
