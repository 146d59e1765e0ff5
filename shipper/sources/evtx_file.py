"""Binary ``.evtx`` files, read with the Rust-backed ``evtx`` package.

An .evtx file is a 4 KiB file header followed by 64 KiB chunks, and no record crosses a chunk
boundary. Positions are byte offsets of chunk boundaries, so a ``Chunk`` is a run of whole evtx
chunks: ``decode`` hands the parser the file header plus just those chunks, which is enough
(the parser walks chunks by size, not by the header's count). Resuming at ``chunk.end`` thus
neither skips nor repeats a record, and workers parse different parts of one file at once.

Damaged files: the parser's iterator raises for a bad chunk or record and can be resumed
afterwards, so each error costs only what it names. Every error is counted as a quarantined
record with the parser's reason (chunk numbers rewritten to be absolute in the file).

Records are rendered to XML and read by the same code as event XML exports, so an event
ships identically from an .evtx and from its ``wevtutil`` export; the record's own
``timestamp`` is used because it keeps the 100 ns precision the XML rendering truncates.
While a file is still being written (``final`` false) only complete 64 KiB chunks are read.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from functools import cache
from typing import Any, BinaryIO

from evtx import PyEvtxParser

from shipper.sources.base import Chunk, Decoded
from shipper.sources.eventxml import parse_event_xml
from shipper.sources.text import emit, quarantine

MAGIC = b"ElfFile\x00"
HEADER = 4096
EVTX_CHUNK = 65536
CHUNKS_PER_BATCH = 16
_CHUNK_NO = re.compile(r"chunk number (\d+)")


class EvtxFile:
    """The ``evtx`` format."""

    name = "evtx"

    def sniff(self, head: bytes, path: str) -> bool:
        return head.startswith(MAGIC)

    def chunks(
        self,
        f: BinaryIO,
        path: str,
        start: int,
        state: str,
        final: bool,
        options: dict[str, object],
    ) -> Iterator[Chunk]:
        size = f.seek(0, io.SEEK_END)
        pos = max(start, HEADER)
        if size <= HEADER:
            return
        whole = HEADER + (size - HEADER) // EVTX_CHUNK * EVTX_CHUNK
        limit = size if final else whole
        step = CHUNKS_PER_BATCH * EVTX_CHUNK
        while pos < limit:
            end = min(pos + step, limit)
            yield Chunk(
                format=self.name,
                path=path,
                start=pos,
                end=end,
                state_in="",
                state_out="",
                options=options,
            )
            pos = end

    def decode(self, chunk: Chunk) -> Decoded:
        return decode(chunk)


EVTX = EvtxFile()


@cache
def _normalise() -> Any:
    from shipper.normalise.winlog import normalise

    return normalise


def _records(chunk: Chunk) -> tuple[bytes, int]:
    with open(chunk.path, "rb") as f:
        header = f.read(HEADER)
        f.seek(chunk.start)
        body = f.read(chunk.end - chunk.start)
    return header + body, (chunk.start - HEADER) // EVTX_CHUNK


def decode(chunk: Chunk) -> Decoded:
    """Parse the chunk's evtx chunks; each parser error is quarantined and parsing goes on."""
    out = Decoded()
    try:
        data, first_chunk = _records(chunk)
    except OSError as e:
        quarantine(out, chunk.path, None, chunk.start, f"cannot read: {e.strerror}", "")
        return out
    if data[:8] != MAGIC:
        out.refused = f"{chunk.path}: not an .evtx file (no ElfFile header)"
        return out
    keep = bool(chunk.options.get("keep_original", False))
    normalise = _normalise()
    parser = PyEvtxParser(io.BytesIO(data), number_of_threads=1, indent=False)
    records = parser.records()
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except (RuntimeError, OSError, ValueError) as e:
            reason = _CHUNK_NO.sub(
                lambda m: f"chunk number {int(m.group(1)) + first_chunk}", str(e)
            )
            at = chunk.start + _relative_chunk(str(e)) * EVTX_CHUNK
            quarantine(out, chunk.path, None, at, f"evtx: {reason}", "")
            continue
        xml = record["data"]
        rid = record.get("event_record_id")
        try:
            rec = parse_event_xml(xml)
        except Exception as e:  # noqa: BLE001 - a record the XML parser rejects costs only itself
            quarantine(out, chunk.path, None, chunk.start, f"evtx record {rid}: {e}", xml)
            continue
        stamp = record.get("timestamp")
        if stamp:
            rec["time"] = _full_precision(stamp, rec.get("time"))
        if rec.get("record_id") is None and rid is not None:
            rec["record_id"] = rid
        if keep:
            rec["original"] = xml
        emit(out, normalise, rec, chunk.path, None, chunk.start, xml)
    return out


def _relative_chunk(message: str) -> int:
    m = _CHUNK_NO.search(message)
    return int(m.group(1)) if m else 0


def _full_precision(stamp: str, fallback: str | None) -> str:
    """``2021-03-31T23:51:45.0187674Z UTC`` (the record header's time) as ``...Z``."""
    stamp = stamp.removesuffix(" UTC").strip()
    if stamp.endswith("Z"):
        return stamp
    return fallback or stamp
