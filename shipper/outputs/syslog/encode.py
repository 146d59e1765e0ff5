"""ECS events -> RFC 5424 messages (JSON, CEF or LEEF 2.0 bodies), and their framings; no I/O.

Why hand-written, and not ``syslog-rfc5424-formatter``: that library formats a
``logging.LogRecord``, stamping the send time (``record.created``) and this machine's host
name into the header, and leaves the PRI to ``SysLogHandler``. A shipped event must carry its
own ``@timestamp`` and ``host.name`` (a backfill of last year's logs sent today must not look
like today's), and going through a LogRecord per event would cost more than the whole
encoding below. Its SD escaping (``"``, ``\\``, ``]``) is the RFC's and is what
``_sd_value`` does. So the library is not used, and is not a dependency.

What can never happen, whatever a field holds (CR, LF, NUL, other controls, ``]``, ``"``,
``\\``, ``|``, ``=``, non-ASCII, 64 KiB values): a message ending early, a second message
forged, or broken SD / CEF / LEEF syntax. That holds because

- the JSON body is the event as the decoders serialised it: JSON escapes every control
  character, so the body has no raw CR, LF or NUL;
- header fields keep letters, digits and ``._-`` (HOSTNAME) or ``._:@/+-`` (MSGID) only
  (anything else becomes ``_``): within RFC 5424's printable ASCII, and nothing a receiver
  trips on;
- SD-PARAM values escape ``"``, ``\\`` and ``]`` (RFC 5424 6.3.3) and replace control characters
  with U+FFFD (the exact value is in the body);
- CEF escapes per its spec (header ``\\|`` ``\\\\``; extension ``\\=`` ``\\\\`` ``\\n`` ``\\r``) and
  replaces other control characters with U+FFFD; LEEF has no escape syntax, so in its header
  ``|`` and control characters become ``_``, and in attribute values TAB (its delimiter), CR
  and LF become spaces and other control characters U+FFFD.

So no message contains a LF, and LF framing is as safe as octet counting.

Speed: the JSON body is the document itself, never re-serialised or copied. The header needs
only ``event.outcome``, ``event.action``, ``log.level`` and ``host.name``: the RMS normaliser
hands them over as it builds the event (``Decoded.header_fields``); for other events they are
read with a msgspec decoder that skips the rest of the document without building it
(``orjson.loads`` of the whole event costs three times as much; this read, a third of the
encoder's time per event).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from shipper.mappings import load_yaml
from shipper.outputs.base import EventBatch, Wire, ecs_field

if TYPE_CHECKING:
    from shipper.outputs.syslog.settings import Settings
    from shipper.sources.base import Decoded, HeaderFields

__all__ = [
    "Encoder",
    "WireEncoder",
    "frame_lf",
    "frame_octets",
    "octet_frame",
    "truncate",
    "rfc3339",
]

NIL = "-"
BOM = b"\xef\xbb\xbf"
TRUNCATED = " [truncated]"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SD_UNSAFE = re.compile(r'["\\\]\x00-\x1f\x7f]')
_SD_ESCAPE = re.compile(r'["\\\]]')
# HOSTNAME and MSGID keep a conservative subset of RFC 5424's printable ASCII: syslog-ng, for
# one, refuses a message whose HOSTNAME holds "[" or looks like a timestamp; a DNS name is
# letters, digits, "." and "-"
_NOT_HEADER_SAFE = re.compile(r"[^A-Za-z0-9._:@/+-]")
_NOT_HOST_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:\d\d)$")
_CEF_HEADER = re.compile(r"[\\|\x00-\x1f\x7f]")
_CEF_VALUE = re.compile(r"[\\=\r\n\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CEF_VALUE_MAP = {"\\": "\\\\", "=": "\\=", "\r": "\\r", "\n": "\\n"}
_LEEF_HEADER = re.compile(r"[|\x00-\x1f\x7f]")
_LEEF_VALUE = re.compile(r"[\t\r\n\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _Event(msgspec.Struct):
    outcome: Any = None
    action: Any = None


class _Log(msgspec.Struct):
    level: Any = None


class _Host(msgspec.Struct):
    name: Any = None


class _Header(msgspec.Struct):
    """The only fields of a document the JSON header needs; msgspec skips everything else
    without building it (about 3 times faster than parsing the event)."""

    event: _Event | None = None
    log: _Log | None = None
    host: _Host | None = None


_read_header = msgspec.json.Decoder(_Header).decode


def header_fields(doc: bytes) -> HeaderFields:
    """A document's (``event.outcome``, ``event.action``, ``log.level``, ``host.name``), read
    from its JSON: for events whose normaliser did not give them (``Decoded.header_fields``)."""
    try:
        found = _read_header(doc)
    except (msgspec.DecodeError, msgspec.ValidationError):  # odd shapes: the slow way
        whole = orjson.loads(doc)
        return (
            ecs_field(whole, "event.outcome"),
            ecs_field(whole, "event.action"),
            ecs_field(whole, "log.level"),
            ecs_field(whole, "host.name"),
        )
    event, log_, host_ = found.event, found.log, found.host
    return (
        event.outcome if event is not None else None,
        event.action if event is not None else None,
        log_.level if log_ is not None else None,
        host_.name if host_ is not None else None,
    )


def rfc3339(ts: str) -> str:
    """An RFC 3339 timestamp with at most 6 fraction digits (RFC 5424 TIME-SECFRAC), or NIL."""
    if len(ts) == 24 and ts[19] == "." and ts[23] == "Z":  # the common 2024-..T..:..:..000Z
        return ts
    m = _TS.match(ts)
    if not m:
        return NIL
    date, frac, zone = m.groups()
    return f"{date}.{frac[:6]}{zone}" if frac else f"{date}{zone}"


def _epoch_ms(ts: str) -> int | None:
    norm = rfc3339(ts)
    if norm == NIL:
        return None
    return int(datetime.fromisoformat(norm.replace("Z", "+00:00")).timestamp() * 1000)


def _header_field(value: str, limit: int) -> str:
    """HOSTNAME / MSGID: letters, digits and ``._:@/+-`` (others -> '_'), at most ``limit``."""
    if not value:
        return NIL
    return _NOT_HEADER_SAFE.sub("_", value[:limit])


def _sd_value(value: str) -> str:
    if not _SD_UNSAFE.search(value):
        return value
    return _SD_ESCAPE.sub(lambda m: "\\" + m.group(), _CONTROL.sub("\ufffd", value))


def _cef_header(value: str) -> str:
    if not _CEF_HEADER.search(value):
        return value
    return _CONTROL.sub("\ufffd", value.replace("\\", "\\\\").replace("|", "\\|"))


def _cef_value(value: str) -> str:
    if not _CEF_VALUE.search(value):
        return value
    return _CEF_VALUE.sub(lambda m: _CEF_VALUE_MAP.get(m.group(), "\ufffd"), value)


def _leef_value(value: str) -> str:
    if not _LEEF_VALUE.search(value):
        return value
    return _LEEF_VALUE.sub(lambda m: " " if m.group() in "\t\r\n" else "\ufffd", value)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


class Encoder:
    """Turns documents of a batch into RFC 5424 messages (unframed ``bytes``)."""

    def __init__(self, settings: Settings, default_host: str) -> None:
        from shipper.outputs.syslog.settings import FACILITIES

        tables = load_yaml("syslog/syslog.yaml")
        self._facility = FACILITIES[settings.facility] * 8
        self._levels: dict[str, int] = tables["severity_by_level"]
        self._sev_failure: int = tables["severity_failure"]
        self._sev_default: int = tables["severity_default"]
        self._cef_sev: list[int] = tables["cef_severity"]
        self._app = settings.app_name
        self._sd_id = settings.sd_id
        self._msgid_action = settings.msgid == "action"
        self._default_host = _NOT_HOST_SAFE.sub("_", default_host[:255]) or NIL
        self._bom = BOM if settings.utf8_bom else b""
        self._format = settings.format
        self._cef_products: dict[str, list[str]] = tables["cef_products"]
        self._cef_default: list[str] = tables["cef_default_product"]
        self._cef_ext: list[list[str]] = tables["cef_extension"]
        self._leef_products: dict[str, list[str]] = tables["leef_products"]
        self._leef_default: list[str] = tables["leef_default_product"]
        self._leef_attrs: list[list[str]] = tables["leef_attributes"]
        from shipper.outputs.syslog import version

        self._version = version()
        # per dataset: (MSGID, the SD's closing part); per host.name: the HOSTNAME it becomes
        self._by_dataset: dict[str, tuple[str, str]] = {}
        self._hosts: dict[str, str] = {}
        self._pris: dict[tuple[str | None, bool], str] = {}

    # --- per event --------------------------------------------------------------------

    def _dataset_parts(self, dataset: str) -> tuple[str, str]:
        parts = self._by_dataset.get(dataset)
        if parts is None:
            parts = (_header_field(dataset, 32), f'" dataset="{_sd_value(dataset)}"] ')
            if len(self._by_dataset) > 1024:
                self._by_dataset.clear()
            self._by_dataset[dataset] = parts
        return parts

    def _host(self, name: Any) -> str:
        if not isinstance(name, str) or not name:
            return self._default_host
        host = self._hosts.get(name)
        if host is None:
            host = _NOT_HOST_SAFE.sub("_", name[:255])
            if len(self._hosts) > 4096:
                self._hosts.clear()
            self._hosts[name] = host
        return host

    def severity(self, event: dict[str, Any]) -> int:
        return self._severity(ecs_field(event, "log.level"), ecs_field(event, "event.outcome"))

    def _severity(self, level: Any, outcome: Any) -> int:
        sev = self._sev_default
        if isinstance(level, str):
            sev = self._levels.get(level.lower(), sev)
        if outcome == "failure":
            sev = min(sev, self._sev_failure)
        return sev

    def _pri(self, level: Any, outcome: Any) -> str:
        """``<PRI>1 `` for the event's level and outcome (cached: there are few of them)."""
        key = (level if isinstance(level, str) else None, outcome == "failure")
        pri = self._pris.get(key)
        if pri is None:
            pri = f"<{self._facility + self._severity(*key[:1], outcome)}>1 "
            if len(self._pris) < 256:
                self._pris[key] = pri
        return pri

    def messages(self, batch: EventBatch, positions: Iterable[int] | None = None) -> list[bytes]:
        """One RFC 5424 message per document, in the order of ``positions`` (default: all)."""
        heads, bodies = self.encode(batch, positions)
        return [h + b for h, b in zip(heads, bodies, strict=True)]

    def encode(
        self, batch: EventBatch, positions: Iterable[int] | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        """The messages as (header, body) pairs, in two lists: a message is ``head + body``.

        Kept apart so that a JSON body, the batch's own document, is never copied here: the
        transport hands both to the kernel as separate buffers (``sendmsg``).
        """
        docs = batch.docs
        todo: Sequence[int] = range(len(docs)) if positions is None else list(positions)
        return self.encode_docs(docs, batch.ids, batch.datasets, batch.timestamps, todo)

    def encode_docs(
        self,
        docs: Sequence[bytes],
        ids: Sequence[str],
        datasets: Sequence[str],
        stamps: Sequence[str],
        todo: Sequence[int],
    ) -> tuple[list[bytes], list[bytes]]:
        """``encode`` for documents and their metadata given as lists."""
        ids = ids or [""] * len(docs)
        datasets = datasets or [""] * len(docs)
        stamps = stamps or [""] * len(docs)
        if self._format == "json":
            return self._json(docs, ids, datasets, stamps, todo), [docs[i] for i in todo]
        heads, bodies = [], []
        for i in todo:
            head, body = self._structured(orjson.loads(docs[i]), ids[i], datasets[i], stamps[i])
            heads.append(head)
            bodies.append(body)
        return heads, bodies

    def _json(
        self,
        docs: Sequence[bytes],
        ids: Sequence[str],
        datasets: Sequence[str],
        stamps: Sequence[str],
        todo: Iterable[int],
    ) -> list[bytes]:
        """The header of each message (BOM included); the body is the document itself."""
        app, sd_id, bom = self._app, self._sd_id, self._bom
        by_action = self._msgid_action
        ds_parts, sd_value, to_ts = self._dataset_parts, _sd_value, rfc3339
        pri_of, host_of = self._pri, self._host
        unsafe = _SD_UNSAFE.search
        by_dataset = self._by_dataset
        heads = []
        append = heads.append
        for i in todo:
            doc = docs[i]
            parts = by_dataset.get(datasets[i]) or ds_parts(datasets[i])
            msgid, sd_tail = parts
            ts = stamps[i]
            if not (len(ts) == 24 and ts[19] == "." and ts[23] == "Z"):
                ts = to_ts(ts)
            event_id = ids[i]
            if unsafe(event_id):
                event_id = sd_value(event_id)
            outcome, action, level, name = header_fields(doc)
            if by_action and isinstance(action, str) and action:
                msgid = _header_field(action, 32)
            append(
                (
                    f"{pri_of(level, outcome)}{ts} {host_of(name)} {app} - {msgid} "
                    f'[{sd_id} event_id="{event_id}{sd_tail}'
                ).encode()
                + bom
            )
        return heads

    def _structured(
        self, event: dict[str, Any], event_id: str, dataset: str, ts: str
    ) -> tuple[bytes, bytes]:
        """A CEF or LEEF message; the event is parsed, so everything comes from it."""
        dataset = dataset or _text(ecs_field(event, "event.dataset") or "")
        event_id = event_id or _text(ecs_field(event, "event.id") or "")
        ts = ts or _text(ecs_field(event, "@timestamp") or "")
        sev = self.severity(event)
        msgid, sd_tail = self._dataset_parts(dataset)
        if self._msgid_action:
            action = ecs_field(event, "event.action")
            msgid = _header_field(action, 32) if isinstance(action, str) else msgid
        head = (
            f"<{self._facility + sev}>1 {rfc3339(ts)} {self._host(ecs_field(event, 'host.name'))} "
            f'{self._app} - {msgid} [{self._sd_id} event_id="{_sd_value(event_id)}{sd_tail}'
        )
        if self._format == "cef":
            body = self._cef(event, dataset, sev)
        else:
            body = self._leef(event, dataset)
        return head.encode() + self._bom, body.encode()

    def _cef(self, event: dict[str, Any], dataset: str, sev: int) -> str:
        vendor, product = self._cef_products.get(dataset, self._cef_default)
        action = ecs_field(event, "event.action")
        signature = ecs_field(event, "event.code") or action or dataset or "event"
        name = action or dataset or "event"
        header = "|".join(
            _cef_header(_text(v)) for v in (vendor, product, self._version, signature, name)
        )
        ext = []
        for item in self._cef_ext:
            key, path = item[0], item[1]
            value = ecs_field(event, path)
            if value is None or value == "" or value == []:
                continue
            if key == "rt":
                value = _epoch_ms(_text(value))
                if value is None:
                    continue
            ext.append(f"{key}={_cef_value(_text(value))}")
            if len(item) > 2:
                ext.append(f"{key}Label={item[2]}")
        # a space before the first key: parsers that skip one character after the header's
        # last "|" (liblognorm, so rsyslog's mmnormalize) still read the first key whole
        return f"CEF:0|{header}|{self._cef_sev[sev]}| {' '.join(ext)}"

    def _leef(self, event: dict[str, Any], dataset: str) -> str:
        vendor, product = self._leef_products.get(dataset, self._leef_default)
        action = (
            ecs_field(event, "event.code") or ecs_field(event, "event.action") or dataset or "event"
        )
        header = "|".join(
            _LEEF_HEADER.sub("_", _text(v)) for v in (vendor, product, self._version, action)
        )
        attrs = []
        for key, path in self._leef_attrs:
            value = ecs_field(event, path)
            if value is None or value == "" or value == []:
                continue
            if key == "devTime":
                ms = _epoch_ms(_text(value))
                if ms is None:
                    continue
                stamp = datetime.fromtimestamp(ms / 1000, timezone.utc)
                attrs.append(f"devTime={stamp.strftime('%Y-%m-%dT%H:%M:%S')}.{ms % 1000:03d}Z")
                attrs.append("devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSX")
                continue
            attrs.append(f"{key}={_leef_value(_text(value))}")
        return f"LEEF:2.0|{header}|x09|" + "\t".join(attrs)


class WireEncoder:
    """The encoder as decoder processes run it (``shipper.outputs.base.WireEncoder``): a
    chunk's documents to messages framed for the stream (``octet_counting`` or ``lf``), one
    run of bytes, so that the output only writes them; or, with ``framing="none"``, the bare
    messages one after the other, for RELP, whose frames carry transaction numbers that only
    the connection can give. Plain data, pickled once per run and
    kept by each decoder process; this module imports nothing heavy (no pydantic: settings
    are read in ``Encoder``).

    JSON bodies take a loop of their own (``_json_framed``), as this is most of the syslog
    output's cost per event: everything in a header but the time and the event id depends on
    a few values (level, outcome, host, dataset or action) that repeat across events, so
    each header is three cached pieces around those two, and the frame's length prefix is
    written in the same string, encoded once.
    """

    def __init__(self, encoder: Encoder, framing: str) -> None:
        self.encoder = encoder
        self.framing = framing

    def encode(self, events: Decoded) -> Wire:
        docs = events.docs
        n = len(docs)
        ids = events.ids or [""] * n
        datasets = events.datasets or [""] * n
        timestamps = events.timestamps or [""] * n
        if self.encoder._format == "json":
            # the header fields as the normaliser knew them, else read from the documents
            fields = events.header_fields or _shared(header_fields(doc) for doc in docs)
            return self._json_framed(docs, ids, datasets, timestamps, fields)
        heads, bodies = self.encoder.encode_docs(docs, ids, datasets, timestamps, range(n))
        pieces: list[bytes] = []
        ends = array("q")
        put, end = pieces.append, ends.append
        total = 0
        if self.framing == "octet_counting":
            for h, b in zip(heads, bodies, strict=True):
                prefix = b"%d %b" % (len(h) + len(b), h)
                put(prefix)
                put(b)
                total += len(prefix) + len(b)
                end(total)
        else:
            lf = b"\n" if self.framing == "lf" else b""
            for h, b in zip(heads, bodies, strict=True):
                put(h)
                put(b)
                put(lf)
                total += len(h) + len(b) + len(lf)
                end(total)
        return Wire(b"".join(pieces), ends)

    def _json_framed(
        self,
        docs: Sequence[bytes],
        ids: Sequence[str],
        datasets: Sequence[str],
        stamps: Sequence[str],
        fields: Sequence[HeaderFields],
    ) -> Wire:
        """``encode`` for JSON bodies: the same bytes as ``Encoder._json`` + framing."""
        enc = self.encoder
        bom = enc._bom
        octets = self.framing == "octet_counting"
        to_ts, unsafe, sd_value = rfc3339, _SD_UNSAFE.search, _sd_value
        parts_of = self._parts
        pieces: list[bytes] = []
        ends = array("q")
        put, end = pieces.append, ends.append
        total = 0
        lf = b"\n" if self.framing == "lf" else b""
        extra = len(bom) + len(lf)  # bytes beside head and body
        joined = "".join(ids)
        escape = unsafe(joined) is not None  # one search for the chunk: ids are plain
        # ASCII ids and times (nearly always): a frame's length is counted, not measured
        plain = not escape and joined.isascii() and "".join(stamps).isascii()
        # a header's pieces by its fields' tuple, which the normaliser shares between events
        # made alike: by the tuple's identity (alive in ``fields`` all along), which costs
        # less than hashing its values, and needs no care for values that cannot be hashed
        one_dataset = not datasets or datasets.count(datasets[0]) == len(datasets)
        cache: dict[Any, tuple[str, str, str, int]] = {}
        for doc, event_id, dataset, ts, header in zip(
            docs, ids, datasets, stamps, fields, strict=True
        ):
            key = id(header) if one_dataset else (id(header), dataset)
            parts = cache.get(key)
            if parts is None:
                parts = cache[key] = parts_of(*header, dataset)
            pri, middle, tail, fixed = parts
            if not (len(ts) == 24 and ts[19] == "." and ts[23] == "Z"):
                ts = to_ts(ts)
            if escape and unsafe(event_id):
                event_id = sd_value(event_id)
            if not octets:
                framed = f"{pri}{ts}{middle}{event_id}{tail}".encode() + bom
                put(framed)
                put(doc)
                put(lf)
                total += len(framed) + len(doc) + len(lf)
                end(total)
                continue
            if plain and fixed >= 0:
                size = fixed + extra + len(ts) + len(event_id) + len(doc)
                framed = f"{size} {pri}{ts}{middle}{event_id}{tail}".encode()
            else:
                raw = f"{pri}{ts}{middle}{event_id}{tail}".encode()
                framed = b"%d %b" % (len(raw) + extra + len(doc), raw)
            if bom:
                framed += bom
            put(framed)
            put(doc)
            total += len(framed) + len(doc)
            end(total)
        return Wire(b"".join(pieces), ends)

    def _parts(
        self, outcome: Any, action: Any, level: Any, name: Any, dataset: str
    ) -> tuple[str, str, str, int]:
        """A header as (``<PRI>1 ``, what goes between the time and the event id, what
        follows the event id, as ``Encoder._json`` writes them; their length together, or -1
        when they are not ASCII)."""
        enc = self.encoder
        msgid, sd_tail = enc._by_dataset.get(dataset) or enc._dataset_parts(dataset)
        if enc._msgid_action and isinstance(action, str) and action:
            msgid = _header_field(action, 32)
        middle = f' {enc._host(name)} {enc._app} - {msgid} [{enc._sd_id} event_id="'
        pri = enc._pri(level, outcome)
        whole = pri + middle + sd_tail
        return pri, middle, sd_tail, len(whole) if whole.isascii() else -1


def _shared(tuples: Iterable[HeaderFields]) -> list[HeaderFields]:
    """The tuples, equal ones replaced by the first of them, as a normaliser shares them
    (``_json_framed`` finds a header's pieces by the tuple's identity)."""
    seen: dict[HeaderFields, HeaderFields] = {}
    out = []
    for t in tuples:
        try:
            t = seen.setdefault(t, t)
        except TypeError:  # a list or an object where a string belongs: kept as it is
            pass
        out.append(t)
    return out


# --- framing and size -----------------------------------------------------------------------


def octet_frame(msg: bytes) -> bytes:
    """RFC 6587 3.4.1 octet counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d %b" % (len(msg), msg)


def frame_octets(heads: Sequence[bytes], bodies: Sequence[bytes]) -> tuple[list[bytes], list[int]]:
    """Octet counting as buffers to write in order (``LEN SP head``, ``body``, ...), and the
    byte offset after each message."""
    out: list[bytes] = []
    ends: list[int] = []
    total = 0
    for h, b in zip(heads, bodies, strict=True):
        framed = b"%d %b" % (len(h) + len(b), h)
        out += (framed, b)
        total += len(framed) + len(b)
        ends.append(total)
    return out, ends


def frame_lf(heads: Sequence[bytes], bodies: Sequence[bytes]) -> tuple[list[bytes], list[int]]:
    """RFC 6587 3.4.2 non-transparent framing; messages never hold a LF (module docstring)."""
    out: list[bytes] = []
    ends: list[int] = []
    total = 0
    for h, b in zip(heads, bodies, strict=True):
        out += (h, b, b"\n")
        total += len(h) + len(b) + 1
        ends.append(total)
    return out, ends


def truncate(msg: bytes, limit: int) -> bytes:
    """Cut ``msg`` to ``limit`` bytes ending in the marker, at a UTF-8 character boundary."""
    marker = TRUNCATED.encode()
    cut = max(0, limit - len(marker))
    while cut > 0 and (msg[cut] & 0xC0) == 0x80:  # never split a UTF-8 sequence
        cut -= 1
    return msg[:cut] + marker
