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
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from shipper.errors import RecordRejected
from shipper.normalise import for_chunk
from shipper.sources.base import Chunk, Decoded, FileRefused, Quarantine
from shipper.sources.encoding import NEWLINE, UNIT
from shipper.sources.limits import HEAD, max_record_bytes, oversized
from shipper.sources.limits import reason as oversize_reason
from shipper.sources.text import Cut, TextFormat

BLOCK = 512 * 1024


class _Header:
    """What the ``#`` directives seen so far say; kept in the position's state."""

    __slots__ = ("encoding", "software", "version", "fields", "line")

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding
        self.software: str | None = None
        self.version: str | None = None
        self.fields: list[str] | None = None
        self.line = 1  # number of the next line, for quarantine reports after a resume

    @classmethod
    def load(cls, state: str | dict[str, Any]) -> _Header:
        d = _upgrade(json.loads(state) if isinstance(state, str) else state) if state else {}
        h = cls(d.get("enc", "utf-8"))
        h.software, h.version, h.fields = d.get("software"), d.get("version"), d.get("fields")
        h.line = d.get("line", 1)
        return h

    def save(self, st: dict[str, Any]) -> None:
        st.update(software=self.software, version=self.version, fields=self.fields)

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


def _upgrade(st: dict[str, Any]) -> dict[str, Any]:
    """A position state saved by a release whose W3C reader had its own chunk loop
    (``encoding``, ``skip: true``), in today's terms, so that an upgrade resumes mid-file."""
    if "encoding" in st:
        st = dict(st)
        st["enc"] = st.pop("encoding")
        if st.pop("skip", False):
            st["skip"] = {}
        st.setdefault("verified", st.get("software") is not None)
    return st


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


def _directives(st: dict[str, Any], cut: Cut) -> None:
    """What a chunk teaches the next: the ``#`` directives in it. The first records of a file
    must follow an RMS usage header, or the file is refused; after that, records under a
    header that is not RMS (concatenated downloads) are quarantined by ``decode``."""
    if not _has_directive(cut.data, cut.enc):
        if not st["verified"] and cut.text.strip():
            _verify(_Header.load(st))
            st["verified"] = True
        return
    header = _Header.load(st)
    for line in cut.text.split("\n"):
        if line.startswith("#"):
            header.apply(line.rstrip("\r"))
        elif not st["verified"] and line.strip():
            _verify(header)
            st["verified"] = True
    header.save(st)
    if not st["verified"] and header.problem() is None:
        st["verified"] = True


def _verify(header: _Header) -> None:
    problem = header.problem()
    if problem is not None:
        raise FileRefused(f"not an RMS usage log: {problem}")


@cache
def _bound(normaliser: Any, fields: tuple[str, ...]) -> Callable[..., tuple[Any, ...]]:
    """The normaliser bound to one ``#Fields`` header (blobs repeat a handful of headers)."""
    bound: Callable[..., tuple[Any, ...]] = normaliser.bind_json(list(fields))
    return bound


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
        # the input's choice (``shipper.normalise``): records here are columns under a header;
        # azure_rms when the chunk names none (the format used on its own, by tools and tests)
        self.normaliser = for_chunk(chunk.options, "azure_rms")
        self.out = Decoded()
        self.bind: Callable[..., tuple[str, str, bytes]] | None = None
        self.nfields = 0
        self._bind()

    def _bind(self) -> None:
        header = self.header
        self.problem = header.problem()
        if self.problem is None and header.fields:
            self.bind = _bound(self.normaliser, tuple(header.fields))
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
        self.out.datasets = [self.normaliser.dataset] * len(self.out.docs)
        return self.out


def _decode_text(state: _Decoding, text: str) -> Decoded:
    """The hot loop: one pass over the chunk's lines, a record taking the shortest path."""
    chunk, out = state.chunk, state.out
    path, first, offset = chunk.path, chunk.first_line, chunk.start
    # (id, @timestamp, document[, header fields[, msgpack]]) of each record
    done: list[tuple[Any, ...]] = []
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
        ids, stamps, docs, *more = zip(*done, strict=True)
        out.ids, out.timestamps, out.docs = list(ids), list(stamps), list(docs)
        if more:  # the normaliser said (a plugin's may not)
            out.header_fields = list(more[0])
            if len(more) > 1:
                out.msgpack = list(more[1])
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
                        event_id, stamp, doc, *more = bind(values, chunk.path, offset, text)
                    except RecordRejected as e:
                        state.reject(line, offset, str(e), text)
                    else:
                        out.ids.append(event_id)
                        out.timestamps.append(stamp)
                        out.docs.append(doc)
                        out.header_fields += more[:1]
                        out.msgpack += more[1:]
                    offset += size
                    line += 1
                    continue
            state.other(line, offset, text)
        offset += size
        line += 1
    return state.done()


#: the ``w3c_rms`` format: ``#Software: RMS``, a W3C header, one record a line
W3C_RMS = TextFormat(
    "w3c_rms",
    lambda text: text.startswith("#"),
    None,  # records are lines
    decode,
    _directives,
    defaults={"software": None, "version": None, "fields": None, "verified": False},
    exact_time=True,  # date and time are fields of the record, in UTC
    block=BLOCK,
    upgrade=_upgrade,
)
