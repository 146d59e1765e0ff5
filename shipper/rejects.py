"""The one writer of rejected records: quarantined input and dead-lettered events.

Both are JSONL files a person reads after something went wrong, and both must be on disk before
the checkpoint moves past what they hold, so they share one writer: appended, fsynced, cut back
off after a failed write (``AppendFile``), rotated by size. The quarantine also commits its
length with the checkpoint, so a crash never leaves an entry twice; a dead-letter file is
appended to as it is (a re-sent batch may dead-letter an event again; its id tells).

A raw record is kept whole up to ``RAW_LIMIT`` characters; beyond that, its start with its size
and SHA-256, so that a 50 MB line does not make a 50 MB entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from shipper.outputs.appendfile import AppendFile

__all__ = ["RAW_LIMIT", "RejectFile", "capped"]

#: characters of a rejected record's raw text kept in its entry
RAW_LIMIT = 64 * 1024


class RejectFile:
    def __init__(self, path: Path, max_bytes: int = 256 * 10**6, keep_files: int = 10) -> None:
        self.path = Path(path)
        self._file = AppendFile(self.path, max_bytes, keep_files)
        self._open = False

    def restore(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        """As ``AppendFile.restore``: cut back to the committed length (the quarantine)."""
        self._open = True
        return self._file.restore(state)

    def append(self, entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Write ``entries`` durably; returns the file's state to commit (see ``restore``)."""
        if not self._open:  # created on first use: no empty dead-letter files
            self.restore(None)
        self._file.rotate_if_full()
        self._file.write([b"".join(orjson.dumps(e) + b"\n" for e in entries)])
        return self._file.sync()

    def close(self) -> None:
        self._file.close()


def capped(entry: dict[str, Any], field: str = "raw") -> dict[str, Any]:
    """``entry`` with its ``field`` cut to ``RAW_LIMIT`` characters, the whole's size in bytes
    and SHA-256 beside it (``<field>_truncated``)."""
    raw = entry.get(field)
    if isinstance(raw, str) and len(raw) > RAW_LIMIT:
        whole = raw.encode("utf-8", "surrogatepass")
        entry[field] = raw[:RAW_LIMIT]
        entry[f"{field}_truncated"] = {
            "bytes": len(whole),
            "sha256": hashlib.sha256(whole).hexdigest(),
        }
    return entry
