"""Documents a destination refused for good, kept as JSONL so none is lost silently.

One line per document: when, which output and index, the event id, the status and the
server's error, and the document itself (as JSON when it parses, else as a string). Written
through ``shipper.rejects`` (fsynced before ``send`` acknowledges, because the acknowledgement
lets the checkpoint move past these events). Re-ingest with any bulk tool after fixing the
mapping; the ids make that idempotent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from shipper.errors import OutputFailed, RetryLater
from shipper.rejects import RejectFile


class DeadLetterFile:
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
