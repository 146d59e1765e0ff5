"""Azure RMS usage logs in the W3C extended log format.

Microsoft advises checking ``#Software: RMS`` and ``#Version: 1.x`` before parsing; a file whose
first header block says otherwise is refused whole. Values are bound by the names in the active
``#Fields`` line, which may change when downloaded blobs were concatenated (a header block can
repeat mid-file, with another order or added fields), so the active header travels in the
position's ``state`` and a chunk that starts mid-file knows it.

Hand-written because no maintained library reads W3C extended logs with per-line error
isolation, byte offsets and resumable header state; the format itself is a few rules.

Encodings: UTF-8 with or without BOM, and UTF-16LE/BE with BOM (PowerShell's defaults), with LF
or CRLF. The byte offset of every line is kept exact in all of them (``log.offset``, resume).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, BinaryIO

from shipper.errors import RecordRejected
from shipper.sources.base import Chunk, Decoded, FileRefused, Quarantine
from shipper.sources.encoding import NEWLINE, UNIT, sniff_encoding
from shipper.sources.limits import HEAD, Skip, max_record_bytes, oversized, skip_chunk
from shipper.sources.limits import reason as oversize_reason

BLOCK = 512 * 1024


class _Header:
    """What the ``#`` directives seen so far say; serialised into the position's state."""

    __slots__ = ("encoding", "software", "version", "fields", "line", "skip")

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding
        self.software: str | None = None
        self.version: str | None = None
        self.fields: list[str] | None = None
        self.line = 1  # number of the next line, for quarantine reports after a resume
        #: inside an oversized line already quarantined, whose end was not written yet
        self.skip = False

    @classmethod
    def load(cls, state: str) -> _Header:
        h = cls()
        if state:
            d = json.loads(state)
            h.encoding, h.software, h.version, h.fields, h.line = (
                d["encoding"],
                d["software"],
                d["version"],
                d["fields"],
                d["line"],
            )
            h.skip = d.get("skip", False)
        return h

    def dump(self) -> str:
        return json.dumps(
            {
                "encoding": self.encoding,
                "software": self.software,
                "version": self.version,
                "fields": self.fields,
                "line": self.line,
                **({"skip": True} if self.skip else {}),
            }
        )

    def apply(self, line: str) -> None:
        name, _, value = line[1:].partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "software":
            self.software, self.version, self.fields = value, None, None
        elif name == "version":
            self.version = value
        elif name == "fields":
            self.fields = value.split("\t") if "\t" in value else value.split()

    def problem(self) -> str | None:
        """Why records under this header cannot be read as RMS usage, or None."""
        if self.software is None:
            return "no '#Software:' line before the records"
        if self.software != "RMS":
            return f"'#Software: {self.software}' is not 'RMS'"
        if self.version is None or not self.version.startswith("1."):
            return f"'#Version: {self.version}' is not 1.x"
        if not self.fields:
            return "no '#Fields:' line before the records"
        return None


def _last_newline(block: bytes | bytearray, enc: str, base: int, lo: int = 0) -> int:
    """End (exclusive) of the last complete line in ``block[lo:]``, 0 if none.

    For UTF-16 the newline's two bytes must sit on a code-unit boundary (``base`` is the
    block's file offset minus the BOM), or a CJK character could pass for one.
    """
    nl = NEWLINE[enc]
    lo = max(lo, 0)
    if len(nl) == 1:
        return block.rfind(nl, lo) + 1
    end = len(block)
    while True:
        i = block.rfind(nl, lo, end)
        if i < 0:
            return 0
        if (base + i) % 2 == 0:
            return i + 2
        end = i + 1


def _first_newline(block: bytes | bytearray, enc: str, base: int) -> int:
    """End (exclusive) of the first line in ``block``, 0 if there is no line end."""
    nl = NEWLINE[enc]
    i = block.find(nl)
    while i >= 0 and (base + i) % len(nl):
        i = block.find(nl, i + 1)
    return i + len(nl) if i >= 0 else 0


