"""Binary ``.evtx`` files, read with the Rust-backed ``evtx`` package.

An .evtx file is a 4 KiB file header followed by 64 KiB chunks, and no record crosses a chunk
boundary. Positions are byte offsets of chunk boundaries, so a ``Chunk`` is a run of whole evtx
chunks: ``decode`` hands the parser the file header plus just those chunks, which is enough
(the parser walks chunks by size, not by the header's count). Resuming at ``chunk.end`` thus
neither skips nor repeats a record, and workers parse different parts of one file at once.

Damaged files: the parser's iterator raises for a bad chunk or record and can be resumed
afterwards, so each error costs only what it names. Every error is counted as a quarantined
record with the parser's reason (chunk numbers rewritten to be absolute in the file).

Records are read from the parser's JSON rendering into the same record dict that the event XML
reader makes of its XML (checked record by record against the XML on every sample; shapes the
JSON reader is unsure of are read as XML), so an event ships identically from an .evtx and from
its ``wevtutil`` export; the record's own
``timestamp`` is used because it keeps the 100 ns precision the XML rendering truncates.
While a file is still being written (``final`` false) only complete 64 KiB chunks are read.

Size: reading is in fixed runs of chunks, and a record lives inside one 64 KiB chunk, so no
record can exceed ``max_record_bytes`` (at least 64 KiB) and memory is bounded by a run,
whatever the file holds. A panic inside the parser (a Rust ``PanicException``, which is not an
``Exception``) on a damaged chunk is quarantined like any other parser error.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import orjson
from evtx import PyEvtxParser

from shipper.sources.base import Chunk, Decoded
from shipper.sources.eventxml import _SYSTEM_INT, _guid, _int, parse_event_xml
from shipper.sources.text import Records, quarantine
from shipper.sources.wintime import iso_utc

MAGIC = b"ElfFile\x00"
HEADER = 4096
EVTX_CHUNK = 65536
CHUNKS_PER_BATCH = 16
_CHUNK_NO = re.compile(r"chunk number (\d+)")


class EvtxFile:
    """The ``evtx`` format."""

    name = "evtx"
    exact_time = False  # copies in other export formats may carry a local time

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
        f.seek(0)
        header = f.read(HEADER)
        whole = HEADER + (size - HEADER) // EVTX_CHUNK * EVTX_CHUNK
        limit = size if final else whole
        step = CHUNKS_PER_BATCH * EVTX_CHUNK
        while pos < limit:
            end = min(pos + step, limit)
            f.seek(pos)
            body = f.read(end - pos)
            if len(body) < end - pos:
                return  # shrank meanwhile: the next scan finds it truncated and starts over
            yield Chunk(
                format=self.name,
                path=path,
                start=pos,
                end=end,
                state_in="",
                state_out="",
                payload=body,
                options=options,
                prefix=header,
            )
            pos = end

    def decode(self, chunk: Chunk) -> Decoded:
        return decode(chunk)


EVTX = EvtxFile()


def decode(chunk: Chunk) -> Decoded:
    """Parse the chunk's evtx chunks; each parser error is quarantined and parsing goes on.

    Records are read as the parser's JSON (several times faster than parsing its XML) and
    turned into the record dict by ``record_from_json``, which gives exactly what the XML
    would; a record in a shape it is not sure of is read again as XML (see ``_XmlView``).
    With ``keep_original``, ``event.original`` is the XML, so the XML is read throughout.
    """
    records_out = Records(chunk)
    out = records_out.out
    data = chunk.prefix + chunk.payload
    first_chunk = (chunk.start - HEADER) // EVTX_CHUNK
    if data[:8] != MAGIC:
        out.refused = f"{chunk.path}: not an .evtx file (no ElfFile header)"
        return out
    keep = bool(chunk.options.get("keep_original", False))
    parser = PyEvtxParser(io.BytesIO(data), number_of_threads=1, indent=False)
    records = parser.records() if keep else parser.records_json()
    xml_view = _XmlView(data)
    index = -1
    while True:
        index += 1
        try:
            record = next(records)
        except StopIteration:
            break
        except BaseException as e:
            if not isinstance(e, (RuntimeError, OSError, ValueError)) and not _panic(e):
                raise
            reason = _CHUNK_NO.sub(
                lambda m: f"chunk number {int(m.group(1)) + first_chunk}", str(e)
            )
            at = chunk.start + _relative_chunk(str(e)) * EVTX_CHUNK
            quarantine(out, chunk.path, None, at, f"evtx: {reason}", "")
            if _panic(e):  # the parser cannot be trusted to go on after a panic
                break
            continue
        rec = None
        if not keep:
            try:
                rec = record_from_json(record["data"])
            except Exception:  # noqa: BLE001 - the XML path decides, and reports, below
                rec = None
            if rec is None:
                record = xml_view.record(index, record.get("event_record_id")) or record
        if rec is None:
            xml = record["data"]
            rid = record.get("event_record_id")
            try:
                rec = parse_event_xml(xml)
            except Exception as e:  # noqa: BLE001 - a record the XML parser rejects costs only it
                quarantine(out, chunk.path, None, chunk.start, f"evtx record {rid}: {e}", xml)
                continue
            if keep:
                rec["original"] = xml
        rid = record.get("event_record_id")
        stamp = record.get("timestamp")
        if stamp:
            rec["time"] = _full_precision(stamp, rec.get("time"))
        if rec.get("record_id") is None and rid is not None:
            rec["record_id"] = rid
        records_out.ship(rec, None, chunk.start, _raw(record))
    return out


def _panic(e: BaseException) -> bool:
    """A panic inside the Rust parser (``pyo3_runtime.PanicException``)."""
    return type(e).__name__ == "PanicException"


def _raw(record: dict[str, Any]) -> Callable[[], str]:
    return lambda: record["data"]


class _XmlView:
    """The same records rendered as XML, created only when a record needs it.

    The parser yields records (and errors) in the same order whatever the rendering, so the
    n-th item of the XML iterator is the n-th item of the JSON one.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._it: Iterator[dict[str, Any]] | None = None
        self._pos = 0

    def record(self, index: int, rid: object) -> dict[str, Any] | None:
        if self._it is None or self._pos > index:
            parser = PyEvtxParser(io.BytesIO(self._data), number_of_threads=1, indent=False)
            self._it, self._pos = parser.records(), 0
        while True:
            try:
                item = next(self._it)
            except StopIteration:
                return None
            except BaseException as e:
                if not isinstance(e, (RuntimeError, OSError, ValueError)) and not _panic(e):
                    raise
                if _panic(e):
                    return None
                item = None
            self._pos += 1
            if self._pos > index:
                return item if item is not None and item.get("event_record_id") == rid else None


