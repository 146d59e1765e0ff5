"""Helpers shared by the Windows event export readers (XML, CSV/TXT, JSON).

Exports arrive in whatever encoding the exporting tool picked: UTF-8 with or without BOM
(wevtutil, PowerShell 7), UTF-16LE with BOM (Windows PowerShell 5's ``>`` and ``Out-File``,
Event Viewer), with CRLF line ends. Readers cut files at record boundaries that they find in
*text*, but positions must be byte offsets in the file. Decoding losslessly
(``surrogateescape`` for UTF-8, ``surrogatepass`` for UTF-16) lets a text index be turned back
into an exact byte count by re-encoding the prefix, whatever the content.

``Records`` is the one place where a parsed record becomes an encoded event (through the
normaliser the input chose), so every reader fills ``Decoded`` the same way; ``TextChunk``
adds what every text reader's ``decode`` starts with.
"""

from __future__ import annotations

import codecs
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, BinaryIO, Protocol

import msgspec
import orjson

from shipper.errors import RecordRejected
from shipper.normalise import for_chunk
from shipper.sources.base import Chunk, Decoded, FileRefused, Quarantine
from shipper.sources.encoding import NEWLINE, UNIT, head_text, sniff_encoding
from shipper.sources.limits import DEFAULT as DEFAULT_LIMIT
from shipper.sources.limits import HEAD, Skip, max_record_bytes, oversized, skip_chunk
from shipper.sources.limits import reason as oversize_reason

_pack = msgspec.msgpack.Encoder().encode

BLOCK = 2 * 1024 * 1024
_ERRORS = {"utf-8": "surrogateescape", "utf-16-le": "surrogatepass", "utf-16-be": "surrogatepass"}


def to_text(data: bytes, enc: str) -> str:
    """Lossless decode: ``byte_length(to_text(b)) == len(b)`` for any bytes."""
    return data.decode(enc, errors=_ERRORS[enc])


def byte_length(text: str, enc: str) -> int:
    return len(text.encode(enc, errors=_ERRORS[enc]))


