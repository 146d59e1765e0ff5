"""PowerShell ``Get-WinEvent | ConvertTo-Json`` exports.

The file is a JSON array of ``EventLogRecord`` objects (or one object, when one event was
exported). Windows PowerShell 5 writes ``TimeCreated`` as ``/Date(ms since epoch)/`` (UTC,
millisecond precision), PowerShell 7 as ISO 8601 with the local offset; both are honoured.
``Properties`` (at ConvertTo-Json's default depth) is a list of ``{"Value": ...}``: the
unnamed event data, shipped as ``param1..N``.

A JSON array cannot be parsed piecewise by ``json``, so chunks are cut after each top-level
record's closing brace by a small scanner that skips over strings; the scanner's only state
across chunks is whether records sit inside a top-level array, which the position state keeps.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import orjson

from shipper.errors import RecordRejected
from shipper.sources.base import Chunk, Decoded
from shipper.sources.limits import HEAD
from shipper.sources.text import TextChunk, TextFormat
from shipper.sources.wintime import from_datetime, iso_utc

_TOKEN = re.compile(r'[{}\[\]"]')
_STRING_STOP = re.compile(r'["\\\n]')
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_SNIFF = re.compile(r'^\s*[\[{]\s*\{?\s*"(?:Message|Id|TimeCreated|ProviderName|LogName)"')

#: ``start`` of a record that opened in an earlier piece of text
_EARLIER = -2


class JsonScanner:
    """Where top-level records begin and end, fed piece by piece (see ``text.Scanner``).

    Strings are skipped by searching for the next quote or backslash, so a string costs one
    pass and no memory, however long (the regex it replaces, ``(?:[^"\\]|\\.)*"``, kept a
    backtracking frame per character: 120 bytes of memory per byte of string). ``base`` is 1
    inside the top-level array of ``ConvertTo-Json``'s many-event form, 0 for one object.

    JSON strings cannot hold a raw line break, so one ends a string that is still open: a
    quote lost or doubled in a (pretty-printed, as ConvertTo-Json writes) export then costs
    its own record, instead of turning every later string inside out.
    """

    __slots__ = ("base", "depth", "in_str", "esc", "start", "cut_base", "spans", "broken")

    def __init__(
        self,
        base: int = 0,
        depth: int | None = None,
        in_str: bool = False,
        esc: bool = False,
        open_: bool = False,
    ) -> None:
        self.base = base
        self.depth = base if depth is None else depth
        self.in_str, self.esc = in_str, esc
        self.start = _EARLIER if open_ else -1  # where the open record began, -1: none open
        self.cut_base = base  # ``base`` after the last record end
        #: (start, end) of each complete record, when the caller wants them (decoding)
        self.spans: list[tuple[int, int]] | None = None
        #: (start, end) of records closed by a bracket that does not match (with ``spans``)
        self.broken: list[tuple[int, int]] = []

    @classmethod
    def load(cls, d: dict[str, Any]) -> JsonScanner:
        return cls(d.get("base", 0), d.get("depth"), d.get("in_str", False), d.get("esc", False),
                   d.get("open", False))  # fmt: skip

    def save(self) -> dict[str, Any]:
        return {"base": self.base, "depth": self.depth, "in_str": self.in_str, "esc": self.esc,
                "open": self.start != -1}  # fmt: skip

    def boundary_state(self) -> dict[str, Any]:
        return {"base": self.cut_base}

    def lead(self, text: str) -> int:
        i = text.find("{")
        return i if i >= 0 else 0

    def feed(self, text: str) -> list[int]:
        ends: list[int] = []
        spans = self.spans
        n = len(text)
        if self.start >= 0:
            self.start = _EARLIER
        pos = self._string(text, 0) if self.in_str else 0
        depth, base, start = self.depth, self.base, self.start
        search = _TOKEN.search
        while pos < n:
            m = search(text, pos)
            if m is None:
                break
            i = m.start()
            c = text[i]
            if c == '"':
                self.in_str = True
                pos = self._string(text, i + 1)
                continue
            if c == "{" or c == "[":
                if depth == base:
                    if c == "{":
                        start = i
                    elif depth == 0:
                        base = 1  # the top-level array opens
                depth += 1
            else:
                depth -= 1
                if depth == base and c == "}" and start != -1:
                    ends.append(i + 1)
                    if spans is not None and start >= 0:
                        spans.append((start, i + 1))
                    start = -1
                    self.cut_base = base
                if depth < base:  # more closed than opened: the top level starts over
                    if spans is not None and start >= 0:
                        self.broken.append((start, i + 1))
                    base = depth = 0
                    start = -1
            pos = i + 1
        self.depth, self.base, self.start = depth, base, start
        return ends

    def _string(self, text: str, pos: int) -> int:
        """Just past the quote that closes the string ``pos`` is in, or ``len(text)``."""
        n = len(text)
        if self.esc:
            if pos >= n:
                return n
            pos += 1
            self.esc = False
        search = _STRING_STOP.search
        while True:
            m = search(text, pos)
            if m is None:
                return n
            i = m.start()
            c = text[i]
            if c == '"' or c == "\n":
                self.in_str = False
                return i + 1
            if i + 1 >= n:
                self.esc = True
                return n
            pos = i + 2


def records(text: str, base: int) -> list[tuple[int, int]]:
    """(start, end) of each complete top-level record; ``base`` is 1 inside an array."""
    scanner = JsonScanner(base)
    scanner.spans = []
    scanner.feed(text)
    return scanner.spans


def _time(value: Any) -> str:
    if isinstance(value, dict):  # a DateTime with PowerShell's extended members
        value = value.get("value") or value.get("DateTime")
    if not isinstance(value, str):
        raise RecordRejected(f"TimeCreated {value!r} is not a date")
    m = _MS_DATE.match(value.replace("\\/", "/"))
    if m:
        ms = int(m.group(1))
        dt = datetime.fromtimestamp(ms // 1000, timezone.utc).replace(
            microsecond=(ms % 1000) * 1000
        )
        return from_datetime(dt)
    return iso_utc(value)


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Value" in value:
        return _str(value["Value"])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


def _guid(value: Any) -> str | None:
    if not value or not isinstance(value, str):
        return None
    return "{" + value.strip("{} ").lower() + "}"


def _sid(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("Value")
    return value if isinstance(value, str) and value else None


def parse_record(obj: dict[str, Any]) -> dict[str, Any]:
    """A ConvertTo-Json'd EventLogRecord as the common Windows record dict."""
    g = obj.get
    if "TimeCreated" not in obj or "Id" not in obj:
        raise RecordRejected("not an event record (no Id / TimeCreated)")
    keywords = g("Keywords")
    data: dict[str, str] = {}
    props = g("Properties")
    if isinstance(props, list):
        for i, p in enumerate(props, 1):
            value = _str(p)
            if value:
                data[f"param{i}"] = value
    names = g("KeywordsDisplayNames")
    message = g("Message")
    return {
        "time": _time(g("TimeCreated")),
        "provider": g("ProviderName"),
        "provider_guid": _guid(g("ProviderId")),
        "event_id": str(g("Id")),
        "version": g("Version"),
        "level": g("Level"),
        "level_name": g("LevelDisplayName") or None,
        "task": g("Task"),
        "task_name": g("TaskDisplayName") or None,
        "opcode": g("Opcode"),
        "opcode_name": g("OpcodeDisplayName") or None,
        "keywords": keywords & 0xFFFFFFFFFFFFFFFF if isinstance(keywords, int) else None,
        "keyword_names": [n for n in names if n] if isinstance(names, list) else None,
        "record_id": g("RecordId"),
        "channel": g("LogName"),
        "computer": g("MachineName"),
        "pid": g("ProcessId"),
        "tid": g("ThreadId"),
        "user_sid": _sid(g("UserId")),
        "activity_id": _guid(g("ActivityId")),
        "related_activity_id": _guid(g("RelatedActivityId")),
        "event_data": data,
        "message": message.replace("\r\n", "\n") if isinstance(message, str) else None,
    }


def decode(chunk: Chunk) -> Decoded:
    """Parse each record of the chunk; a record that is not valid JSON is quarantined, and so
    is one bigger than the bound and what is left of one the file ends inside."""
    c = TextChunk(chunk, base=0)
    if c.skipped is not None:
        return c.quarantine_skipped()
    text = c.text
    scanner = JsonScanner(c.state["base"])
    spans: list[tuple[int, int]] = []
    scanner.spans = spans
    scanner.feed(text)
    for s, e in sorted(spans + scanner.broken):
        if c.too_big(None, s, e):
            continue
        raw = text[s:e]
        try:
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                raise RecordRejected("not a JSON object")
            rec = parse_record(obj)
        except (orjson.JSONDecodeError, RecordRejected, TypeError) as err:
            c.reject(None, c.offset(s), f"bad JSON event: {err}", raw)
            _recover(c, s + 1, e - 1)
            continue
        c.ship(rec, None, c.offset(s), raw)
    if scanner.start >= 0:  # only at the end of a file: what is left is not a whole record
        s = scanner.start
        c.reject(None, c.at(s), "the file ends inside this JSON record", text[s : s + HEAD])
        _recover(c, s + 1, len(text))
    return c.out


def _recover(c: TextChunk, lo: int, hi: int) -> None:
    """Ship the whole event records inside a broken one: a brace lost (or one too many)
    makes the records after it look nested in it, up to the end of the file. Scanning the
    broken record's inside once finds them again; objects that are not event records
    (``Properties`` items, say) are left alone, the broken record is already quarantined."""
    inner = JsonScanner(0)
    spans: list[tuple[int, int]] = []
    inner.spans = spans
    inner.feed(c.text[lo:hi])
    for s, e in spans:
        raw = c.text[lo + s : lo + e]
        if '"TimeCreated"' not in raw:
            continue
        try:
            obj = orjson.loads(raw)
            rec = parse_record(obj) if isinstance(obj, dict) else None
        except (orjson.JSONDecodeError, RecordRejected, TypeError):
            continue
        if rec is not None:
            c.ship(rec, None, c.offset(lo + s), raw)


#: the ``event_json`` format
EVENT_JSON = TextFormat(
    "event_json",
    lambda text: bool(_SNIFF.match(text)),
    JsonScanner.load,
    decode,
    defaults={"base": 0},
)