# --- records from the parser's JSON -------------------------------------------------------
#
# The JSON rendering holds the same values as the XML one, typed: numbers as numbers, element
# text under "#text", attributes under "#attributes", unnamed <Data> as a "#text" list. The
# reader below accepts only the shapes it has been checked on (tests/sources/test_evtx.py
# compares it with the XML path on every sample record) and answers None otherwise, so that
# the record is read as XML. Notably: repeated element names (the JSON renames them with a
# "_1" suffix), floats and booleans (formatting), control characters (the XML path escapes
# them) and attribute values with line breaks (XML normalises them) all go to XML.

_DUPLICATE = re.compile(r".*_\d+")


class _Unsure(Exception):
    pass


def _scalar(value: Any) -> str | None:
    """A JSON leaf as the XML text it was rendered from (None for an empty element)."""
    if value is None:
        return None
    t = type(value)
    if t is str:
        if "\r" in value:
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        return value or None
    if t is int:
        return str(value)
    raise _Unsure


def _attr(value: Any, name: str) -> str | None:
    if type(value) is not dict:
        return None
    attrs = value.get("#attributes")
    if not attrs:
        return None
    v = attrs.get(name)
    if v is None:
        return None
    if type(v) is int:
        return str(v)
    if type(v) is not str or "\n" in v or "\r" in v or "\t" in v:
        raise _Unsure
    return v


def _element_text(value: Any) -> str | None:
    if type(value) is dict:
        keys = value.keys() - {"#attributes", "#text"}
        if keys:
            raise _Unsure
        return _scalar(value.get("#text"))
    return _scalar(value)


