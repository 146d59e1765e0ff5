"""Helpers shared by the Windows event export readers (XML, CSV/TXT, JSON).

Exports arrive in whatever encoding the exporting tool picked: UTF-8 with or without BOM
(wevtutil, PowerShell 7), UTF-16LE with BOM (Windows PowerShell 5's ``>`` and ``Out-File``,
Event Viewer), with CRLF line ends. Readers cut files at record boundaries that they find in
*text*, but positions must be byte offsets in the file. Decoding losslessly
(``surrogateescape`` for UTF-8, ``surrogatepass`` for UTF-16) lets a text index be turned back
into an exact byte count by re-encoding the prefix, whatever the content.

``emit`` is the one place where a parsed Windows record becomes an encoded event, so every
reader fills ``Decoded`` the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, BinaryIO

import orjson

from shipper.errors import RecordRejected
from shipper.sources.base import Chunk, Decoded, Quarantine

BLOCK = 2 * 1024 * 1024
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_ERRORS = {"utf-8": "surrogateescape", "utf-16-le": "surrogatepass", "utf-16-be": "surrogatepass"}
_UNIT = {"utf-8": 1, "utf-16-le": 2, "utf-16-be": 2}


def sniff_encoding(head: bytes) -> tuple[str, int]:
    """(codec, BOM length). UTF-16 without a BOM is recognised by its NUL bytes."""
    for bom, enc in _BOMS:
        if head.startswith(bom):
            return enc, len(bom)
    if len(head) >= 2 and head[1:2] == b"\x00" and head[:1] != b"\x00":
        return "utf-16-le", 0
    if len(head) >= 2 and head[:1] == b"\x00" and head[1:2] != b"\x00":
        return "utf-16-be", 0
    return "utf-8", 0


def head_text(head: bytes) -> str:
    """The first characters of a file as text, for sniffing; never raises."""
    enc, skip = sniff_encoding(head)
    body = head[skip:]
    body = body[: len(body) - len(body) % _UNIT[enc]]
    return body.decode(enc, errors="replace")


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


@dataclass(slots=True)
class Cut:
    """A run of whole records found by a reader: byte range plus the text it holds."""

    start: int
    end: int
    text: str
    data: bytes


def read_cuts(
    f: BinaryIO,
    start: int,
    enc: str,
    final: bool,
    cutter: Callable[[str, bool], int],
    block: int = BLOCK,
) -> Iterator[Cut]:
    """Read from ``start`` in blocks and yield runs of whole records.

    ``cutter(text, at_eof)`` returns the index just past the last complete record in ``text``
    (0 when there is none yet). A record longer than a block makes the block grow. At EOF
    with ``final`` everything left is handed over, so a last record without its terminator
    still ships; without ``final`` it waits for the writer to finish it.
    """
    unit = _UNIT[enc]
    pos = start
    while True:
        f.seek(pos)
        data = f.read(block)
        if not data:
            return
        at_eof = len(data) < block
        while True:
            usable = data[: len(data) - len(data) % unit]
            text = to_text(usable, enc)
            cut = cutter(text, at_eof)
            if cut or at_eof:
                break
            more = f.read(block)
            at_eof = len(more) < block
            data += more
        if at_eof and final:
            cut = len(text)
        if cut == 0:
            return
        piece = text[:cut]
        size = len(usable) if cut == len(text) else byte_length(piece, enc)
        yield Cut(pos, pos + size, piece, usable[:size])
        pos += size
        if at_eof:
            return  # all consumed, or an unfinished last record waits for the writer


def text_chunks(
    name: str,
    f: BinaryIO,
    path: str,
    start: int,
    state: str,
    final: bool,
    options: dict[str, object],
    cutter: Callable[[dict[str, Any], str, bool], int],
    advance: Callable[[dict[str, Any], Cut], None] | None = None,
    **defaults: Any,
) -> Iterator[Chunk]:
    """``Format.chunks`` for a text export: the readers differ only in where a record ends
    (``cutter(state, text, at_eof)``) and in what a chunk teaches them for the next one
    (``advance(state, cut)``: a CSV's header, whether JSON is an array).

    The state is a dict (``defaults`` plus the encoding, sniffed at the start of the file);
    with a ``line`` entry, lines are counted for quarantine reports.
    """
    st = load_state(state, enc="utf-8", **defaults)
    if start == 0:
        f.seek(0)
        st["enc"], start = sniff_encoding(f.read(4))
    for cut in read_cuts(f, start, st["enc"], final, lambda t, e: cutter(st, t, e)):
        state_in = dump_state(st)
        first = st.get("line", 1)
        if advance is not None:
            advance(st, cut)
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


def load_state(state: str, **defaults: Any) -> dict[str, Any]:
    d = dict(defaults)
    if state:
        d.update(json.loads(state))
    return d


def dump_state(d: dict[str, Any]) -> str:
    return json.dumps(d, separators=(",", ":"))


def emit(
    out: Decoded,
    normalise: Callable[[dict[str, Any], str], dict[str, Any]],
    rec: dict[str, Any],
    path: str,
    line: int | None,
    offset: int | Callable[[], int],
    raw: str | Callable[[], str],
) -> None:
    """Normalise one parsed record and append it to ``out``, or quarantine it with the reason.

    ``offset`` and ``raw`` may be callables, so that they are only worked out for a record
    that is rejected.
    """
    try:
        event = normalise(rec, path)
        doc = orjson.dumps(event)
    except (RecordRejected, ValueError, TypeError, KeyError) as e:
        quarantine(out, path, line, offset, str(e), raw)
        return
    out.ids.append(event["event"]["id"])
    out.datasets.append(event["event"]["dataset"])
    out.timestamps.append(event["@timestamp"])
    out.docs.append(doc)


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
