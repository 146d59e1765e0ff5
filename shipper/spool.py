"""Spool files: how decoder processes hand big runs of documents back to the pipeline.

Decoded events are about a kilobyte each; sending them back through the process pool's pipe
means pickling, two kernel copies and unpickling: several gigabytes of copying per million
events. A spool file costs one write, and the NDJSON output moves it into place with
``sendfile``, inside the kernel. Its own module because both sides use it: the decoder
processes, which must stay light to import, and the outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Spooled:
    """A run of NDJSON that a decoder process wrote to a file of its own (``length`` bytes);
    the pipeline deletes it once the batch is committed."""

    path: str
    length: int

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def copy_spooled(run: Spooled, fd: int) -> None:
    """Append ``run`` to the file open as ``fd`` at its current position."""
    with open(run.path, "rb") as src:
        done = 0
        sendfile = getattr(os, "sendfile", None)
        if sendfile is not None:
            try:
                while done < run.length:
                    sent = sendfile(fd, src.fileno(), done, run.length - done)
                    if sent == 0:
                        break
                    done += sent
            except OSError:
                pass  # not between these two files here: copy through memory
        src.seek(done)
        while done < run.length:
            block = src.read(min(run.length - done, 1 << 20))
            if not block:
                raise OSError(f"{run.path}: spool file shorter than {run.length} bytes")
            write_all(fd, block)
            done += len(block)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


#: documents per writev call: two buffers each (the document, its line break), under the
#: IOV_MAX of 1024 that Linux and the BSDs have
_PER_WRITEV = 500
_NL = b"\n"


def write_lines(fd: int, docs: list[bytes]) -> int:
    """Write ``docs`` as lines; returns the bytes written.

    With ``writev`` the kernel gathers them itself: joining them first would build a copy of
    a chunk's whole output (megabytes) in memory, only to copy it again into the file.
    """
    writev = getattr(os, "writev", None)  # not on Windows
    if writev is None:
        data = _NL.join([*docs, b""])
        write_all(fd, data)
        return len(data)
    total = 0
    for i in range(0, len(docs), _PER_WRITEV):
        iov = [part for doc in docs[i : i + _PER_WRITEV] for part in (doc, _NL)]
        size = sum(map(len, iov))
        done = writev(fd, iov)
        if done < size:  # a short write (a full disk says so on the retry): finish it by hand
            write_all(fd, memoryview(b"".join(iov))[done:])
        total += size
    return total