def clean(text: str) -> str:
    """Turn escaped undecodable bytes into U+FFFD so they can be encoded as JSON."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class Cut:
    """A run of whole records found by a reader: byte range, bytes, and the text they hold
    (decoded when first asked for: the line loop never needs it for most chunks)."""

    __slots__ = ("start", "end", "data", "enc", "_text")

    def __init__(
        self, start: int, end: int, text: str | None, data: bytes | bytearray, enc: str = "utf-8"
    ) -> None:
        self.start, self.end, self.data, self.enc, self._text = start, end, data, enc, text

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = to_text(bytes(self.data), self.enc)
        return self._text


class Scanner(Protocol):
    """Finds where records end, one piece of text after another (resumable, linear).

    ``feed`` sees each character once, whatever the size of a record: it keeps what it needs
    about the text seen so far (inside a string, nesting depth, quote parity, ...) in a few
    fields, never by looking back. ``save``/``load`` carry those fields across reads when a
    reader stops inside an oversized record (follow mode) and goes on skipping it later.
    """

    def feed(self, text: str) -> list[int]:
        """Indices just past the record ends in ``text``, in order: every one, or at least
        the first and the last (all the chunk loop uses)."""
        ...

    def boundary_state(self) -> dict[str, Any]:
        """What the position state must say after the last record end fed."""
        ...

    def save(self) -> dict[str, Any]:
        """The whole scanning state, to resume in the middle of a record."""
        ...

    def lead(self, text: str) -> int:
        """Where the record that ``text`` (read from a record boundary) holds really begins:
        past the separators and white space before it."""
        ...


def read_cuts(
    f: BinaryIO,
    start: int,
    enc: str,
    final: bool,
    scanner: Scanner,
    limit: int = DEFAULT_LIMIT,
    block: int | None = None,
    skipping: bool = False,
) -> Iterator[Cut | Skip]:
    """Read from ``start`` in blocks and yield runs of whole records, and oversized records.

    Every byte is read, decoded and scanned once (an incremental decoder; the scanner keeps
    its state between blocks), so the cost is linear in the file whatever its records' sizes.
    A record still open after ``limit`` bytes is not kept: its first ``HEAD`` bytes are, and
    the reader streams on to its end and yields a ``Skip`` for it; memory stays about
    ``limit`` plus a block. At EOF with ``final`` everything left is handed over, so a last
    record without its terminator still ships; without ``final`` a record under the bound
    waits for the writer to finish it, and one already over it is reported at once (a
    ``Skip`` that is not ``complete``; the caller saves ``scanner.save()`` to go on skipping).
    ``skipping`` resumes such a record: its rest is yielded as a ``continued`` Skip.
    """
    block = block or BLOCK
    unit = UNIT[enc]
    decoder = codecs.getincrementaldecoder(enc)(_ERRORS[enc])
    f.seek(start)
    pos = start  # file offset of the first byte not handed over yet (a record boundary)
    parts: list[str] = []  # the text read since ``pos``: the beginning of one open record
    pending = 0  # its length in bytes
    skip: Skip | None = Skip(start, start, b"", continued=True) if skipping else None
    try:  # never ask for more than is there: a block-sized buffer per tiny file adds up
        left = os.fstat(f.fileno()).st_size - start
    except (OSError, AttributeError, io.UnsupportedOperation):
        left = block
    while True:
        data = f.read(max(min(block, left), 1))
        left -= len(data)
        eof = len(data) < block
        text = decoder.decode(data, final=eof and final and unit == 1)
        cur = 0
        bounds = scanner.feed(text)
        if skip is not None and bounds:
            b = bounds[0]
            skip.end += byte_length(text[:b], enc)
            skip.lines += text.count("\n", 0, b)
            yield skip
            pos, skip, cur = skip.end, None, b
        if parts and bounds and bounds[0] > cur:
            b = bounds[0]  # the open record ends here: over the bound, it is not joined up
            size = pending + byte_length(text[cur:b], enc)
            if size > limit:
                parts.append(text[cur:b])
                skip = _skip(parts, pos, size, scanner, enc)
                yield skip
                pos, skip, cur = skip.end, None, b
                parts, pending = [], 0
        if bounds and bounds[-1] > cur:
            b = bounds[-1]
            piece = "".join([*parts, text[cur:b]]) if parts else text[cur:b]
            raw = piece.encode(enc, _ERRORS[enc])
            yield Cut(pos, pos + len(raw), piece, raw, enc)
            pos += len(raw)
            parts, pending, cur = [], 0, b
        rest = text[cur:] if cur else text
        if skip is not None:  # still inside an oversized record
            skip.end += byte_length(rest, enc)
            skip.lines += rest.count("\n")
        elif rest:
            parts.append(rest)
            pending += byte_length(rest, enc)
            if pending > limit:
                skip = _skip(parts, pos, pending, scanner, enc)
                parts, pending = [], 0
        if eof:
            if skip is not None:
                skip.complete = final
                if skip.end > skip.start or not skip.continued:
                    yield skip
            elif parts and final:
                piece = "".join(parts)
                raw = piece.encode(enc, _ERRORS[enc])
                yield Cut(pos, pos + len(raw), piece, raw, enc)
            return


def _skip(parts: list[str], pos: int, size: int, scanner: Scanner, enc: str) -> Skip:
    """An oversized record whose text so far is ``parts`` (``size`` bytes from ``pos``)."""
    head = _head(parts)
    lead = min(scanner.lead(head), len(head))
    before = head[:lead].encode(enc, _ERRORS[enc])
    raw = head[: lead + HEAD].encode(enc, _ERRORS[enc])[: len(before) + HEAD]
    skip = Skip(pos, pos + size, raw, at=pos + len(before))
    skip.lead_lines = head.count("\n", 0, lead)
    skip.lines = sum(p.count("\n") for p in parts)
    return skip


def _head(parts: list[str], want: int = 2 * HEAD) -> str:
    """The first ``want`` characters of the text in ``parts``."""
    taken: list[str] = []
    n = 0
    for p in parts:
        taken.append(p[: want - n])
        n += len(taken[-1])
        if n >= want:
            break
    return "".join(taken)


@dataclass
class TextFormat:
    """A text export format (``base.Format``): a module says only how its records are found
    (``scanner``, and ``advance`` for what a chunk teaches the next one, such as a CSV's
    header) and parsed (``decode``); encoding detection and the chunk loop are shared here."""

    name: str
    #: whether the first characters of a file (as text, whatever its encoding) are this format
    looks_like: Callable[[str], bool]
    #: where records end; None: records are lines, cut by ``_line_chunks`` without decoding
    scanner: Callable[[dict[str, Any]], Scanner] | None
    decode: Callable[[Chunk], Decoded]
    advance: Callable[[dict[str, Any], Cut], None] | None = None
    #: the scanner's state at the start of a file
    defaults: dict[str, Any] = field(default_factory=dict)
    exact_time: bool = False  # copies in other export formats may carry a local time
    #: bytes read at a time (and so about a chunk's size); None: ``BLOCK``
    block: int | None = None
    #: turns a position state saved by an older release into this one's
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: what a file's state starts with from the input's options (a fallback time zone, say);
    #: a file keeps what it started with
    starting: Callable[[dict[str, object]], dict[str, Any]] | None = None

    def sniff(self, head: bytes, path: str) -> bool:
        return self.looks_like(head_text(head))

    def chunks(
        self,
        f: BinaryIO,
        path: str,
        start: int,
        state: str,
        final: bool,
        options: dict[str, object],
    ) -> Iterator[Chunk]:
        """Resume from ``state`` (a dict as JSON: ``defaults``, what ``starting`` takes from
        the input's options, the encoding sniffed at the file's start, and what ``advance``
        learnt), in the loop that suits the records."""
        first = self.starting(options) if self.starting is not None else {}
        st = load_state(state, enc="utf-8", **{**self.defaults, **first})
        if self.upgrade is not None:
            st = self.upgrade(st)
        if self.scanner is None:
            return self._line_chunks(f, path, start, st, final, options)
        return self._text_chunks(f, path, start, st, final, options, self.scanner)

    def _advance(self, st: dict[str, Any], cut: Cut, path: str) -> None:
        if self.advance is not None:
            try:
                self.advance(st, cut)
            except FileRefused as e:
                raise FileRefused(f"{path}: {e}") from None

    def _text_chunks(
        self,
        f: BinaryIO,
        path: str,
        start: int,
        st: dict[str, Any],
        final: bool,
        options: dict[str, object],
        scanner: Callable[[dict[str, Any]], Scanner],
    ) -> Iterator[Chunk]:
        """The chunk loop of a text export: the readers differ only in where a record ends
        (the ``scanner`` made from the state) and in what a chunk teaches them for the next
        one (``advance(state, cut)``: a CSV's header; it raises ``FileRefused`` for a file that
        turns out not to be this format, and the message is given the file's path).

        With a ``line`` entry in the state, lines are counted for quarantine reports. While a
        reader is inside an oversized record that is still being written, the state holds
        ``skip``: the scanner's state there, so that the next read goes on skipping it.
        """
        name = self.name
        if start == 0:
            f.seek(0)
            st["enc"], start = sniff_encoding(f.read(4))
        saved = st.pop("skip", None)
        scan = scanner(saved if saved is not None else st)
        limit = max_record_bytes(options)
        cuts = read_cuts(
            f, start, st["enc"], final, scan, limit, self.block, skipping=saved is not None
        )
        for cut in cuts:
            state_in = dump_state(st if saved is None else {**st, "skip": saved})
            saved = None
            first = st.get("line", 1)
            if isinstance(cut, Skip):
                if "line" in st:
                    st["line"] += cut.lines
                if cut.complete:
                    st.update(scan.boundary_state())
                    out = dump_state(st)
                else:
                    out = dump_state({**st, "skip": scan.save()})
                yield skip_chunk(name, path, cut, state_in, out, first, options)
                continue
            st.update(scan.boundary_state())
            self._advance(st, cut, path)
            if "line" in st:
                st["line"] += cut.text.count("\n")
            yield Chunk(
                format=name,
                path=path,
                start=cut.start,
                end=cut.end,
                state_in=state_in,
                state_out=dump_state(st),
                payload=cut.data,
                first_line=first,
                options=options,
            )

    def _line_chunks(
        self,
        f: BinaryIO,
        path: str,
        start: int,
        st: dict[str, Any],
        final: bool,
        options: dict[str, object],
    ) -> Iterator[Chunk]:
        """``Format.chunks`` for a format whose records are lines (W3C), on bytes: the chunk loop
        of ``text_chunks`` without decoding a byte in this process (the decoders do), which makes
        it several times cheaper, and the main process is the one every chunk goes through.

        A block is read, cut at its last line break (for UTF-16, one on a code-unit boundary, or a
        CJK character could pass for one) and handed over whole; a line longer than a block is
        read on until it ends, and one over ``max_record_bytes`` is skipped, keeping its first
        bytes, exactly as ``read_cuts`` does for other formats. The state is as in ``text_chunks``
        (``enc``, ``line``, ``skip`` while inside an oversized line still being written).
        """
        name, block = self.name, self.block or BLOCK
        st.setdefault("line", 1)
        bom = 0  # only its parity matters past the start: a UTF-16 BOM is two bytes
        if start == 0:
            f.seek(0)
            st["enc"], bom = sniff_encoding(f.read(4))
            start = bom
        enc = st["enc"]
        nl = NEWLINE[enc]
        pos = start
        size = os.fstat(f.fileno()).st_size
        limit = max_record_bytes(options)

        def skipped(skip: Skip) -> Chunk:
            """The chunk standing for an oversized line; the state learns whether it ended."""
            state_in = dump_state(st)
            first = st["line"]
            st.pop("skip", None)
            if skip.complete:
                st["line"] += 1
            else:
                st["skip"] = {}
            return skip_chunk(name, path, skip, state_in, dump_state(st), first, options)

        if "skip" in st:  # the rest of an oversized line, quarantined when it was seen
            end, complete = _skip_line(f, pos, enc, bom, final, block)
            if end == pos:
                return
            yield skipped(Skip(pos, end, b"", complete, True))
            if not complete:
                return
            pos = end
        while True:
            f.seek(pos)
            # never ask for more than is there: a block-sized buffer per tiny file adds up. A
            # bytearray, so that cutting it at the last line break below copies nothing
            buf = bytearray(max(min(block, size - pos), 1))
            del buf[f.readinto(buf) :]
            if not buf:
                return
            at_eof = len(buf) < block
            cut = _last_newline(buf, nl, pos - bom)
            while cut == 0 and not at_eof and len(buf) <= limit:  # a line longer than a block
                more = f.read(block)
                at_eof = len(more) < block
                old = len(buf)
                buf += more
                # only the new bytes can hold it (one byte back: a UTF-16 line end may straddle
                # the two reads); looking from the start again would be quadratic
                cut = _last_newline(buf, nl, pos - bom, old - 1)
            if cut == 0 and not at_eof:  # too long to read: skip it, keeping its beginning
                end, complete = _skip_line(f, pos + len(buf), enc, bom, final, block)
                skip = Skip(pos, end, bytes(buf[:HEAD]), complete)
                del buf
                yield skipped(skip)
                if not complete:
                    return
                pos = end
                continue
            if at_eof and final and cut < len(buf):
                cut = len(buf) - (len(buf) % UNIT[enc])  # EOF completes the last line
            if cut == 0:
                return  # a partial line: wait until it is complete
            del buf[cut:]
            state_in = dump_state(st)
            first = st["line"]
            self._advance(st, Cut(pos, pos + cut, None, buf, enc), path)
            st["line"] += (
                buf.count(nl) if enc == "utf-8" else buf.decode(enc, "replace").count("\n")
            )
            yield Chunk(
                format=name,
                path=path,
                start=pos,
                end=pos + cut,
                state_in=state_in,
                state_out=dump_state(st),
                payload=buf,
                first_line=first,
                options=options,
            )
            pos += cut
            if at_eof:
                return


def _last_newline(buf: bytes | bytearray, nl: bytes, base: int, lo: int = 0) -> int:
    """End (exclusive) of the last complete line in ``buf[lo:]``, 0 if none; a UTF-16 line
    end must sit on a code-unit boundary (``base``: the buffer's file offset minus the BOM)."""
    lo = max(lo, 0)
    if len(nl) == 1:
        return buf.rfind(nl, lo) + 1
    end = len(buf)
    while True:
        i = buf.rfind(nl, lo, end)
        if i < 0:
            return 0
        if (base + i) % 2 == 0:
            return i + 2
        end = i + 1


def _first_newline(buf: bytes | bytearray, nl: bytes, base: int) -> int:
    """End (exclusive) of the first line in ``buf``, 0 if there is no line end."""
    i = buf.find(nl)
    while i >= 0 and (base + i) % len(nl):
        i = buf.find(nl, i + 1)
    return i + len(nl) if i >= 0 else 0


def _skip_line(
    f: BinaryIO, pos: int, enc: str, bom: int, final: bool, block: int
) -> tuple[int, bool]:
    """Read from ``pos`` to just past the next line end, a block at a time, keeping nothing:
    (where the line ends, whether it did). Without a line end before EOF, the line ends at
    EOF when ``final``; else it is still being written, and the answer stops at the last
    whole character, so that a line end cannot be split between this read and the next."""
    unit = UNIT[enc]
    nl = NEWLINE[enc]
    while True:
        f.seek(pos)
        buf = f.read(block)
        i = _first_newline(buf, nl, pos - bom)
        if i:
            return pos + i, True
        end = pos + len(buf)
        end -= (end - bom) % unit
        if len(buf) < block:
            return end, final
        pos = end


class Offsets:
    """Byte offsets in the file of indices into a chunk's text, worked out as records are
    visited in order: each call encodes only the text since the previous one (asking for
    every record's offset from the start of the chunk would be quadratic)."""

    __slots__ = ("text", "enc", "base", "i", "at")

    def __init__(self, text: str, enc: str, base: int) -> None:
        self.text, self.enc, self.base = text, enc, base
        self.i, self.at = 0, base

    def __call__(self, i: int) -> int:
        if i < self.i:
            self.i, self.at = 0, self.base
        self.at += byte_length(self.text[self.i : i], self.enc)
        self.i = i
        return self.at


def max_bytes_per_char(enc: str) -> int:
    """At most this many bytes per character of the lossless decode (for cheap size checks)."""
    return 4 if UNIT[enc] == 1 else 2


def quarantine_oversized(out: Decoded, chunk: Chunk, info: dict[str, Any], enc: str) -> Decoded:
    """Decode a chunk standing for an oversized record (see ``shipper.sources.limits``)."""
    if not info.get("continued"):
        limit = max_record_bytes(chunk.options)
        why = oversize_reason(int(info["size"]), limit, bool(info.get("complete", True)))
        at = int(info.get("at", chunk.start))
        line = None
        if "line" in load_state(chunk.state_in):
            line = chunk.first_line + int(info.get("lines", 0))
        head = _display(chunk.payload[at - chunk.start :], enc)
        quarantine(out, chunk.path, line, at, why, head)
    return out


def _display(head: bytes | bytearray, enc: str) -> str:
    """The first bytes of a record as text for the quarantine file (cut anywhere)."""
    unit = UNIT[enc]
    return bytes(head[: len(head) - len(head) % unit]).decode(enc, "replace")


def oversized_record(
    out: Decoded,
    chunk: Chunk,
    line: int | None,
    at: int,
    size: int,
    text: str,
) -> None:
    """Quarantine a record over the bound found inside an ordinary chunk."""
    enc = chunk_enc(chunk)
    head = text[:HEAD].encode(enc, _ERRORS[enc])[:HEAD]
    why = oversize_reason(size, max_record_bytes(chunk.options))
    quarantine(out, chunk.path, line, at, why, _display(head, enc))


def chunk_enc(chunk: Chunk) -> str:
    return str(load_state(chunk.state_in, enc="utf-8")["enc"])


def load_state(state: str, **defaults: Any) -> dict[str, Any]:
    d = dict(defaults)
    if state:
        d.update(json.loads(state))
    return d


def dump_state(d: dict[str, Any]) -> str:
    return json.dumps(d, separators=(",", ":"))


class Records:
    """Where one chunk's parsed records go: through the input's normaliser into ``out``, or
    into the quarantine with the reason. The one place where a reader's record becomes an
    encoded event, so every reader fills ``Decoded`` the same way; the reader imports no
    normaliser (the chunk's options carry the input's choice, ``shipper.normalise``) and names
    one only as ``default_normaliser``, for a chunk whose options name none (a format used on
    its own, as tools and tests do)."""

    __slots__ = ("chunk", "out", "normalise", "keep", "pack")

    def __init__(self, chunk: Chunk, default_normaliser: str = "windows") -> None:
        self.chunk = chunk
        self.out = Decoded()
        self.normalise: Callable[[dict[str, Any], str], dict[str, Any]] = for_chunk(
            chunk.options, default_normaliser
        )
        #: whether events carry ``event.original`` (the record's text, unless the reader
        #: put a better one in ``rec["original"]``)
        self.keep = bool(chunk.options.get("keep_original", False))
        #: whether events go out as msgpack too (``Decoded.msgpack``): packed from the dict
        #: here, which costs about a sixth of decoding the JSON back and packing that
        self.pack = _pack if chunk.options.get("msgpack") else None

    def ship(
        self,
        rec: dict[str, Any],
        line: int | None,
        offset: int | Callable[[], int],
        raw: str | Callable[[], str],
    ) -> None:
        """Normalise one parsed record and append it to ``out``, or quarantine it with the
        reason. ``offset`` and ``raw`` may be callables, so that they are only worked out for
        a record that is rejected (or, for ``raw``, kept as ``event.original``)."""
        if self.keep and "original" not in rec:
            rec["original"] = raw() if callable(raw) else raw
        out = self.out
        try:
            event = self.normalise(rec, self.chunk.path)
            doc = orjson.dumps(event)
            packed = self.pack(event) if self.pack is not None else None
        except (RecordRejected, ValueError, TypeError, KeyError, OverflowError) as e:
            quarantine(out, self.chunk.path, line, offset, str(e), raw)
            return
        out.ids.append(event["event"]["id"])
        out.datasets.append(event["event"]["dataset"])
        out.timestamps.append(event["@timestamp"])
        out.docs.append(doc)
        if packed is not None:
            out.msgpack.append(packed)

    def reject(
        self,
        line: int | None,
        offset: int | Callable[[], int],
        reason: str,
        raw: str | Callable[[], str],
    ) -> None:
        quarantine(self.out, self.chunk.path, line, offset, reason, raw)


class TextChunk(Records):
    """A chunk of a text export being decoded: its text, its reader state, and the checks
    every text reader makes (a record over ``max_record_bytes``, a chunk that stands for one).
    ``defaults`` are the reader state's defaults, as in ``TextFormat``."""

    __slots__ = ("state", "enc", "skipped", "text", "limit", "wide", "at")

    def __init__(self, chunk: Chunk, default_normaliser: str = "windows", **defaults: Any) -> None:
        super().__init__(chunk, default_normaliser)
        self.state = load_state(chunk.state_in, enc="utf-8", **defaults)
        self.enc: str = self.state["enc"]
        #: set when the chunk stands for an oversized record (see ``shipper.sources.limits``)
        self.skipped = oversized(chunk)
        self.text = "" if self.skipped is not None else to_text(chunk.payload, self.enc)
        self.limit = max_record_bytes(chunk.options)
        self.wide = max_bytes_per_char(self.enc)
        self.at = Offsets(self.text, self.enc, chunk.start)

    def quarantine_skipped(self) -> Decoded:
        """The result of a chunk that stands for an oversized record."""
        assert self.skipped is not None
        return quarantine_oversized(self.out, self.chunk, self.skipped, self.enc)

    def offset(self, i: int) -> Callable[[], int]:
        """The byte offset of ``text[i]``, worked out only when asked."""
        return lambda: self.at(i)

    def too_big(self, line: int | None, s: int, e: int) -> bool:
        """Whether ``text[s:e]`` is a record over the bound: it is then quarantined."""
        if (e - s) * self.wide <= self.limit:
            return False  # cannot be: spares encoding every record to count its bytes
        begin = self.at(s)
        size = self.at(e) - begin
        if size <= self.limit:
            return False
        oversized_record(self.out, self.chunk, line, begin, size, self.text[s:e])
        return True


def quarantine(
    out: Decoded,
    path: str,
    line: int | None,
    offset: int | Callable[[], int],
    reason: str,
    raw: str | Callable[[], str],
) -> None:
    """Record a rejected record. Its raw text and the reason are redacted like a shipped event's
    message: the quarantine file must not hold the secrets that the output never gets."""
    text = raw() if callable(raw) else raw
    at = offset() if callable(offset) else offset
    redact = _redactor()
    out.quarantined.append(Quarantine(path, line, at, redact(clean(reason)), redact(clean(text))))


@cache
def _redactor() -> Callable[[str], str]:
    from shipper.normalise.ecma2host import redact

    return redact
