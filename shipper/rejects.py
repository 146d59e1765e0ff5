"""The one writer of rejected records: quarantined input (``RejectFile``, used by the
pipeline's quarantine) and dead-lettered events (``DeadLetterFile``, used by every output a
destination can refuse a document to for good: Elasticsearch/OpenSearch, syslog).

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
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from shipper.errors import OutputFailed, RetryLater
from shipper.outputs.appendfile import AppendFile

__all__ = ["RAW_LIMIT", "DeadLetterFile", "RejectFile", "capped"]

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


class DeadLetterFile:
    """Documents a destination refused for good, kept as JSONL so none is lost silently.

    One line per document: when, which output and index, the event id, the status and the
    server's error, and the document itself (as JSON when it parses, else as a string). Written
    through ``RejectFile`` (fsynced before ``send`` acknowledges, because the acknowledgement
    lets the checkpoint move past these events). Re-ingest with any bulk tool after fixing the
    cause; the ids make that idempotent. It lives here, not in an output, so that no output
    imports another.
    """

    def __init__(self, path: Path, output: str) -> None:
        self.path = Path(path)
        self.output = output
        self.written = 0

    def write(self, entries: list[tuple[str, str, int | None, Any, bytes]]) -> None:
        """Append ``(index, id, status, error, doc)`` entries durably."""
        if not entries:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        lines = []
        for index, doc_id, status, error, doc in entries:
            try:
                parsed: Any = orjson.loads(doc)
                key = "doc"
            except orjson.JSONDecodeError:
                parsed, key = doc.decode("utf-8", "replace"), "doc_raw"
            lines.append(
                {
                    "time": now,
                    "output": self.output,
                    "index": index,
                    "id": doc_id,
                    "status": status,
                    "error": error,
                    key: parsed,
                }
            )
        rejects = RejectFile(self.path)  # opened for the write only: dead letters are rare
        try:
            rejects.append(lines)  # (the folder made owner-only)
        except (OSError, RetryLater, OutputFailed) as e:
            why = e.strerror if isinstance(e, OSError) else str(e)
            raise OutputFailed(f"dead-letter file {self.path}: cannot write: {why}") from e
        finally:
            rejects.close()
        self.written += len(entries)