def _skip_line(f: BinaryIO, pos: int, enc: str, bom: int, final: bool) -> tuple[int, bool]:
    """Read from ``pos`` to just past the next line end, a block at a time, keeping nothing:
    (where the line ends, whether it did). Without a line end before EOF, the line ends at
    EOF when ``final``; else it is still being written, and the answer stops at the last
    whole character, so that a line end cannot be split between this read and the next."""
    unit = UNIT[enc]
    while True:
        f.seek(pos)
        buf = f.read(BLOCK)
        i = _first_newline(buf, enc, pos - bom)
        if i:
            return pos + i, True
        end = pos + len(buf)
        end -= (end - bom) % unit
        if len(buf) < BLOCK:
            return end, final
        pos = end


def _has_directive(payload: bytes | bytearray, enc: str) -> bool:
    """Whether a line of ``payload`` starts with ``#``.

    ``#`` is rare inside records, so looking for it alone (memchr) and checking what precedes
    each hit is much faster than searching for newline-then-``#``.
    """
    if enc != "utf-8":
        nl = NEWLINE[enc]
        return payload.startswith(nl.replace(b"\n", b"#")) or (nl + "#".encode(enc)) in payload
    i = payload.find(b"#")
    while i >= 0:
        if i == 0 or payload[i - 1] == 0x0A:
            return True
        i = payload.find(b"#", i + 1)
    return False


class W3cRms:
    """The ``w3c_rms`` format: chunking in the main process, ``decode`` in workers."""

    name = "w3c_rms"
    exact_time = True  # date and time are fields of the record, in UTC

    def sniff(self, head: bytes, path: str) -> bool:
        enc, skip = sniff_encoding(head)
        try:
            text = head[skip:].decode(enc, errors="ignore")
        except LookupError:
            return False
        return text.startswith("#")

    def chunks(
        self,
        f: BinaryIO,
        path: str,
        start: int,
        state: str,
        final: bool,
        options: dict[str, object],
    ) -> Iterator[Chunk]:
        header = _Header.load(state)
        pos = start
        bom = 0
        if start == 0:
            f.seek(0)
            head = f.read(4)
            header.encoding, bom = sniff_encoding(head)
            pos = bom
        enc = header.encoding
        nl = NEWLINE[enc]
        verified = header.problem() is None
        size = os.fstat(f.fileno()).st_size
        limit = max_record_bytes(options)
        if header.skip:  # the rest of an oversized line, quarantined when it was seen
            end, complete = _skip_line(f, pos, enc, bom, final)
            if end == pos:
                return
            yield self._skipped(path, Skip(pos, end, b"", complete, True), header, options)
            if not complete:
                return
            pos = end
        while True:
            f.seek(pos)
            # never ask for more than is there: a 2 MiB buffer per tiny file adds up. A
            # bytearray, so that cutting it at the last line break below copies nothing
            block = bytearray(max(min(BLOCK, size - pos), 1))
            del block[f.readinto(block) :]
            if not block:
                return
            at_eof = len(block) < BLOCK
            cut = _last_newline(block, enc, pos - bom)
            while cut == 0 and not at_eof and len(block) <= limit:  # a line over a block
                more = f.read(BLOCK)
                at_eof = len(more) < BLOCK
                old = len(block)
                block += more
                # only the new bytes can hold it (one byte back: a UTF-16 line end may
                # straddle the two reads); looking from the start again would be quadratic
                cut = _last_newline(block, enc, pos - bom, old - 1)
            if cut == 0 and not at_eof:  # too long to read: skip it, keeping its beginning
                end, complete = _skip_line(f, pos + len(block), enc, bom, final)
                skip = Skip(pos, end, bytes(block[:HEAD]), complete)
                del block
                yield self._skipped(path, skip, header, options)
                if not complete:
                    return
                pos = end
                continue
            if at_eof and final and cut < len(block):
                cut = len(block) - (len(block) % UNIT[enc])  # EOF completes the last line
            if cut == 0:
                return  # a partial line: wait until it is complete
            del block[cut:]
            payload = block
            state_in = header.dump()
            if _has_directive(payload, enc):
                for text in payload.decode(enc, errors="replace").split("\n"):
                    if text.startswith("#"):
                        header.apply(text.rstrip("\r"))
                    elif not verified and text.strip():
                        self._verify(header, path)
                        verified = True
            if not verified and (final or header.problem() is None):
                self._verify(header, path)
                verified = True
            first_line = header.line
            header.line += (
                payload.count(nl) if enc == "utf-8" else payload.decode(enc, "replace").count("\n")
            )
            yield Chunk(
                format=self.name,
                path=path,
                start=pos,
                end=pos + cut,
                state_in=state_in,
                state_out=header.dump(),
                payload=payload,
                first_line=first_line,
                options=options,
            )
            pos += cut
            if at_eof:
                return

    def _skipped(self, path: str, skip: Skip, header: _Header, options: dict[str, object]) -> Chunk:
        """The chunk standing for an oversized line; the header learns whether it ended."""
        state_in = header.dump()
        first_line = header.line
        header.skip = not skip.complete
        if skip.complete:
            header.line += 1
        return skip_chunk(self.name, path, skip, state_in, header.dump(), first_line, options)

    @staticmethod
    def _verify(header: _Header, path: str) -> None:
        problem = header.problem()
        if problem is not None:
            raise FileRefused(f"{path}: not an RMS usage log: {problem}")

    def decode(self, chunk: Chunk) -> Decoded:
        return decode(chunk)


