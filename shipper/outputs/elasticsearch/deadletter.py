"""Documents the cluster refused for good, kept as JSONL so none is lost silently.

One line per document: when, which output and index, the event id, the HTTP status and the
server's error, and the document itself (as JSON when it parses, else as a string). The file is
fsynced before ``send`` acknowledges, because the acknowledgement lets the checkpoint move past
these events. Re-ingest with any bulk tool after fixing the mapping; the ids make that
idempotent.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson

from shipper.errors import OutputFailed


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
                orjson.dumps(
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
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as f:
                f.write(b"\n".join(lines) + b"\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise OutputFailed(f"dead-letter file {self.path}: cannot write: {e.strerror}") from e
        self.written += len(entries)