def record_from_json(text: str) -> dict[str, Any] | None:
    """The record dict of one evtx JSON record, or None when only the XML can tell."""
    if "\\u00" in text or "\\b" in text or "\\f" in text:
        return None  # maybe control characters (also a harmless false alarm for "\\b")
    if not text.isascii() and ("\ufffe" in text or "\uffff" in text):
        return None
    try:
        return _from_json(orjson.loads(text)["Event"])
    except _Unsure:
        return None


def _from_json(event: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    system = event.get("System")
    if type(system) is not dict:
        raise _Unsure
    for name, value in system.items():
        key = _SYSTEM_INT.get(name)
        if key is not None:
            if type(value) is int:  # the common case: what _int would make of its text
                rec[key] = value
            else:
                rec[key] = _int(_element_text(value))
        elif name == "Channel":
            rec["channel"] = _element_text(value)
        elif name == "Computer":
            rec["computer"] = _element_text(value)
        elif name == "Provider":
            rec["provider"] = _attr(value, "Name") or _attr(value, "EventSourceName")
            rec["provider_guid"] = _guid(_attr(value, "Guid"))
        elif name == "EventID":
            rec["event_id"] = (
                str(value) if type(value) is int else (_element_text(value) or "").strip()
            )
        elif name == "TimeCreated":
            st = _attr(value, "SystemTime")
            if st:
                rec["time"] = iso_utc(st)
        elif name == "Execution":
            rec["pid"] = _int(_attr(value, "ProcessID"))
            rec["tid"] = _int(_attr(value, "ThreadID"))
        elif name == "Security":
            rec["user_sid"] = _attr(value, "UserID")
        elif name == "Correlation":
            rec["activity_id"] = _guid(_attr(value, "ActivityID"))
            rec["related_activity_id"] = _guid(_attr(value, "RelatedActivityID"))
        elif name != "#attributes":
            _element_text(value)  # an unknown leaf is ignored, a structure is not understood
    for name, value in event.items():
        if name == "EventData":
            rec["event_data"] = _event_data(value)
        elif name == "UserData":
            rec["user_data"] = _user_data(value)
        elif name not in ("System", "#attributes"):
            raise _Unsure
    return rec


def _event_data(value: Any) -> dict[str, str]:
    data: dict[str, str] = {}
    if value is None:
        return data
    if type(value) is not dict:
        raise _Unsure
    for name, v in value.items():
        if name == "Data":
            if type(v) is dict:
                if v.keys() != {"#text"}:
                    raise _Unsure
                v = v["#text"]
            items = v if type(v) is list else [v]
            if data:
                raise _Unsure  # unnamed after named: numbering would need the XML
            for n, item in enumerate(items, 1):
                text = _scalar(item)
                if text:
                    data[f"param{n}"] = text
        elif name == "#attributes":
            raise _Unsure
        else:
            t = type(v)
            if t is str:  # the common case, inline
                text = v.replace("\r\n", "\n").replace("\r", "\n") if "\r" in v else v
            elif t is int:
                text = str(v)
            elif v is None:
                continue
            else:
                raise _Unsure
            if name[-1:].isdigit() and _DUPLICATE.fullmatch(name) or name.startswith("param"):
                raise _Unsure
            if text:
                data[name] = text
    return data


def _user_data(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise _Unsure
    for name, inner in value.items():
        if name in ("#attributes", "#text"):
            raise _Unsure
        out = {"xml_name": name}
        if inner is None:
            return out
        if type(inner) is not dict:
            raise _Unsure
        for child, v in inner.items():
            if child == "#attributes":
                continue
            if child == "#text" or type(v) is list:
                raise _Unsure
            if child[-1:].isdigit() and _DUPLICATE.fullmatch(child):
                raise _Unsure
            text = _element_text(v)
            if text:
                out[child] = text
        return out
    return None


def _relative_chunk(message: str) -> int:
    m = _CHUNK_NO.search(message)
    return int(m.group(1)) if m else 0


def _full_precision(stamp: str, fallback: str | None) -> str:
    """``2021-03-31T23:51:45.0187674Z UTC`` (the record header's time) as ``...Z``."""
    stamp = stamp.removesuffix(" UTC").strip()
    if stamp.endswith("Z"):
        return stamp
    return fallback or stamp