W3C_RMS = W3cRms()


@cache
def _normaliser(settings: tuple[bool, str]) -> Any:
    """One normaliser per process and settings: (keep_original, enrichment options as JSON)."""
    from shipper.normalise.enrich import Enricher
    from shipper.normalise.rms import RmsNormaliser

    keep_original, enrich = settings
    return RmsNormaliser(keep_original, Enricher.from_options(json.loads(enrich)))


@cache
def _bound(
    settings: tuple[bool, str], fields: tuple[str, ...]
) -> Callable[..., tuple[str, str, bytes]]:
    return _normaliser(settings).bind_json(list(fields))


def _lines(chunk: Chunk, enc: str) -> Iterator[tuple[str | None, bytes, int]]:
    """(text or None if undecodable, raw bytes, byte length including the line break)."""
    if enc == "utf-8":
        parts = chunk.payload.split(b"\n")
        if parts and not parts[-1]:
            parts.pop()
        for raw in parts:
            try:
                yield raw.decode("utf-8"), raw, len(raw) + 1
            except UnicodeDecodeError:
                yield None, raw, len(raw) + 1
        return
    nl = NEWLINE[enc]
    payload = chunk.payload
    i, n = 0, len(payload)
    while i < n:
        j = payload.find(nl, i)
        while j >= 0 and (j - i) % 2:
            j = payload.find(nl, j + 1)
        end = n if j < 0 else j
        raw = payload[i:end]
        try:
            text: str | None = raw.decode(enc)
        except UnicodeDecodeError:
            text = None
        yield text, raw, end - i + (2 if j >= 0 else 0)
        i = end + 2


def decode(chunk: Chunk) -> Decoded:
    """Parse, normalise and encode a chunk of W3C lines. Bad lines are quarantined, not fatal.

    A UTF-8 chunk that decodes as a whole (nearly all of them) is split into lines as one
    string; anything else goes line by line, so that an undecodable line costs only itself.
    """
    info = oversized(chunk)
    if info is not None:
        return _oversized(chunk, info)
    state = _Decoding(chunk)
    if state.header.encoding == "utf-8":
        try:
            text = chunk.payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return _decode_text(state, text)
    return _decode_lines(state)


def _oversized(chunk: Chunk, info: dict[str, Any]) -> Decoded:
    """A chunk standing for a line over ``max_record_bytes``: quarantined with its first bytes
    (once: the rest of a line reported while still being written is not reported again)."""
    out = Decoded()
    if not info.get("continued"):
        enc = _Header.load(chunk.state_in).encoding
        head = bytes(chunk.payload)
        text = head[: len(head) - len(head) % UNIT[enc]].decode(enc, "replace")
        why = oversize_reason(
            int(info["size"]), max_record_bytes(chunk.options), bool(info.get("complete"))
        )
        out.quarantined.append(Quarantine(chunk.path, chunk.first_line, chunk.start, why, text))
    return out


def _too_long(state: _Decoding, line: int, offset: int, size: int, text: str) -> None:
    """A line over the bound inside an ordinary chunk (the reader skips those that are
    longer than its read blocks; this holds shorter ones to the same bound)."""
    why = oversize_reason(size, max_record_bytes(state.chunk.options))
    state.reject(line, offset, why, text[:HEAD])


class _Decoding:
    """What a chunk's decoding knows: the active header, its bound normaliser, the results."""

    def __init__(self, chunk: Chunk) -> None:
        self.chunk = chunk
        self.header = _Header.load(chunk.state_in)
        # the normaliser's settings, hashable: (keep_original, enrichment options as JSON)
        self.keep = (
            bool(chunk.options.get("keep_original", False)),
            json.dumps(chunk.options.get("enrich") or {}, sort_keys=True),
        )
        self.out = Decoded()
        self.bind: Callable[..., tuple[str, str, bytes]] | None = None
        self.nfields = 0
        self._bind()

    def _bind(self) -> None:
        header = self.header
        self.problem = header.problem()
        if self.problem is None and header.fields:
            self.bind = _bound(self.keep, tuple(header.fields))
            self.nfields = len(header.fields)
        else:
            self.bind = None

    def reject(self, line: int, offset: int, reason: str, raw: str) -> None:
        self.out.quarantined.append(Quarantine(self.chunk.path, line, offset, reason, raw))

    def other(self, line: int, offset: int, text: str) -> None:
        """A line that is not a record of the right shape: blank, a directive, or bad."""
        if not text:
            return
        if text[0] == "#":
            self.header.apply(text)
            self._bind()
        elif self.bind is None:
            self.reject(line, offset, f"record under an unusable header: {self.problem}", text)
        else:
            found = text.count("\t") + 1
            self.reject(
                line, offset, f"expected {self.nfields} tab-separated fields, found {found}", text
            )

    def done(self) -> Decoded:
        self.out.datasets = ["azure_rms.usage"] * len(self.out.docs)
        return self.out


def _decode_text(state: _Decoding, text: str) -> Decoded:
    """The hot loop: one pass over the chunk's lines, a record taking the shortest path."""
    chunk, out = state.chunk, state.out
    path, first, offset = chunk.path, chunk.first_line, chunk.start
    done: list[tuple[str, str, bytes]] = []  # (id, @timestamp, document) of each record
    keep = done.append
    bind, nfields = state.bind, state.nfields
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    crlf = "\r" in text
    limit = max_record_bytes(chunk.options)
    for i, line in enumerate(lines):
        size = len(line) + 1 if line.isascii() else len(line.encode()) + 1
        if size > limit:
            _too_long(state, first + i, offset, size, line)
            offset += size
            continue
        if crlf and line[-1:] == "\r":
            line = line[:-1]
        if bind is not None and line and line[0] != "#":
            values = line.split("\t")
            if len(values) == nfields:
                try:
                    keep(bind(values, path, offset, line))
                except RecordRejected as e:
                    state.reject(first + i, offset, str(e), line)
                offset += size
                continue
        state.other(first + i, offset, line)
        bind, nfields = state.bind, state.nfields  # a directive may have changed them
        offset += size
    if done:
        ids, stamps, docs = zip(*done, strict=True)
        out.ids, out.timestamps, out.docs = list(ids), list(stamps), list(docs)
    return state.done()


def _decode_lines(state: _Decoding) -> Decoded:
    """Line by line, for UTF-16 and for chunks with bytes that are not text."""
    chunk, out = state.chunk, state.out
    enc = state.header.encoding
    offset, line = chunk.start, chunk.first_line
    limit = max_record_bytes(chunk.options)
    for text, raw, size in _lines(chunk, enc):
        if size > limit:
            _too_long(state, line, offset, size, text or raw.decode(enc, "backslashreplace"))
        elif text is None:
            reason = f"bytes that are not {enc} text"
            state.reject(line, offset, reason, raw.decode(enc, "backslashreplace"))
        else:
            if text.endswith("\r"):
                text = text[:-1]
            bind = state.bind
            if bind is not None and text and text[0] != "#":
                values = text.split("\t")
                if len(values) == state.nfields:
                    try:
                        event_id, stamp, doc = bind(values, chunk.path, offset, text)
                    except RecordRejected as e:
                        state.reject(line, offset, str(e), text)
                    else:
                        out.ids.append(event_id)
                        out.timestamps.append(stamp)
                        out.docs.append(doc)
                    offset += size
                    line += 1
                    continue
            state.other(line, offset, text)
        offset += size
        line += 1
    return state.done()
